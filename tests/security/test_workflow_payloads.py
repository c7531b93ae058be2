"""Garbage sent straight to a workflow, as signals and updates: a clear refusal, never a stuck run."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.converter import value_to_type
from temporalio.exceptions import ApplicationError

from approvals.models import RequestType
from tests.conftest import LoopThread, make_request
from tests.workflows.helpers import act, action, refused, signal, state
from tests.workflows.test_engine import launch  # noqa: F401  (the fixture)
from workflows.types import ActionKind, Content, Policy
from workflows.types import RequestStatus as Status

pytestmark = pytest.mark.usefixtures("ts_worker", "ts_cleanup")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
# Shaped like an Action, with every field free to be wrong.
action_like = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.sampled_from([k.value for k in ActionKind]) | st.text(max_size=20) | json_values,
        "actor_id": st.integers(min_value=-(2**63), max_value=2**63) | json_values,
        "actor_name": st.text(max_size=200) | json_values,
        "comment": st.text(max_size=5000) | json_values,
        "action_id": st.uuids().map(str) | st.text(max_size=40) | json_values,
        "delegate_id": st.integers() | json_values,
        "extend_seconds": st.integers() | json_values,
        "content": json_values,
    },
)
payloads = action_like | json_values


def failed_tasks(loop: LoopThread, handle: WorkflowHandle[Any, Any]) -> int:
    async def count() -> int:
        failed = 0
        async for event in handle.fetch_history_events():
            failed += event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        return failed

    return loop.run(count())


def test_garbage_signals_and_updates_are_refused_and_the_workflow_keeps_working(
    loop: LoopThread,
    launch: Callable[..., WorkflowHandle[Any, Any]],  # noqa: F811
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    request = make_request(people, purchase)
    handle = launch(request, value_to_type(Policy, request.policy))
    before = state(loop, handle)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(payload=payloads)
    def send(payload: Any) -> None:
        loop.run(handle.signal("act", payload), timeout=10)
        try:
            loop.run(handle.execute_update("submit_action", payload, id=str(uuid.uuid4())), timeout=10)
        except WorkflowUpdateFailedError as exc:
            assert isinstance(exc.cause, ApplicationError)
            assert exc.cause.message  # a reason a person or a program can act on
        # (an update that happens to be a valid action by an approver would be applied: the
        # strategies cannot forge one, since actor ids are random and names do not matter)

    send()
    after = state(loop, handle)
    assert after.status == Status.IN_REVIEW and after.stage is not None
    assert [a.user_id for a in after.pending()] == [a.user_id for a in before.pending()]
    assert failed_tasks(loop, handle) == 0, "a payload broke a workflow task: the run would be stuck"


def test_a_requester_resubmitting_nonsense_is_refused_and_the_stage_still_works(
    loop: LoopThread,
    launch: Callable[..., WorkflowHandle[Any, Any]],  # noqa: F811
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    """Conditions compare amounts: an amount that is not a number must never reach them."""
    request = make_request(people, purchase)
    handle = launch(request, value_to_type(Policy, request.policy))
    requester, reviewer = people["requester"], people["reviewer1"]
    act(loop, handle, action(ActionKind.REQUEST_CHANGES, reviewer, "Add the quote"))
    for amount, why in [
        ("NaN", "The amount is not a number."),
        ("lots", "The amount is not a number."),
        ("Infinity", "The amount is not a number."),
    ]:
        resubmit = action(ActionKind.RESUBMIT, requester, content=Content(title="Laptop", amount=amount))
        assert refused(loop, handle, resubmit) == why
        signal(loop, handle, resubmit)  # dropped, not applied, not a crash
    assert refused(
        loop, handle, action(ActionKind.RESUBMIT, requester, content=Content(title="x" * 201))
    ) == ("Titles are limited to 200 characters.")
    nul = action(ActionKind.COMMENT, requester, "a\x00b")
    assert (
        refused(loop, handle, nul)
        == "The action holds characters that cannot be kept (NUL, or invalid Unicode)."
    )
    signal(loop, handle, nul)
    loop.run(handle.signal("act", None))
    answer = act(
        loop, handle, action(ActionKind.RESUBMIT, requester, content=Content("Laptop", amount="1200.50"))
    )
    assert answer.status == Status.IN_REVIEW
    assert state(loop, handle).content.amount == "1200.50"
    assert failed_tasks(loop, handle) == 0


def test_a_lone_surrogate_an_unknown_delegate_and_coerced_ids_sent_to_temporal_never_freeze_the_read_model(
    loop: LoopThread,
    launch: Callable[..., WorkflowHandle[Any, Any]],  # noqa: F811
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    request = make_request(people, purchase)
    handle = launch(request, value_to_type(Policy, request.policy))
    reviewer = people["reviewer1"]

    def raw(kind: str, **fields: Any) -> dict[str, Any]:
        sent = {
            "kind": kind,
            "actor_id": reviewer.pk,
            "actor_name": "reviewer1",
            "action_id": str(uuid.uuid4()),
        }
        return {**sent, **fields}

    def update(payload: dict[str, Any]) -> str:
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            loop.run(handle.execute_update("submit_action", payload, id=payload["action_id"]), timeout=30)
        assert isinstance(failed.value.cause, ApplicationError)
        return failed.value.cause.message

    poison = [
        raw("comment", comment="\ud800"),  # no UTF-8, so no database, can keep it
        raw("delegate", delegate_id=999_999, delegate_name="ghost"),  # nobody by that id
        raw("approve", actor_id=float(reviewer.pk)),  # would be read as reviewer1's id
        raw("approve", actor_id=reviewer.pk + 0.5),
        raw("approve", as_staff=1),
    ]
    for payload in poison:
        loop.run(handle.signal("act", payload), timeout=10)  # dropped
    assert "invalid Unicode" in update(raw("comment", comment="\ud800"))
    assert update(raw("delegate", delegate_id=999_999)).startswith("There is no active person by that id")
    assert "names no valid person" in update(raw("approve", actor_id=float(reviewer.pk)))
    assert (
        update(raw("delegate", delegate_id=people["requester"].pk))
        == "The requester cannot approve their own request."
    )

    # The read model follows: the next approval is projected, and the request is approved there.
    answer = act(loop, handle, action(ActionKind.APPROVE, people["reviewer2"], "Fine"))
    assert answer.status == Status.APPROVED
    request.refresh_from_db()
    assert request.status == Status.APPROVED and request.decided_by == people["reviewer2"]
    assert [e.kind for e in request.events.order_by("seq")][-3:] == ["approval", "stage_approved", "approved"]
    assert not request.events.filter(kind="comment").exists() and not request.activity_failures.exists()
    assert failed_tasks(loop, handle) == 0
