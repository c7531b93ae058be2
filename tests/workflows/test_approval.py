"""The approval workflow on the time-skipping test server, with the real activities and database."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from temporalio.client import WorkflowHandle
from temporalio.exceptions import RetryState
from temporalio.testing import WorkflowEnvironment

from approvals.models import ApprovalRequest, OutboundEmail, RequestStatus, RequestType
from approvals.services import approval_input_for
from tests.conftest import LoopThread, make_request
from workflows.approval import ApprovalWorkflow
from workflows.types import (
    INTERACTIVE_TASK_QUEUE,
    ApprovalOutcome,
    Decision,
    DecisionInput,
)
from workflows.types import (
    RequestStatus as WfStatus,
)

pytestmark = pytest.mark.usefixtures("ts_worker")


def start(env: WorkflowEnvironment, loop: LoopThread, request: ApprovalRequest) -> WorkflowHandle:
    return loop.run(
        env.client.start_workflow(
            ApprovalWorkflow.run,
            approval_input_for(request),
            id=request.workflow_id,
            task_queue=INTERACTIVE_TASK_QUEUE,
        )
    )


def decide(
    loop: LoopThread, handle: WorkflowHandle, user: User, decision: Decision, comment: str = ""
) -> None:
    loop.run(handle.signal(ApprovalWorkflow.decide, DecisionInput(user.pk, decision, comment)))


def test_reviewer_approves_and_everything_is_recorded_once(
    loop: LoopThread, time_skipping_env: WorkflowEnvironment, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase)
    handle = start(time_skipping_env, loop, request)
    decide(loop, handle, people["reviewer1"], Decision.APPROVE, "Go ahead")

    outcome: ApprovalOutcome = loop.run(handle.result())

    assert outcome == ApprovalOutcome(
        decision=Decision.APPROVE, decided_by=people["reviewer1"].pk, escalated=False
    )
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED
    assert request.decided_by == people["reviewer1"]
    assert request.decision_comment == "Go ahead"
    assert list(request.events.values_list("seq", "kind")) == [(1, "review_started"), (2, "approved")]
    sent = sorted((m.to[0], m.subject) for m in mail.outbox)
    assert sent == [
        ("requester@example.com", "Your request “New laptop” was approved"),
        ("reviewer1@example.com", "Please review: New laptop"),
        ("reviewer2@example.com", "Please review: New laptop"),
    ]
    assert OutboundEmail.objects.filter(status=OutboundEmail.Status.SENT).count() == 3


def test_decisions_from_non_approvers_and_bare_rejections_are_ignored(
    loop: LoopThread, time_skipping_env: WorkflowEnvironment, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase)
    handle = start(time_skipping_env, loop, request)
    decide(loop, handle, people["outsider"], Decision.APPROVE)
    decide(loop, handle, people["requester"], Decision.APPROVE)
    decide(loop, handle, people["manager"], Decision.APPROVE)  # not an approver before escalation
    decide(loop, handle, people["reviewer2"], Decision.REJECT, "   ")

    state = loop.run(handle.query(ApprovalWorkflow.state))
    assert state.status == WfStatus.IN_REVIEW
    assert state.decision is None

    decide(loop, handle, people["reviewer2"], Decision.REJECT, "Too expensive")
    decide(loop, handle, people["reviewer1"], Decision.APPROVE, "Late approval")  # already decided
    outcome = loop.run(handle.result())
    assert outcome.decision == Decision.REJECT
    assert outcome.decided_by == people["reviewer2"].pk
    request.refresh_from_db()
    assert (request.status, request.decision_comment) == (RequestStatus.REJECTED, "Too expensive")


def test_unanswered_request_escalates_to_the_manager_after_its_multi_day_deadline(
    loop: LoopThread, time_skipping_env: WorkflowEnvironment, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase)
    began = time.monotonic()
    handle = start(time_skipping_env, loop, request)

    loop.run(time_skipping_env.sleep(timedelta(days=3) - timedelta(minutes=1)))
    assert loop.run(handle.query(ApprovalWorkflow.state)).escalated is False

    loop.run(time_skipping_env.sleep(timedelta(minutes=2)))
    state = loop.run(handle.query(ApprovalWorkflow.state))
    assert state.escalated is True
    assert state.status == WfStatus.ESCALATED
    assert people["manager"].pk in state.approver_ids

    request.refresh_from_db()
    assert request.status == RequestStatus.ESCALATED
    assert request.approvers.filter(user=people["manager"], role="escalation").exists()
    escalation = OutboundEmail.objects.get(kind="escalated")
    assert escalation.to == "manager@example.com"
    assert escalation.status == OutboundEmail.Status.SENT
    assert "reviewers still can" in escalation.body_text

    # The original reviewer can still act after the escalation.
    decide(loop, handle, people["reviewer1"], Decision.APPROVE, "Sorry for the delay")
    outcome = loop.run(handle.result())
    elapsed = time.monotonic() - began
    assert outcome == ApprovalOutcome(
        decision=Decision.APPROVE, decided_by=people["reviewer1"].pk, escalated=True
    )
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED
    assert list(request.events.values_list("kind", flat=True)) == ["review_started", "escalated", "approved"]
    print(f"3-day escalation path ran in {elapsed:.2f}s of wall time")


def test_manager_decides_after_escalation(
    loop: LoopThread, time_skipping_env: WorkflowEnvironment, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase)
    handle = start(time_skipping_env, loop, request)
    loop.run(time_skipping_env.sleep(timedelta(days=4)))

    decide(loop, handle, people["manager"], Decision.REJECT, "Not this quarter")

    outcome = loop.run(handle.result())
    assert (outcome.decision, outcome.decided_by, outcome.escalated) == (
        Decision.REJECT,
        people["manager"].pk,
        True,
    )
    assert OutboundEmail.objects.filter(kind="decided", to="requester@example.com").count() == 1


def test_double_start_with_the_same_request_id_is_refused(
    loop: LoopThread, time_skipping_env: WorkflowEnvironment, people: dict[str, User], purchase: RequestType
) -> None:
    from temporalio.exceptions import WorkflowAlreadyStartedError

    request = make_request(people, purchase)
    handle = start(time_skipping_env, loop, request)
    with pytest.raises(WorkflowAlreadyStartedError):
        start(time_skipping_env, loop, request)
    decide(loop, handle, people["reviewer1"], Decision.APPROVE)
    loop.run(handle.result())


def test_a_missing_request_fails_the_activity_without_retrying(
    loop: LoopThread, time_skipping_env: WorkflowEnvironment, people: dict[str, User], purchase: RequestType
) -> None:
    from temporalio.client import WorkflowFailureError

    request = make_request(people, purchase)
    workflow_input = approval_input_for(request)
    workflow_input.request_id = str(uuid.uuid4())  # no such row
    handle = loop.run(
        time_skipping_env.client.start_workflow(
            ApprovalWorkflow.run,
            workflow_input,
            id=f"approval-{workflow_input.request_id}",
            task_queue=INTERACTIVE_TASK_QUEUE,
        )
    )
    with pytest.raises(WorkflowFailureError) as failure:
        loop.run(handle.result(), timeout=30)
    activity_error = failure.value.cause
    assert "No request" in str(activity_error.cause)
    assert activity_error.cause.type == "NotFound"
    assert activity_error.retry_state == RetryState.NON_RETRYABLE_FAILURE  # failed at once, not retried
