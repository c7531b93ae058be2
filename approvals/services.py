"""Services: every write, and every conversation with Temporal, goes through here."""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from approvals.exceptions import (
    AlreadyDecided,
    InvalidInput,
    NotAllowed,
    NotFound,
    ReviewNotStarted,
    WorkflowUnavailable,
)
from approvals.models import (
    ApprovalRequest,
    Approver,
    ApproverRole,
    OutboundEmail,
    RequestEvent,
    RequestType,
)
from workflows import client as temporal
from workflows.approval import ApprovalWorkflow
from workflows.types import (
    INTERACTIVE_TASK_QUEUE,
    ApprovalInput,
    ApprovalState,
    Decision,
    DecisionInput,
    NotificationInput,
    NotificationKind,
    TransitionInput,
)

logger = logging.getLogger(__name__)

# Errors that mean "Temporal is not there right now", as opposed to a bug of ours.
UNREACHABLE = (temporal.TemporalUnreachable, RPCError, RuntimeError, OSError)


# --- Submitting and starting --------------------------------------------------------------


def request_submit(
    *,
    requester: User,
    request_type: RequestType,
    title: str,
    details: str = "",
    amount: Decimal | None = None,
    public_id: uuid.UUID | None = None,
) -> ApprovalRequest:
    """Save the request and its reviewers; start its workflow once the transaction commits.

    `public_id` comes with the form, so submitting the same form twice (a double click, a
    retried POST) returns the first request instead of making a second one. The row is the
    outbox: if Temporal cannot be reached now, the worker process starts the workflow later
    (see `requests_start_pending`).
    """
    public_id = public_id or uuid.uuid4()
    if existing := _earlier_submission(public_id=public_id, requester=requester):
        return existing
    try:
        return _request_create(
            requester=requester,
            request_type=request_type,
            title=title,
            details=details,
            amount=amount,
            public_id=public_id,
        )
    except IntegrityError:
        # The same form, submitted twice at once: the other submission won the race.
        if existing := _earlier_submission(public_id=public_id, requester=requester):
            return existing
        raise


def _earlier_submission(*, public_id: uuid.UUID, requester: User) -> ApprovalRequest | None:
    existing = ApprovalRequest.objects.filter(public_id=public_id).first()
    if existing is not None and existing.requester_id != requester.pk:
        raise InvalidInput("This form was already used by someone else; open a new request form.")
    return existing


@transaction.atomic
def _request_create(
    *,
    requester: User,
    request_type: RequestType,
    title: str,
    details: str,
    amount: Decimal | None,
    public_id: uuid.UUID,
) -> ApprovalRequest:
    if not request_type.is_active:
        raise InvalidInput(f"“{request_type}” requests are no longer accepted.")
    reviewers = list(request_type.reviewers.exclude(pk=requester.pk).filter(is_active=True))
    if not reviewers:
        raise InvalidInput(
            f"Nobody but you can review “{request_type}” requests; ask an admin to add a reviewer."
        )
    request = ApprovalRequest.objects.create(
        public_id=public_id,
        request_type=request_type,
        requester=requester,
        title=title,
        details=details,
        amount=amount,
    )
    Approver.objects.bulk_create([Approver(request=request, user=user) for user in reviewers])
    RequestEvent.objects.create(
        request=request, seq=0, kind=RequestEvent.Kind.SUBMITTED, actor=requester, occurred_at=timezone.now()
    )
    transaction.on_commit(lambda: request_start_workflow(public_id=public_id))
    return request


def approval_input_for(request: ApprovalRequest) -> ApprovalInput:
    request_type = request.request_type
    reviewer_ids = list(
        request.approvers.filter(role=ApproverRole.REVIEWER)
        .order_by("user_id")
        .values_list("user_id", flat=True)
    )
    manager = request_type.escalation_manager
    return ApprovalInput(
        request_id=str(request.public_id),
        requester_id=request.requester_id,
        reviewer_ids=reviewer_ids,
        escalation_ids=[manager.pk] if manager and manager.pk != request.requester_id else [],
        review_deadline_seconds=int(request_type.review_deadline.total_seconds()),
    )


def request_start_workflow(*, public_id: Any) -> bool:
    """Start the request's workflow if it has not been started; True once it is running.

    Safe to call any number of times from any process: the workflow id is derived from the
    request, and Temporal refuses a second workflow with that id.
    """
    request = ApprovalRequest.objects.select_related("request_type").filter(public_id=public_id).first()
    if request is None:
        raise NotFound(f"No request {public_id}.")
    if request.workflow_started_at is not None:
        return True
    workflow_input = approval_input_for(request)

    async def start(client: Client) -> None:
        await client.start_workflow(
            ApprovalWorkflow.run,
            workflow_input,
            id=request.workflow_id,
            task_queue=INTERACTIVE_TASK_QUEUE,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            rpc_timeout=settings.TEMPORAL_RPC_TIMEOUT,
        )

    try:
        temporal.call(start)
    except WorkflowAlreadyStartedError:
        pass
    except UNREACHABLE as exc:
        logger.warning("Could not start %s yet: %s", request.workflow_id, exc)
        ApprovalRequest.objects.filter(pk=request.pk).update(
            start_attempts=request.start_attempts + 1, last_start_error=str(exc)[:1000]
        )
        return False
    ApprovalRequest.objects.filter(pk=request.pk, workflow_started_at__isnull=True).update(
        workflow_started_at=timezone.now(), start_attempts=request.start_attempts + 1, last_start_error=""
    )
    return True


def requests_start_pending(*, limit: int = 100) -> int:
    """The outbox relay: start workflows that could not be started on submit. Returns how many."""
    started = 0
    pending = ApprovalRequest.objects.filter(workflow_started_at__isnull=True).order_by("created_at")
    for public_id in pending.values_list("public_id", flat=True)[:limit]:
        if not request_start_workflow(public_id=public_id):
            break  # Temporal is still away; try again on the next round.
        started += 1
    return started


# --- Decisions and live state -------------------------------------------------------------


def decision_submit(*, request: ApprovalRequest, actor: User, decision: Decision, comment: str = "") -> None:
    """Send a reviewer's decision to the request's workflow, after checking they may decide."""
    comment = comment.strip()
    if not request.approvers.filter(user=actor).exists() or actor.pk == request.requester_id:
        raise NotAllowed("You are not a reviewer of this request, so you cannot decide it.")
    if not request.is_open:
        who = request.decided_by.get_username() if request.decided_by else "someone else"
        raise AlreadyDecided(f"This request was already {request.get_status_display().lower()} by {who}.")
    if decision == Decision.REJECT and not comment:
        raise InvalidInput("Say why you reject the request: a comment is required.")
    if request.workflow_started_at is None:
        raise ReviewNotStarted(
            "Review has not started yet: the workflow service is catching up. Try again shortly."
        )

    async def signal(client: Client) -> None:
        handle = client.get_workflow_handle(request.workflow_id)
        await handle.signal(
            ApprovalWorkflow.decide,
            DecisionInput(actor_id=actor.pk, decision=decision, comment=comment),
            rpc_timeout=settings.TEMPORAL_RPC_TIMEOUT,
        )

    try:
        temporal.call(signal)
    except UNREACHABLE as exc:
        logger.warning("Could not signal %s: %s", request.workflow_id, exc)
        raise WorkflowUnavailable(
            "The workflow service did not answer, so your decision was not recorded. Please try again."
        ) from exc


def request_live_state(*, request: ApprovalRequest) -> ApprovalState | None:
    """The workflow's own view of the request, or None when Temporal cannot answer now."""
    if request.workflow_started_at is None:
        return None

    async def query(client: Client) -> ApprovalState | None:
        handle = client.get_workflow_handle(request.workflow_id)
        description = await handle.describe(rpc_timeout=settings.TEMPORAL_RPC_TIMEOUT)
        if description.status not in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED):
            return None
        return await handle.query(ApprovalWorkflow.state, rpc_timeout=settings.TEMPORAL_RPC_TIMEOUT)

    try:
        return temporal.call(query)
    except UNREACHABLE as exc:
        logger.info("No live state for %s: %s", request.workflow_id, exc)
        return None


# --- Called by activities -----------------------------------------------------------------


@transaction.atomic
def request_record_transition(*, transition: TransitionInput) -> None:
    """Project one workflow state change into the read model; idempotent and order-safe."""
    request = ApprovalRequest.objects.select_for_update().filter(public_id=transition.request_id).first()
    if request is None:
        raise NotFound(f"No request {transition.request_id}.")
    RequestEvent.objects.get_or_create(
        request=request,
        seq=transition.seq,
        defaults={
            "kind": transition.event.value,
            "actor_id": transition.actor_id,
            "comment": transition.comment,
            "occurred_at": transition.occurred_at,
        },
    )
    for user_id in transition.added_approver_ids:
        Approver.objects.get_or_create(
            request=request, user_id=user_id, defaults={"role": transition.added_approver_role}
        )
    if transition.seq <= request.version:
        return  # A newer state is already recorded.
    request.version = transition.seq
    request.status = transition.status.value
    request.deadline = transition.deadline
    if transition.event.value in (RequestEvent.Kind.APPROVED, RequestEvent.Kind.REJECTED):
        request.decided_by_id = transition.actor_id
        request.decided_at = transition.occurred_at
        request.decision_comment = transition.comment
    request.save(
        update_fields=[
            "version",
            "status",
            "deadline",
            "decided_by",
            "decided_at",
            "decision_comment",
            "updated_at",
        ]
    )


EMAIL_SUBJECTS = {
    NotificationKind.ASSIGNED: "Please review: {title}",
    NotificationKind.ESCALATED: "Escalated to you: {title} is past its review deadline",
    NotificationKind.DECIDED: "Your request “{title}” was {status}",
}


def notification_send(*, notification: NotificationInput) -> None:
    """Email each recipient once per idempotency key, however often this is retried."""
    request = (
        ApprovalRequest.objects.select_related("request_type", "requester", "decided_by")
        .filter(public_id=notification.request_id)
        .first()
    )
    if request is None:
        raise NotFound(f"No request {notification.request_id}.")
    for user in User.objects.filter(pk__in=notification.recipient_ids).order_by("pk"):
        _email_once(
            request=request,
            kind=notification.kind,
            user=user,
            key=f"{notification.idempotency_key}:{user.pk}",
        )


def _email_once(*, request: ApprovalRequest, kind: NotificationKind, user: User, key: str) -> None:
    context = {
        "request": request,
        "recipient": user,
        "url": settings.SITE_URL + request.get_absolute_url(),
        "inbox_url": settings.SITE_URL + "/inbox/",
    }
    email, _ = OutboundEmail.objects.get_or_create(
        idempotency_key=key,
        defaults={
            "request": request,
            "kind": kind.value,
            "to": user.email,
            "subject": EMAIL_SUBJECTS[kind].format(
                title=request.title, status=request.get_status_display().lower()
            ),
            "body_text": render_to_string(f"approvals/email/{kind.value}.txt", context),
            "body_html": render_to_string(f"approvals/email/{kind.value}.html", context),
        },
    )
    if email.status != OutboundEmail.Status.PENDING:
        return
    if not email.to:
        OutboundEmail.objects.filter(pk=email.pk).update(
            status=OutboundEmail.Status.FAILED, error=f"{user.get_username()} has no email address."
        )
        return
    message = EmailMultiAlternatives(
        email.subject, email.body_text, to=[email.to], headers={"X-Idempotency-Key": key}
    )
    message.attach_alternative(email.body_html, "text/html")
    message.send()  # A connection error propagates and the activity retries with backoff.
    OutboundEmail.objects.filter(pk=email.pk).update(status=OutboundEmail.Status.SENT, sent_at=timezone.now())
