"""Undo: a decision waits out its request type's undo period on a durable timer before it takes
effect, and its maker may take it back until then (the time-skipping test server, the real
activities and database)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from temporalio.testing import WorkflowEnvironment

from approvals.models import ApprovalRequest, RequestType, Stage
from approvals.selectors import Decision, decision_status, request_state
from tests.conftest import LoopThread, make_request, wait_until
from tests.workflows.helpers import act, action, refused, result, signal, sleep, start, state, wait_idle
from workflows import rules
from workflows.types import ActionKind, EventKind
from workflows.types import RequestStatus as Status

pytestmark = pytest.mark.usefixtures("ts_worker", "ts_cleanup")

UNDO_SECONDS = 10


@pytest.fixture
def purchase(purchase: RequestType) -> RequestType:
    purchase.undo_seconds = UNDO_SECONDS
    purchase.save()
    return purchase


def kinds(request: ApprovalRequest) -> list[str]:
    return list(request.events.values_list("kind", flat=True))


def subjects() -> list[str]:
    return sorted(m.subject for m in mail.outbox)


ASSIGNED = ["Please review: New laptop", "Please review: New laptop"]


def test_a_decision_takes_effect_only_when_its_undo_period_ends(
    loop: LoopThread, time_skipping_env: WorkflowEnvironment, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase)
    handle = start(time_skipping_env, loop, request)
    approve = action(ActionKind.APPROVE, people["reviewer1"], "Go ahead")

    answer = act(loop, handle, approve)

    assert answer.status == Status.IN_REVIEW and answer.undo_until is not None
    assert answer.message.startswith("Your approval takes effect at ")
    assert answer.message.endswith(" unless you undo it.")
    held = state(loop, handle)
    assert (held.status, held.stage.approvals if held.stage else None) == (Status.IN_REVIEW, [])
    assert [h.action.action_id for h in held.held] == [approve.action_id]
    # Meanwhile the read model shows it held, and nothing it does has happened: no email, no vote.
    request.refresh_from_db()
    assert (request.status, kinds(request)[-1]) == ("in_review", EventKind.HELD)
    assert request.events.get(kind=EventKind.HELD).comment == "Go ahead"  # kept for a refill
    assert decision_status(request=request, action_id=approve.action_id)[0] == Decision.HELD
    assert rules.held_by(request_state(request=request), people["reviewer1"].pk) is not None
    assert subjects() == ASSIGNED
    # A second decision by the same person waits for the first to be undone.
    reject = action(ActionKind.REJECT, people["reviewer1"], "No")
    assert "To decide otherwise, undo it first." in refused(loop, handle, reject)

    sleep(loop, time_skipping_env, seconds=UNDO_SECONDS + 1)

    final = result(loop, handle)
    assert (final.status, final.decided.by_name, final.decided.comment) == (
        Status.APPROVED,
        "reviewer1",
        "Go ahead",
    )
    request.refresh_from_db()
    assert kinds(request)[-4:] == [
        EventKind.HELD,
        EventKind.APPROVAL,
        EventKind.STAGE_APPROVED,
        EventKind.APPROVED,
    ]
    assert subjects() == [*ASSIGNED, "Your request “New laptop” was approved"]
    assert decision_status(request=request, action_id=approve.action_id)[0] == Decision.DONE
    # Too late to undo now: the rules say so over the read model, before Temporal is asked.
    undo = action(ActionKind.UNDO, people["reviewer1"], target_id=approve.action_id)
    assert rules.problem(request_state(request=request), undo) == rules.TOO_LATE_TO_UNDO


def test_an_undone_decision_never_happens_and_its_maker_may_decide_again(
    loop: LoopThread, time_skipping_env: WorkflowEnvironment, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase)
    handle = start(time_skipping_env, loop, request)
    reject = action(ActionKind.REJECT, people["reviewer1"], "Too dear")
    act(loop, handle, reject)
    # Only its maker may undo it, and only what is held.
    other = action(ActionKind.UNDO, people["reviewer2"], target_id=reject.action_id)
    assert refused(loop, handle, other) == "Only the person who made a decision can undo it."
    nothing = action(ActionKind.UNDO, people["reviewer1"], target_id="no-such-decision")
    assert refused(loop, handle, nothing) == rules.TOO_LATE_TO_UNDO

    undone = act(loop, handle, action(ActionKind.UNDO, people["reviewer1"], target_id=reject.action_id))

    assert (
        undone.message == "Your rejection is undone: it never took effect, and nobody was emailed about it."
    )
    assert state(loop, handle).held == []
    sleep(loop, time_skipping_env, seconds=UNDO_SECONDS * 3)
    now = state(loop, handle)
    assert (now.status, now.decided) == (Status.IN_REVIEW, None)
    request.refresh_from_db()
    assert kinds(request)[-2:] == [EventKind.HELD, EventKind.UNDONE]
    assert decision_status(request=request, action_id=reject.action_id)[0] == Decision.UNDONE
    assert subjects() == ASSIGNED
    # The undone decision sent again (a signal retried) is not taken for a new one.
    signal(loop, handle, reject)
    wait_idle(loop, handle)
    assert state(loop, handle).held == []
    # A new decision is held afresh, and takes effect.
    act(loop, handle, action(ActionKind.APPROVE, people["reviewer1"]))
    sleep(loop, time_skipping_env, seconds=UNDO_SECONDS + 1)
    assert result(loop, handle).status == Status.APPROVED


def test_a_decision_made_before_the_deadline_counts_though_its_undo_period_ends_after(
    loop: LoopThread, time_skipping_env: WorkflowEnvironment, people: dict[str, User], purchase: RequestType
) -> None:
    stage = Stage.objects.get(request_type=purchase)
    stage.deadline = timedelta(minutes=1)
    stage.save()
    stage.escalation_levels.all().delete()  # the deadline expires the request
    request = make_request(people, purchase)
    handle = start(time_skipping_env, loop, request)
    sleep(loop, time_skipping_env, seconds=55)

    act(loop, handle, action(ActionKind.APPROVE, people["reviewer2"], "Just in time"))
    sleep(loop, time_skipping_env, seconds=UNDO_SECONDS + 5)

    final = result(loop, handle)
    assert (final.status, final.decided.by_name) == (Status.APPROVED, "reviewer2")
    request.refresh_from_db()
    assert EventKind.EXPIRED not in kinds(request)


def test_the_deadline_follows_an_undo_made_after_it(
    loop: LoopThread, time_skipping_env: WorkflowEnvironment, people: dict[str, User], purchase: RequestType
) -> None:
    stage = Stage.objects.get(request_type=purchase)
    stage.deadline = timedelta(minutes=1)
    stage.save()
    stage.escalation_levels.all().delete()
    request = make_request(people, purchase)
    handle = start(time_skipping_env, loop, request)
    sleep(loop, time_skipping_env, seconds=55)
    approve = action(ActionKind.APPROVE, people["reviewer2"])
    act(loop, handle, approve)
    sleep(loop, time_skipping_env, seconds=7)  # past the deadline, inside the undo period

    act(loop, handle, action(ActionKind.UNDO, people["reviewer2"], target_id=approve.action_id))

    assert result(loop, handle).status == Status.EXPIRED


def test_held_decisions_that_no_longer_apply_are_let_go_at_once_and_say_why(
    loop: LoopThread, time_skipping_env: WorkflowEnvironment, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase)
    handle = start(time_skipping_env, loop, request)
    approve = action(ActionKind.APPROVE, people["reviewer1"])
    act(loop, handle, approve)

    act(loop, handle, action(ActionKind.WITHDRAW, people["requester"], "Not needed"))

    final = result(loop, handle)
    assert (final.status, final.held) == (Status.WITHDRAWN, [])
    request.refresh_from_db()
    lapsed = request.events.get(kind=EventKind.LAPSED)
    assert (lapsed.actor, lapsed.actor_name) == (people["reviewer1"], "")
    assert lapsed.detail.startswith("reviewer1's approval, made at ")
    assert ", did not take effect: this request is already withdrawn by requester" in lapsed.detail
    assert decision_status(request=request, action_id=approve.action_id)[0] == Decision.LAPSED


def test_two_held_decisions_take_effect_in_the_order_they_were_made(
    loop: LoopThread, time_skipping_env: WorkflowEnvironment, people: dict[str, User], purchase: RequestType
) -> None:
    """The first to end its period decides; the second then finds the request decided."""
    request = make_request(people, purchase)
    handle = start(time_skipping_env, loop, request)
    act(loop, handle, action(ActionKind.REQUEST_CHANGES, people["reviewer2"], "Add a quote"))
    sleep(loop, time_skipping_env, seconds=2)
    # By a signal, as an email link sends it: held all the same.
    signal(loop, handle, action(ActionKind.APPROVE, people["reviewer1"]))
    wait_until(lambda: len(state(loop, handle).held) == 2, what="both decisions to be held")

    sleep(loop, time_skipping_env, seconds=UNDO_SECONDS + 3)
    wait_idle(loop, handle)

    now = state(loop, handle)
    assert (now.status, now.held) == (Status.CHANGES_REQUESTED, [])
    request.refresh_from_db()
    assert kinds(request)[-4:] == [
        EventKind.HELD,
        EventKind.HELD,
        EventKind.CHANGES_REQUESTED,
        EventKind.LAPSED,
    ]
    assert subjects() == sorted([*ASSIGNED, "Changes requested on “New laptop”"])
