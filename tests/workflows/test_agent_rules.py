"""Agent actions in the workflow's own code, pure: conditions on the tool and the risk, an
approval bound to the version its approver saw, approval with edits, stages that trust their
requester, and two people for destructive tools."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime

import pytest

from workflows import handlers, rules
from workflows.policy import condition_holds, condition_problem, condition_words
from workflows.review import Review
from workflows.types import (
    Action,
    ActionKind,
    Assignee,
    Condition,
    Content,
    EventKind,
    Operator,
    Policy,
    RequestState,
    RequestStatus,
    Rule,
    StageSpec,
)

AGENT, FIRST, SECOND, THIRD = 1, 2, 3, 4
V1, V2, V3 = "a" * 64, "b" * 64, "c" * 64
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def action_content(tool: str = "db.migrate", risk: str = "high", sha: str = V1) -> Content:
    return Content(
        "db.migrate (asked by deploy-bot)", "Ship the schema", tool=tool, risk=risk, action_sha256=sha
    )


def reviewed(*stages: StageSpec, content: Content | None = None, assignees: int = 3) -> Review:
    people = [Assignee(FIRST, "first"), Assignee(SECOND, "second"), Assignee(THIRD, "third")][:assignees]
    state = RequestState(
        "r1", AGENT, "deploy-bot", Policy("Agent action", list(stages)), content or action_content()
    )
    review = Review(state, now=lambda: T0, patched=lambda name: True)
    review.submit()
    if state.stage is not None and not state.status.is_final:
        review.assign(people)
    return review


def approve(actor: int, seen: str, edited: Content | None = None, action_id: str = "") -> Action:
    return Action(
        ActionKind.APPROVE,
        actor,
        f"person {actor}",
        action_id=action_id or f"approve-{actor}-{seen[:1]}",
        action_sha256=seen,
        content=edited,
    )


def test_conditions_on_the_tool_match_names_and_patterns_and_on_the_risk_compare_in_order() -> None:
    destructive = Condition("tool", Operator.EQ, "db.*, *.delete, payments.refund")
    assert condition_holds(destructive, action_content(tool="db.drop_table"))
    assert condition_holds(destructive, action_content(tool="files.delete"))
    assert condition_holds(destructive, action_content(tool="payments.refund"))
    assert not condition_holds(destructive, action_content(tool="payments.refund_all"))
    assert not condition_holds(destructive, action_content(tool="email.send"))
    assert not condition_holds(destructive, Content("A laptop", amount="100"))  # no tool at all
    harmless = Condition("tool", Operator.NE, "db.*")
    assert condition_holds(harmless, action_content(tool="email.send"))
    assert not condition_holds(harmless, action_content(tool="db.migrate"))
    assert condition_words(destructive) == "only when the tool is one of db.*, *.delete, payments.refund"

    at_least_high = Condition("risk", Operator.GTE, "high")
    assert [condition_holds(at_least_high, action_content(risk=r)) for r in rules_risks()] == [
        False,
        False,
        True,
        True,
    ]
    assert condition_holds(Condition("risk", Operator.EQ, "low"), action_content(risk="low"))
    assert not condition_holds(Condition("risk", Operator.LT, "medium"), action_content(risk=""))
    assert condition_words(at_least_high) == "only when the risk is at least high"


def rules_risks() -> tuple[str, ...]:
    from workflows.types import RISKS

    return RISKS


@pytest.mark.parametrize(
    ("field", "operator", "value", "words"),
    [
        ("risk", "gte", "severe", "A risk is one of low, medium, high, critical."),
        ("tool", "gt", "db.*", "A condition on the tool is “=” (one of these names) or “≠” (none of them)."),
        ("tool", "eq", " , ", "Name the tools, separated by commas (a name may end in *)."),
        ("amount", "gt", "lots", "A condition on the amount compares it with a number."),
        ("colour", "eq", "red", "Unknown condition field “colour”."),
    ],
)
def test_a_condition_that_cannot_be_weighed_is_told_in_words(
    field: str, operator: str, value: str, words: str
) -> None:
    assert condition_problem(field, operator, value) == words
    with pytest.raises(ValueError, match=re.escape(words)):
        condition_holds(Condition(field, Operator(operator), value), action_content())


def test_an_approval_names_the_version_its_approver_saw_and_no_other() -> None:
    review = reviewed(StageSpec("Review", Rule.ANY, 3600))
    state = review.state
    assert rules.problem(state, approve(FIRST, V2)) == rules.ACTION_CHANGED
    assert rules.refusal(state, approve(FIRST, V2)).why == rules.Why.NOT_NOW  # type: ignore[union-attr]
    # One that names no version is not one the approver saw: refused as well.
    assert rules.problem(state, approve(FIRST, "")) == rules.ACTION_CHANGED
    assert rules.problem(state, approve(FIRST, V1)) is None
    handlers.apply(review, approve(FIRST, V1))
    assert state.status == RequestStatus.APPROVED and state.content.action_sha256 == V1


def test_a_request_that_is_no_agent_action_takes_neither_a_version_nor_edits() -> None:
    review = reviewed(StageSpec("Review", Rule.ANY, 3600), content=Content("A laptop", amount="900"))
    assert (
        rules.problem(review.state, approve(FIRST, V1)) == "Only an agent action can be approved with edits."
    )
    edited = dataclasses.replace(review.state.content, action_sha256=V2)
    assert rules.problem(review.state, approve(FIRST, "", edited)) == (
        "Only an agent action can be approved with edits."
    )
    assert rules.problem(review.state, approve(FIRST, "")) is None


def test_approving_with_edits_changes_the_arguments_only() -> None:
    review = reviewed(StageSpec("Review", Rule.ANY, 3600))
    state = review.state
    other_tool = action_content(tool="db.drop", sha=V2)
    lower_risk = action_content(risk="low", sha=V2)
    same = action_content(sha=V1)
    assert (
        rules.problem(state, approve(FIRST, V1, other_tool))
        == "Approving with edits changes the arguments only."
    )
    assert (
        rules.problem(state, approve(FIRST, V1, lower_risk))
        == "Approving with edits changes the arguments only."
    )
    assert rules.problem(state, approve(FIRST, V1, same)) == (
        "These are the arguments as they stand: approve them without edits."
    )
    assert rules.parse_action({"kind": "approve", "actor_id": 2, "action_sha256": "not-a-hash"}) == (
        "The action is not well formed."
    )


def test_approved_with_edits_the_new_version_is_what_is_approved_and_the_timeline_shows_both() -> None:
    review = reviewed(StageSpec("Review", Rule.ANY, 3600))
    state = review.state
    handlers.apply(review, approve(FIRST, V1, action_content(sha=V2)))
    assert state.status == RequestStatus.APPROVED
    assert state.content.action_sha256 == V2 and state.revision == 2
    edited = next(e for e in review.events if e.kind == EventKind.ACTION_EDITED)
    assert edited.actor_id == FIRST and edited.revision == 2
    assert edited.detail == f"Revision 2: SHA-256 {V1[:12]}… became {V2[:12]}…"
    projection = review.projection(review.events, [])
    assert projection.content is not None and projection.content.action_sha256 == V2


def test_two_people_for_a_destructive_tool_and_an_edit_asks_the_others_again() -> None:
    two = StageSpec("Two people", Rule.N_OF_M, 3600, required=2)
    two.condition = Condition("tool", Operator.EQ, "db.*")
    review = reviewed(two)
    state = review.state
    assert state.stage is not None and state.stage.required == 2
    handlers.apply(review, approve(FIRST, V1))
    assert state.status == RequestStatus.IN_REVIEW and len(state.stage.approvals) == 1
    # The second approver edits: the first approved another version, so theirs no longer counts.
    handlers.apply(review, approve(SECOND, V1, action_content(sha=V2)))
    assert state.status == RequestStatus.IN_REVIEW
    assert [v.user_id for v in state.stage.approvals] == [SECOND]
    # An approval of the old version, sent late, is refused; the new one closes the stage.
    assert rules.problem(state, approve(THIRD, V1)) == rules.ACTION_CHANGED
    handlers.apply(review, approve(FIRST, V2, action_id="approve-first-again"))
    assert state.status == RequestStatus.APPROVED and state.content.action_sha256 == V2


def test_a_stage_that_trusts_its_requester_approves_itself_where_its_condition_holds() -> None:
    low = StageSpec("Low risk", Rule.ANY, 3600, auto_approve=True)
    low.condition = Condition("risk", Operator.EQ, "low")
    review_stage = StageSpec("Review", Rule.ANY, 3600)
    review_stage.condition = Condition("risk", Operator.GTE, "medium")

    trusted_low = reviewed(low, review_stage, content=action_content(risk="low"))
    state = trusted_low.state
    assert state.status == RequestStatus.APPROVED
    assert state.decided is not None and state.decided.by_name == "policy"
    why = (
        "Approved automatically: the policy trusts deploy-bot with this stage, which applies only "
        "when the risk is exactly low"
    )
    assert state.decided.comment == why + "."
    approved = next(e for e in trusted_low.events if e.kind == EventKind.STAGE_APPROVED)
    assert approved.detail == why and approved.stage == "Low risk"
    assert state.participant_ids == []  # nobody was asked

    # The same agent, a riskier action: the trusting stage does not apply, a person decides.
    trusted_high = reviewed(low, review_stage, content=action_content(risk="high"))
    assert trusted_high.state.status == RequestStatus.IN_REVIEW
    assert trusted_high.state.stage is not None and trusted_high.state.stage.name == "Review"


def test_an_unanswered_action_expires_and_expiry_means_no() -> None:
    from workflows import timers

    review = reviewed(StageSpec("Review", Rule.ANY, 3600))
    review.now = lambda: datetime(2026, 12, 1, 10, 1, tzinfo=UTC)
    timers.fire_due(review)
    assert review.state.status == RequestStatus.EXPIRED
    assert rules.problem(review.state, approve(FIRST, V1)) is not None
