"""The fast reader of our messages reads them exactly as temporalio's own `value_to_type` does."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.converter import DefaultPayloadConverter, value_to_type

from workflows import codec
from workflows.review import snapshot
from workflows.types import (
    ActionResult,
    Assignee,
    ClosedStage,
    Condition,
    Content,
    Decided,
    EscalationLevel,
    EventKind,
    NotificationInput,
    NotificationKind,
    Operator,
    Policy,
    Projection,
    RequestState,
    RequestStatus,
    Rule,
    StageSpec,
    StageState,
    TimelineEntry,
    Vote,
)

NOW = datetime(2026, 12, 3, 9, 30, 15, 123456, tzinfo=UTC)


def full_state() -> RequestState:
    """A state with every kind of field filled in, nested ones included."""
    spec = StageSpec(
        name="Team lead",
        rule=Rule.N_OF_M,
        required=2,
        user_ids=[11, 12],
        group_ids=[3],
        deadline_seconds=86400,
        reminder_seconds=3600,
        escalation=[EscalationLevel(after_seconds=600, user_ids=[14])],
        condition=Condition(field="amount", operator=Operator.GT, value="1000"),
    )
    waiting = [Assignee(11, "Ann", 0), Assignee(15, "Bo", 1, acting_for_id=12, acting_for_name="Cy")]
    state = RequestState(
        request_id="r-1",
        requester_id=10,
        requester_name="Dee",
        policy=Policy("Purchase", [spec, spec], distinct_approvers=True),
        content=Content("Desk", "Standing", "1500.00"),
        status=RequestStatus.IN_REVIEW,
        revision=2,
        stage=StageState(
            index=1,
            name="Finance",
            version=3,
            rule=Rule.ANY,
            required=1,
            started_at=NOW,
            deadline=NOW + timedelta(days=2),
            next_reminder_at=None,
            assignees=waiting,
            approvals=[Vote(11, "Ann", NOW, 2, "ok")],
            assigned=True,
        ),
        closed_stages=[ClosedStage("Team lead", [11, 12], "Ann", NOW, approver_ids=[11])],
        participant_ids=[11, 12, 15],
        decided=Decided(11, "Ann", NOW, "fine"),
        timeline=[TimelineEntry(4, NOW, EventKind.COMMENT, 11, "Ann", "hm", "", "Finance", 2, "a-1")],
        seq=4,
        recent_action_ids=["a-1"],
        recent_results=[ActionResult(RequestStatus.IN_REVIEW, "Your comment is added.", "Finance", 4)],
        unsent_notifications=[NotificationInput("r-1", NotificationKind.ASSIGNED, [11], "k-1", "c", "Ann")],
    )
    return state


@pytest.mark.parametrize(
    ("cls", "value"),
    [
        (RequestState, full_state()),
        (RequestState, snapshot(full_state())),
        (RequestState, RequestState("r-2", 10, "Dee", Policy("Purchase", []), Content("Desk"))),
        (Policy, full_state().policy),
        (
            Projection,
            Projection(
                "r-1",
                4,
                RequestStatus.IN_REVIEW,
                2,
                None,
                "Finance",
                2,
                2,
                None,
                [],
                [],
                [],
                state=full_state(),
            ),
        ),
    ],
    ids=["full state", "snapshot", "new request", "policy", "projection"],
)
def test_reads_what_value_to_type_reads(cls: type, value: Any) -> None:
    sent = codec.encode(value)
    read = codec.decode(cls, sent)
    assert read == value_to_type(cls, sent) == value
    assert codec.encode(read) == sent


def test_a_field_left_out_takes_its_default_and_an_unknown_one_is_left_out() -> None:
    sent = codec.encode(Content("Desk", "Standing", None))
    del sent["details"]
    sent["added_later"] = "by newer code"
    assert codec.decode(Content, sent) == Content("Desk") == value_to_type(Content, sent)


def test_a_type_it_cannot_read_is_refused_at_once() -> None:
    with pytest.raises(TypeError, match="only `X | None` unions"):
        codec.reader(int | str)


def test_the_payload_converter_reads_what_temporals_own_reads_and_leaves_it_the_rest() -> None:
    ours, theirs = codec.PayloadConverter(), DefaultPayloadConverter()
    state = full_state()
    [payload] = theirs.to_payloads([state])
    assert ours.to_payloads([state]) == [payload]  # the same JSON
    assert (
        ours.from_payloads([payload], [RequestState])
        == [state]
        == theirs.from_payloads([payload], [RequestState])
    )
    [number] = theirs.to_payloads([7])
    assert ours.from_payloads([number], [int | str]) == [7]  # a type it does not read: temporalio's
    [broken] = theirs.to_payloads([{"details": "no title"}])
    with pytest.raises(TypeError) as failed:
        theirs.from_payloads([broken], [Content])
    with pytest.raises(TypeError, match=re.escape(str(failed.value))):  # told as temporalio tells it
        ours.from_payloads([broken], [Content])
