"""The approval workflow on the time-skipping test server, with the real activities and database."""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import RetryState, WorkflowAlreadyStartedError
from temporalio.testing import WorkflowEnvironment

from approvals.models import ApprovalRequest, OutboundEmail, RequestStatus, RequestType, Stage
from tests.conftest import LoopThread, as_user, make_request, wait_until
from tests.workflows import helpers
from tests.workflows.helpers import (
    accepted,
    act,
    action,
    answer,
    pending_names,
    refused,
    result,
    signal,
    sleep,
    start,
    state,
)
from workflows import rules
from workflows.approval import EARLIER_PATCHES, PATCH_FEWER_TASKS
from workflows.review import PATCH_PROGRESS_EMAIL
from workflows.types import ActionKind, EventKind
from workflows.types import RequestStatus as Status

pytestmark = pytest.mark.usefixtures("ts_worker", "ts_cleanup")


def test_reviewer_approves_and_everything_is_recorded_once(
    loop: LoopThread, time_skipping_env: WorkflowEnvironment, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase)
    handle = start(time_skipping_env, loop, request)

    answer = act(loop, handle, action(ActionKind.APPROVE, people["reviewer1"], "Go ahead"))

    assert answer.status == Status.APPROVED
    final = result(loop, handle)
    assert final.status == Status.APPROVED
    assert (final.decided.by_name, final.decided.comment) == ("reviewer1", "Go ahead")
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED
    assert (request.decided_by, request.decision_comment) == (people["reviewer1"], "Go ahead")
    kinds = list(request.events.values_list("kind", flat=True))
    assert kinds == ["submitted", "stage_started", "approval", "stage_approved", "approved"]
    sent = sorted((m.to[0], m.subject) for m in mail.outbox)
    assert sent == [
        ("requester@example.com", "Your request “New laptop” was approved"),
        ("reviewer1@example.com", "Please review: New laptop"),
        ("reviewer2@example.com", "Please review: New laptop"),
    ]
    assert OutboundEmail.objects.filter(status=OutboundEmail.Status.SENT).count() == 3


def test_actions_from_people_who_may_not_take_them_are_refused_with_reasons(
    loop: LoopThread, time_skipping_env: WorkflowEnvironment, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase)
    handle = start(time_skipping_env, loop, request)
    assert refused(loop, handle, action(ActionKind.APPROVE, people["outsider"])) == (
        "You are not an approver of this request, so you cannot decide it."
    )
    assert refused(loop, handle, action(ActionKind.APPROVE, people["requester"])) == (
        "You cannot decide on your own request."
    )
    assert refused(loop, handle, action(ActionKind.REJECT, people["reviewer2"], "   ")) == (
        "A comment is required to reject or to request changes."
    )
    # The same through a signal: dropped, nothing changes.
    signal(loop, handle, action(ActionKind.APPROVE, people["manager"]))  # not an approver before escalation
    assert state(loop, handle).status == Status.IN_REVIEW

    # A late approval, while the workflow still runs (the rejection is applied, and its answer
    # waits for its projection; once that is done the workflow ends, and nothing answers).
    rejection = accepted(loop, handle, action(ActionKind.REJECT, people["reviewer2"], "Too expensive"))
    message = refused(loop, handle, action(ActionKind.APPROVE, people["reviewer1"], "Late approval"))
    assert message.startswith("This request is already rejected by reviewer2 at ")
    assert answer(loop, rejection).status == Status.REJECTED
    final = result(loop, handle)
    assert final.status == Status.REJECTED
    request.refresh_from_db()
    assert (request.status, request.decision_comment) == (RequestStatus.REJECTED, "Too expensive")


def test_an_action_leaves_the_deadline_timer_alone_unless_it_moves_the_deadline(
    loop: LoopThread, time_skipping_env: WorkflowEnvironment, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase)
    handle = start(time_skipping_env, loop, request)
    helpers.wait_idle(loop, handle)

    def events_of(do: Callable[[], object]) -> Counter[int]:
        """The kinds of event `do` adds to the history."""
        before = len(helpers.history(loop, handle))
        do()
        helpers.wait_idle(loop, handle)
        return Counter(e.event_type for e in helpers.history(loop, handle)[before:])

    note = action(ActionKind.COMMENT, people["reviewer1"], "Which one?")
    comment = events_of(lambda: act(loop, handle, note))
    # The task that takes it, and the one after its projection:
    assert comment[EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED] == 2
    assert comment[EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED] == 1
    assert comment[EventType.EVENT_TYPE_TIMER_STARTED] == comment[EventType.EVENT_TYPE_TIMER_CANCELED] == 0
    assert request.events.filter(kind="comment").count() == 1  # in the read model when answered
    # Moving the deadline starts the timer again, once.
    extend = action(ActionKind.EXTEND, people["reviewer2"], extend_seconds=86400)
    extended = events_of(lambda: act(loop, handle, extend))
    assert extended[EventType.EVENT_TYPE_TIMER_CANCELED] == extended[EventType.EVENT_TYPE_TIMER_STARTED] == 1
    # And the timer still fires on time: the manager is asked after 3 + 1 days, not 3.
    sleep(loop, time_skipping_env, days=3, hours=12)
    helpers.wait_idle(loop, handle)
    assert "manager" not in pending_names(state(loop, handle))
    sleep(loop, time_skipping_env, days=1)
    wait_until(lambda: "manager" in pending_names(state(loop, handle)), what="the escalation to the manager")


def test_unanswered_request_escalates_to_the_manager_after_its_multi_day_deadline(
    loop: LoopThread, time_skipping_env: WorkflowEnvironment, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase)
    began = time.monotonic()
    handle = start(time_skipping_env, loop, request)

    sleep(loop, time_skipping_env, days=3, minutes=-1)
    assert state(loop, handle).stage.escalation_level == 0

    sleep(loop, time_skipping_env, minutes=2)
    now = state(loop, handle)
    assert now.status == Status.IN_REVIEW
    assert now.stage.escalation_level == 1
    assert pending_names(now) == ["manager", "reviewer1", "reviewer2"]

    request.refresh_from_db()
    assert request.participants.get(user=people["manager"]).level == 1
    escalation = OutboundEmail.objects.get(kind="escalated")
    assert escalation.to == "manager@example.com"
    assert escalation.status == OutboundEmail.Status.SENT
    assert "reviewers still can" in escalation.body_text

    # The original reviewer can still act after the escalation.
    act(loop, handle, action(ActionKind.APPROVE, people["reviewer1"], "Sorry for the delay"))
    final = result(loop, handle)
    elapsed = time.monotonic() - began
    assert final.status == Status.APPROVED
    assert final.decided.by_name == "reviewer1"
    kinds = [e.kind for e in final.timeline]
    assert kinds[:3] == [EventKind.SUBMITTED, EventKind.STAGE_STARTED, EventKind.ESCALATED]
    print(f"3-day escalation path ran in {elapsed:.2f}s of wall time")


def test_manager_decides_after_escalation(
    loop: LoopThread, time_skipping_env: WorkflowEnvironment, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase)
    handle = start(time_skipping_env, loop, request)
    sleep(loop, time_skipping_env, days=3, hours=1)

    act(loop, handle, action(ActionKind.REJECT, people["manager"], "Not this quarter"))

    final = result(loop, handle)
    assert (final.status, final.decided.by_name) == (Status.REJECTED, "manager")
    assert OutboundEmail.objects.filter(kind="decided", to="requester@example.com").count() == 1


def test_double_start_with_the_same_request_id_is_refused(
    loop: LoopThread, time_skipping_env: WorkflowEnvironment, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase)
    handle = start(time_skipping_env, loop, request)
    with pytest.raises(WorkflowAlreadyStartedError):
        start(time_skipping_env, loop, request)
    act(loop, handle, action(ActionKind.APPROVE, people["reviewer1"]))
    assert result(loop, handle).status == Status.APPROVED


def test_a_missing_request_fails_the_activity_without_retrying(
    loop: LoopThread, time_skipping_env: WorkflowEnvironment, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase)
    ApprovalRequest.objects.filter(pk=request.pk).update(public_id=uuid.uuid4())  # the row "disappears"
    handle = start(time_skipping_env, loop, request, wait=False)
    with pytest.raises(WorkflowFailureError) as failure:
        result(loop, handle)
    activity_error = failure.value.cause
    assert "No request" in str(activity_error.cause)
    assert activity_error.cause.type == "NotFound"
    assert activity_error.retry_state == RetryState.NON_RETRYABLE_FAILURE  # failed at once, not retried


def test_requester_hears_when_the_request_moves_on_to_the_next_stage(
    loop: LoopThread, time_skipping_env: WorkflowEnvironment, people: dict[str, User], purchase: RequestType
) -> None:
    finance = Stage.objects.create(request_type=purchase, order=2, name="Finance", deadline=timedelta(days=2))
    finance.approver_users.set([people["manager"]])
    request = make_request(people, purchase)
    handle = start(time_skipping_env, loop, request)

    act(loop, handle, action(ActionKind.APPROVE, people["reviewer2"], "Fine by me"))

    wait_until(lambda: OutboundEmail.objects.filter(kind="progress").exists(), what="the progress email")
    progress = OutboundEmail.objects.get(kind="progress")
    assert (progress.to, progress.subject) == ("requester@example.com", "“New laptop” moved on to Finance")
    assert "reviewer2 approved a stage" in progress.body_text
    history = loop.run(handle.fetch_history())
    markers = [e for e in history.events if e.HasField("marker_recorded_event_attributes")]
    # The patch's marker, or that of a later patch that implies it: this run takes the new path.
    assert PATCH_PROGRESS_EMAIL in EARLIER_PATCHES
    assert any(PATCH_FEWER_TASKS in str(m) for m in markers)


@pytest.mark.parametrize("distinct", [True, False], ids=["distinct approvers", "rule off"])
def test_nobody_approves_two_stages_of_one_request_where_the_policy_says_so(
    loop: LoopThread,
    time_skipping_env: WorkflowEnvironment,
    people: dict[str, User],
    purchase: RequestType,
    distinct: bool,
) -> None:
    """reviewer2 approves stage 1; stage 2 names reviewer2 and the manager. With the rule on,
    stage 2 asks only the manager, who cannot hand it to reviewer2 (nor is offered to)."""
    assert purchase.distinct_approvers, "on by default for a new request type"
    purchase.distinct_approvers = distinct
    purchase.save()
    finance = Stage.objects.create(request_type=purchase, order=2, name="Finance", deadline=timedelta(days=2))
    finance.approver_users.set([people["reviewer2"], people["manager"]])
    request = make_request(people, purchase)
    handle = start(time_skipping_env, loop, request)
    ApprovalRequest.objects.filter(pk=request.pk).update(workflow_started_at=timezone.now())

    act(loop, handle, action(ActionKind.APPROVE, people["reviewer2"], "Fine by me"))
    wait_until(lambda: helpers.assigned(loop, handle), what="stage 2's approvers")
    helpers.wait_idle(loop, handle)
    now = state(loop, handle)
    assert now.stage is not None and now.stage.name == "Finance"
    page = as_user(people["manager"]).get(reverse("request_detail", args=[request.public_id]))
    html = page.content.decode()
    select = re.search(r'<select id="delegate-[^"]*" name="delegate">(.*?)</select>', html, re.S)
    assert select, "the manager is offered to delegate"
    offered = re.findall(r'<option value="(\d+)">', select.group(1))
    names = {str(u.pk): name for name, u in people.items()}

    if distinct:
        assert pending_names(now) == ["manager"]
        assert sorted(names[pk] for pk in offered) == ["reviewer1"]  # who reviews here, and may
        to, manager = people["reviewer2"], people["manager"]
        delegate = action(ActionKind.DELEGATE, manager, delegate_id=to.pk, delegate_name="reviewer2")
        assert refused(loop, handle, delegate) == (
            "reviewer2 approved stage “Review”, and " + rules.DISTINCT_APPROVERS
        )
        # Past the web's check and the validator, as an email link's signal: dropped all the same.
        signal(loop, handle, action(ActionKind.APPROVE, people["reviewer2"]))
        assert state(loop, handle).status == Status.IN_REVIEW
        act(loop, handle, action(ActionKind.APPROVE, people["manager"]))
    else:
        assert pending_names(now) == ["manager", "reviewer2"]
        assert sorted(names[pk] for pk in offered) == ["reviewer1"]  # who reviews here, and may
        act(loop, handle, action(ActionKind.APPROVE, people["reviewer2"]))
    final = result(loop, handle)
    assert final.status == Status.APPROVED
    approvers = [stage.approver_ids for stage in final.closed_stages]
    expected = people["manager"] if distinct else people["reviewer2"]
    assert approvers == [[people["reviewer2"].pk], [expected.pk]]
