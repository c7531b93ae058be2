"""The rules, the review and its handlers on their own: pure code, no Temporal, no database.

The workflow's validator, the web's check, the forms and the buttons all ask `workflows.rules`;
these tests pin what it answers, and that the workflow side stands on its own.
"""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from workflows import handlers, rules, timers
from workflows.review import PATCH_SKIPPED_STAGES, Review
from workflows.types import (
    Action,
    ActionKind,
    Assignee,
    Condition,
    Content,
    Decided,
    EventKind,
    NotificationKind,
    Operator,
    Policy,
    RequestState,
    RequestStatus,
    Rule,
    StageSpec,
)

REQUESTER, FIRST, SECOND, OUTSIDER, STAFF = 1, 2, 3, 4, 5
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> datetime:
        return self.at


def policy(*stages: StageSpec) -> Policy:
    return Policy("Purchase", list(stages) or [StageSpec("Review", Rule.ALL, 86400)])


def under_review(*stages: StageSpec, amount: str | None = "100", patched: bool = True) -> Review:
    """A request whose first stage asked FIRST and SECOND, as the workflow leaves it."""
    state = RequestState("r1", REQUESTER, "requester", policy(*stages), Content("Laptop", amount=amount))
    review = Review(state, now=Clock(), patched=lambda name: patched)
    review.submit()
    if state.stage is not None:
        review.assign([Assignee(FIRST, "first"), Assignee(SECOND, "second")])
    return review


def act(kind: ActionKind, actor: int, comment: str = "", **fields: Any) -> Action:
    return Action(kind, actor, f"user{actor}", comment, action_id=f"{kind}-{actor}-{len(comment)}", **fields)


def test_who_may_do_what_on_a_request_under_review() -> None:
    state = under_review().state
    assert rules.abilities(state, FIRST) == rules.Abilities(decide=True, comment=True)
    assert rules.abilities(state, REQUESTER) == rules.Abilities(comment=True, withdraw=True)
    assert rules.abilities(state, OUTSIDER) == rules.Abilities()
    assert rules.abilities(state, STAFF, as_staff=True) == rules.Abilities()  # staff cancel, nothing else
    assert rules.abilities(state, FIRST, started=False) == rules.Abilities()
    assert rules.abilities(state, FIRST, stopped="Terminated: bad deploy") == rules.Abilities()


@pytest.mark.parametrize(
    ("action", "why", "message"),
    [
        (act(ActionKind.APPROVE, REQUESTER), rules.Why.FORBIDDEN, "You cannot decide on your own request."),
        (act(ActionKind.APPROVE, OUTSIDER), rules.Why.FORBIDDEN, "You are not an approver of this request"),
        (
            act(ActionKind.COMMENT, OUTSIDER, "hi"),
            rules.Why.FORBIDDEN,
            "Only the requester and the request's",
        ),
        (act(ActionKind.WITHDRAW, FIRST), rules.Why.FORBIDDEN, "Only the requester can withdraw"),
        (act(ActionKind.CANCEL, FIRST, "why"), rules.Why.FORBIDDEN, "Only staff can cancel a request."),
        (act(ActionKind.RESUBMIT, REQUESTER), rules.Why.NOT_NOW, "only after changes were requested"),
        (act(ActionKind.REJECT, FIRST, "  "), rules.Why.INVALID, "A comment is required to reject"),
        (act(ActionKind.COMMENT, FIRST, "x" * 4001), rules.Why.INVALID, "Comments are limited to 4000"),
        (
            act(ActionKind.EXTEND, FIRST, extend_seconds=59),
            rules.Why.INVALID,
            "between one minute and 30 days",
        ),
        (
            act(ActionKind.DELEGATE, FIRST, delegate_id=REQUESTER),
            rules.Why.INVALID,
            "cannot approve their own",
        ),
        (
            act(ActionKind.DELEGATE, FIRST, delegate_id=SECOND, delegate_name="second"),
            rules.Why.INVALID,
            "second is already",
        ),
        (act(ActionKind.APPROVE, FIRST, "\x00"), rules.Why.INVALID, "cannot be kept (NUL"),
        (act(ActionKind.COMMENT, FIRST, "\ud800"), rules.Why.INVALID, "or invalid Unicode"),
    ],
    ids=lambda value: value.kind.value if isinstance(value, Action) else "",
)
def test_each_refusal_is_told_in_words_and_says_how(action: Action, why: rules.Why, message: str) -> None:
    refused = rules.refusal(under_review().state, action)
    assert refused is not None and (refused.why, message in refused.message) == (why, True), refused


def test_what_fits_now_follows_the_request() -> None:
    review = under_review()
    handlers.apply(review, act(ActionKind.APPROVE, FIRST))
    refused = rules.refusal(review.state, act(ActionKind.APPROVE, FIRST))
    assert refused and refused.message == "You already approved stage “Review” at 2026-12-01 09:00 UTC."
    assert rules.refusal(review.state, act(ActionKind.APPROVE, SECOND)) is None
    handlers.apply(review, act(ActionKind.REQUEST_CHANGES, SECOND, "Which one?"))
    refused = rules.refusal(review.state, act(ActionKind.APPROVE, SECOND))
    assert (
        refused and refused.why == rules.Why.NOT_NOW and "resubmit before anyone decides" in refused.message
    )
    assert rules.abilities(review.state, REQUESTER).resubmit
    handlers.apply(review, act(ActionKind.WITHDRAW, REQUESTER, "Not needed"))
    refused = rules.refusal(review.state, act(ActionKind.COMMENT, FIRST, "hello"))
    assert (
        refused and refused.message == "This request is already withdrawn by user1 at 2026-12-01 09:00 UTC."
    )


def test_the_forms_get_each_problem_on_its_field() -> None:
    assert rules.input_problems(act(ActionKind.REJECT, FIRST)) == {
        "comment": "A comment is required to reject or to request changes."
    }
    assert rules.input_problems(act(ActionKind.DELEGATE, FIRST)) == {
        "delegate": "Choose someone to delegate to."
    }
    problems = rules.input_problems(act(ActionKind.RESUBMIT, REQUESTER, content=Content("x" * 201)))
    assert problems == {"title": "Titles are limited to 200 characters."}
    assert rules.input_problems(act(ActionKind.APPROVE, FIRST)) == {}


def test_payloads_are_read_strictly_before_anything_weighs_them() -> None:
    sent = {"kind": "approve", "actor_id": FIRST, "actor_name": "first", "action_id": "a-1"}
    assert rules.parse_action(sent) == Action(ActionKind.APPROVE, FIRST, "first", action_id="a-1")
    # What a JSON payload can hold that the SDK would have coerced, or a database cannot keep.
    for change, problem in [
        ({"actor_id": 11.5}, "names no valid person"),
        ({"actor_id": 11.0}, "names no valid person"),
        ({"actor_id": True}, "names no valid person"),
        ({"actor_id": "11"}, "names no valid person"),
        ({"extend_seconds": 3600.5}, "names no valid person"),
        ({"delegate_id": False}, "no valid person to delegate to"),
        ({"kind": ["approve"]}, "Unknown kind"),
        ({"kind": "approve!"}, "Unknown kind"),
        ({"as_staff": 1}, "not well formed"),
        ({"comment": 7}, "not well formed"),
        ({"comment": "\ud800"}, "invalid Unicode"),
        ({"actor_name": "a\x00"}, "cannot be kept (NUL"),
        ({"content": {"title": "x", "amount": 12}}, "The amount is not a number."),
        ({"content": {"title": "\udfff"}}, "invalid Unicode"),
        ({"content": "x"}, "content is not well formed"),
    ]:
        read = rules.parse_action({**sent, **change})
        assert isinstance(read, str) and problem in read, (change, read)
    assert rules.parse_action({"kind": "approve"}) == "The action names no valid person."
    assert rules.parse_action(None) == rules.parse_action([sent]) == "This is not an action."
    # A newer sender's extra field is ignored; an older one's missing fields take their defaults.
    assert rules.parse_action({**sent, "priority": 3}) == rules.parse_action(sent)


json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
)
field_value = {
    "kind": st.sampled_from([k.value for k in ActionKind]) | json_value,
    "actor_id": st.integers() | st.floats() | st.booleans() | json_value,
    "delegate_id": st.none() | st.integers() | st.floats() | st.booleans() | json_value,
    "extend_seconds": st.integers() | st.floats() | json_value,
    "comment": st.text() | st.just("\ud800") | json_value,
    "as_staff": st.booleans() | json_value,
    "content": st.none()
    | st.fixed_dictionaries({"title": st.text(max_size=5) | json_value}, optional={"amount": json_value})
    | json_value,
}


@hypothesis.settings(max_examples=300, deadline=None, database=None)
@hypothesis.given(payload=st.fixed_dictionaries({}, optional=field_value) | json_value)
def test_any_payload_reads_as_an_action_of_exact_types_or_as_a_reason(payload: Any) -> None:
    read = rules.parse_action(payload)
    if isinstance(read, str):
        assert read  # a reason a person or a program can act on
        return
    assert type(read.actor_id) is int and type(read.extend_seconds) is int
    assert read.delegate_id is None or type(read.delegate_id) is int
    assert type(read.as_staff) is bool
    for text in (read.actor_name, read.comment, read.action_id, read.delegate_name):
        text.encode("utf-8")  # and so a database keeps it
    # Whatever the rules make of it, they say so without raising.
    rules.refusal(under_review().state, read)


def test_handlers_move_the_request_and_queue_what_it_calls_for() -> None:
    review = under_review()
    first = handlers.apply(review, act(ActionKind.APPROVE, FIRST, "fine"))
    assert (first.status, first.message) == (RequestStatus.IN_REVIEW, "Your approval is recorded (1 of 2).")
    again = handlers.apply(review, act(ActionKind.APPROVE, FIRST, "fine"))  # the same action, again
    assert again == first and review.state.stage is not None and len(review.state.stage.approvals) == 1
    last = handlers.apply(review, act(ActionKind.APPROVE, SECOND))
    assert (last.status, last.message) == (RequestStatus.APPROVED, "Stage “Review” is approved.")
    events, participants, notifications = review.take_effects()
    assert [e.kind for e in events] == [
        EventKind.SUBMITTED,
        EventKind.STAGE_STARTED,
        EventKind.APPROVAL,
        EventKind.APPROVAL,
        EventKind.STAGE_APPROVED,
        EventKind.APPROVED,
    ]
    assert [(n.kind, n.recipient_ids) for n in notifications] == [
        (NotificationKind.ASSIGNED, [FIRST, SECOND]),
        (NotificationKind.DECIDED, [REQUESTER]),
    ]
    assert notifications[1].idempotency_key == f"r1:{events[-1].seq}:decided"
    projection = review.projection(events, participants)
    assert projection.state is not None and projection.state.timeline == [] and projection.seq == 5


def test_a_stage_that_does_not_apply_is_on_the_timeline_once_patched() -> None:
    finance = StageSpec("Finance", Rule.ANY, 86400, condition=Condition("amount", Operator.GT, "1000"))
    for patched, skipped in ((True, ["Finance"]), (False, [])):
        review = under_review(StageSpec("Review", Rule.ANY, 86400), finance, patched=patched)
        handlers.apply(review, act(ActionKind.APPROVE, FIRST))
        entries = [e for e in review.state.timeline if e.kind == EventKind.STAGE_SKIPPED]
        assert [e.stage for e in entries] == skipped, PATCH_SKIPPED_STAGES
        assert all(e.detail == "It applies only when the amount is more than 1000" for e in entries)
        assert review.state.status == RequestStatus.APPROVED


@pytest.mark.parametrize("distinct", [True, False])
def test_nobody_approves_two_stages_where_the_policy_asks_for_distinct_approvers(distinct: bool) -> None:
    review = under_review(StageSpec("Team lead", Rule.ANY, 86400), StageSpec("Finance", Rule.ANY, 86400))
    state = review.state
    state.policy.distinct_approvers = distinct
    handlers.apply(review, act(ActionKind.APPROVE, SECOND))
    assert state.stage is not None and state.stage.name == "Finance"
    assert state.closed_stages[0].approver_ids == [SECOND]
    # Stage 2 as an assignment that did not leave SECOND out would have it: the rules hold anyway.
    review.assign([Assignee(OUTSIDER, "outsider"), Assignee(SECOND, "second")])

    approve = rules.refusal(state, act(ActionKind.APPROVE, SECOND))
    to_second = act(ActionKind.DELEGATE, OUTSIDER, delegate_id=SECOND, delegate_name="second")
    to_first = act(ActionKind.DELEGATE, OUTSIDER, delegate_id=FIRST, delegate_name="first")
    if distinct:
        assert approve == rules.Refusal(
            rules.Why.FORBIDDEN,
            "You approved stage “Team lead”, and " + rules.DISTINCT_APPROVERS,
        )
        assert rules.abilities(state, SECOND).decide is False
        assert sorted(rules.not_delegable(state)) == [REQUESTER, SECOND, OUTSIDER]
    else:
        assert approve is None
        assert sorted(rules.not_delegable(state)) == [REQUESTER, SECOND, OUTSIDER]
    # Delegating to someone of an earlier stage who did not approve it is fine either way.
    assert rules.refusal(state, to_first) is None
    # The same stage's approvers, and the requester, never take it by delegation.
    refused = rules.refusal(state, to_second)
    assert refused and refused.message == "second is already an approver of this stage."

    # Once SECOND is off the stage (the workflow's assignment leaves them out), delegating the
    # stage to them is what the rule refuses.
    review.state.stage.assignees = [Assignee(OUTSIDER, "outsider")]
    refused = rules.refusal(state, to_second)
    approve = rules.refusal(state, act(ActionKind.APPROVE, SECOND))
    assert approve is not None
    assert approve.message == (
        f"You approved stage “Team lead”, and {rules.DISTINCT_APPROVERS}"
        if distinct
        else "Stage “Team lead” was already approved by user3 at 2026-12-01 09:00 UTC."
    )
    if distinct:
        assert refused == rules.Refusal(
            rules.Why.INVALID,
            "second approved stage “Team lead”, and " + rules.DISTINCT_APPROVERS,
        )
        assert sorted(rules.not_delegable(state)) == [REQUESTER, SECOND, OUTSIDER]
    else:
        assert refused is None
        assert sorted(rules.not_delegable(state)) == [REQUESTER, OUTSIDER]


def test_a_stage_closed_without_anyone_approving_keeps_nobody_from_later_stages() -> None:
    review = under_review(StageSpec("Team lead", Rule.ANY, 86400), StageSpec("Finance", Rule.ANY, 86400))
    review.state.policy.distinct_approvers = True
    review.stage_approved(Decided(None, "policy", T0), automatic=True)
    assert review.state.closed_stages[0].approver_ids == []
    assert rules.earlier_approvers(review.state) == {}


def test_an_extension_moves_the_deadline_from_now_at_the_earliest() -> None:
    review = under_review()
    clock = review.now
    assert isinstance(clock, Clock)
    clock.at = T0 + timedelta(days=3)  # past the deadline already
    answer = handlers.apply(review, act(ActionKind.EXTEND, FIRST, extend_seconds=3600))
    assert answer.message == "The deadline is now 2026-12-04 10:00 UTC."


def test_a_held_decision_waits_for_its_period_and_the_deadline_waits_for_it() -> None:
    review = under_review()
    review.state.policy.undo_seconds = 10
    clock = review.now
    assert isinstance(clock, Clock)
    approve = act(ActionKind.APPROVE, FIRST, "ok")
    answer = handlers.apply(review, approve)
    assert answer.undo_until == T0 + timedelta(seconds=10)
    assert answer.message == "Your approval takes effect at 09:00:10 UTC unless you undo it."
    # Until then: no vote, no email; the same person may not decide again; the next wake is its end.
    state = review.state
    assert state.stage is not None and state.stage.approvals == []
    assert [n.kind for n in review.notifications] == [NotificationKind.ASSIGNED]
    assert rules.problem(state, act(ActionKind.REJECT, FIRST, "no")) == (
        "Your approval takes effect at 09:00:10 UTC unless you undo it. To decide otherwise, undo it first."
    )
    assert rules.abilities(state, FIRST).decide is False and rules.abilities(state, SECOND).decide is True
    assert timers.next_wake(state) == T0 + timedelta(seconds=10)
    # Past the deadline, the decision still counts: the deadline waits for it.
    state.stage.deadline = T0 + timedelta(seconds=5)
    assert timers.next_wake(state) == T0 + timedelta(seconds=10)
    clock.at = T0 + timedelta(seconds=10)
    timers.fire_due(review)
    # The decision first (a stage of "all" still waits for SECOND), then the deadline.
    assert state.held == [] and [v.user_id for v in state.stage.approvals] == [FIRST]
    approval, expired = review.events[-2:]
    assert (approval.kind, approval.action_id, approval.comment) == (
        EventKind.APPROVAL,
        approve.action_id,
        "ok",
    )
    assert expired.kind == EventKind.EXPIRED


def test_an_undo_names_a_held_decision_of_ones_own() -> None:
    review = under_review()
    review.state.policy.undo_seconds = 10
    handlers.apply(review, act(ActionKind.APPROVE, FIRST))
    target = review.state.held[0].action.action_id
    assert rules.problem(review.state, act(ActionKind.UNDO, FIRST)) == "Say which decision to undo."
    assert rules.input_problems(act(ActionKind.UNDO, FIRST)) == {"target": "Say which decision to undo."}
    assert rules.refusal(review.state, act(ActionKind.UNDO, SECOND, target_id=target)) == rules.Refusal(
        rules.Why.FORBIDDEN, "Only the person who made a decision can undo it."
    )
    assert rules.parse_action({"kind": "undo", "actor_id": FIRST, "target_id": 7}) == (
        "The action is not well formed."
    )
    assert rules.problem(review.state, act(ActionKind.UNDO, FIRST, target_id=target)) is None
    handlers.apply(review, act(ActionKind.UNDO, FIRST, target_id=target))
    assert review.state.held == [] and review.events[-1].kind == EventKind.UNDONE
    assert (
        rules.problem(review.state, act(ActionKind.UNDO, FIRST, target_id=target)) == rules.TOO_LATE_TO_UNDO
    )


def test_decisions_held_at_once_are_bounded() -> None:
    review = under_review()
    review.state.policy.undo_seconds = 10
    people = [Assignee(100 + i, f"p{i}") for i in range(rules.MAX_HELD + 1)]
    assert review.state.stage is not None
    review.state.stage.assignees = people
    review.state.participant_ids = [p.user_id for p in people]
    for person in people[:-1]:
        handlers.apply(review, act(ActionKind.APPROVE, person.user_id))
    assert len(review.state.held) == rules.MAX_HELD
    assert rules.problem(review.state, act(ActionKind.APPROVE, people[-1].user_id)) == (
        "Many decisions on this request are about to take effect; try again in a minute."
    )


def test_the_workflow_side_imports_nothing_of_django_the_app_or_channels() -> None:
    """workflows/ holds definitions, types, rules and policy: it can be tested and replayed on
    its own, and the sandbox re-imports only what it needs."""
    found = []
    for path in sorted(WORKFLOWS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [
                f"{path.name}: {name}"
                for name in names
                if name.split(".")[0] in {"django", "approvals", "channels", "asgiref"}
            ]
    assert found == []
