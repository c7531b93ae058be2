"""Staff on workflows in trouble: find them, cancel a request, retry its workflow.

Trouble is found in two places. Temporal knows which runs failed, were terminated or timed out,
and which keep failing their workflow tasks (the `TemporalReportedProblems` search attribute,
which the dev server here is started to set). The read model knows what should have happened
by now: a request saved but never started, one started but never projected, one whose deadline
passed long ago without the workflow moving it. Each candidate's latest run is then described,
so that staff see why (a failing activity, its attempt and error).

Every cancel and retry is recorded as a StaffAction, refused or not.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.timesince import timesince
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import (
    GetWorkflowExecutionHistoryReverseRequest,
    ResetWorkflowExecutionRequest,
)
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from approvals.exceptions import ActionRefused, ApprovalError, InvalidInput, NotAllowed
from approvals.models import ApprovalRequest, RequestEvent, StaffAction
from approvals.services.actions import request_act
from approvals.services.notifications import notification_send
from approvals.services.projection import request_project
from approvals.services.requests import display_name, request_start_workflow
from workflows import client as temporal
from workflows.types import (
    ActionKind,
    Content,
    Decided,
    EventKind,
    NotificationInput,
    NotificationKind,
    Projection,
    RequestStatus,
    TimelineEntry,
)

logger = logging.getLogger(__name__)

NOT_STARTED_AFTER = timedelta(minutes=1)  # the outbox relay retries every few seconds
NOT_PROJECTED_AFTER = timedelta(minutes=2)
LATE_AFTER = timedelta(minutes=15)  # a deadline this far past: its timer should have moved it
CLOSED_BADLY = [
    WorkflowExecutionStatus.FAILED,
    WorkflowExecutionStatus.TERMINATED,
    WorkflowExecutionStatus.TIMED_OUT,
    WorkflowExecutionStatus.CANCELED,
]
STATUS_NAMES = {
    WorkflowExecutionStatus.RUNNING: "Running",
    WorkflowExecutionStatus.COMPLETED: "Completed",
    WorkflowExecutionStatus.FAILED: "Failed",
    WorkflowExecutionStatus.CANCELED: "Canceled",
    WorkflowExecutionStatus.TERMINATED: "Terminated",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "ContinuedAsNew",
    WorkflowExecutionStatus.TIMED_OUT: "TimedOut",
}


@dataclass
class Trouble:
    """One request whose workflow needs a person: what is wrong, and what staff may do."""

    request: ApprovalRequest
    problem: str
    details: list[str] = field(default_factory=list)
    status: str = ""  # the latest run's status in Temporal; "" when there is no run
    run_id: str = ""
    can_retry: bool = False
    resolved: bool = False  # listed for an older run; the latest one is fine

    @property
    def temporal_url(self) -> str:
        if not self.run_id:
            return ""
        return temporal_ui_url(workflow_id=self.request.workflow_id, run_id=self.run_id)


def temporal_ui_url(*, workflow_id: str, run_id: str) -> str:
    ns = settings.TEMPORAL_NAMESPACE
    return f"{settings.TEMPORAL_UI_URL}/namespaces/{ns}/workflows/{workflow_id}/{run_id}/history"


def _run_details(description: Any) -> list[str]:
    """Why a running workflow is not moving, from Temporal's description of it."""
    raw = description.raw_description
    details = []
    task = raw.pending_workflow_task
    if task.attempt > 1:
        details.append(f"Its workflow task has failed {task.attempt - 1} time(s) in a row.")
    for pending in raw.pending_activities:
        if pending.attempt > 1 or pending.HasField("last_failure"):
            error = pending.last_failure.message if pending.HasField("last_failure") else ""
            details.append(
                f"Activity {pending.activity_type.name} is on attempt {pending.attempt}"
                + (f": {error}" if error else ".")
            )
    return details


async def _close_reason(client: Client, workflow_id: str, run_id: str) -> str:
    """The message of the event that closed a run badly (its failure, or who terminated it)."""
    response = await client.workflow_service.get_workflow_execution_history_reverse(
        GetWorkflowExecutionHistoryReverseRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
            maximum_page_size=1,
        ),
        timeout=settings.TEMPORAL_RPC_TIMEOUT,
    )
    if not response.history.events:
        return ""
    event = response.history.events[0]
    if event.HasField("workflow_execution_failed_event_attributes"):
        failure = event.workflow_execution_failed_event_attributes.failure
        cause = failure.cause.message if failure.HasField("cause") else ""
        return f"Failed: {failure.message}" + (f" ({cause})" if cause and cause != failure.message else "")
    if event.HasField("workflow_execution_terminated_event_attributes"):
        attributes = event.workflow_execution_terminated_event_attributes
        return f"Terminated: {attributes.reason or 'no reason given'}" + (
            f" (by {attributes.identity})" if attributes.identity else ""
        )
    if event.HasField("workflow_execution_timed_out_event_attributes"):
        return "Timed out."
    if event.HasField("workflow_execution_canceled_event_attributes"):
        return "Canceled in Temporal."
    return ""


STOPPED = "Its workflow stopped"
FAILING = "Keeps failing in Temporal"
UNREACHABLE_NOTE = "Temporal could not be reached, so only what the database shows is listed."
# Visibility queries for runs in trouble; the problem each one means.
LISTED = {
    FAILING: 'WorkflowType = "ApprovalWorkflow" AND ExecutionStatus = "Running" '
    "AND TemporalReportedProblems IS NOT NULL",
    STOPPED: 'WorkflowType = "ApprovalWorkflow" '
    'AND ExecutionStatus IN ("Failed", "Terminated", "TimedOut", "Canceled")',
}


def workflows_in_trouble(*, limit: int = 20) -> tuple[list[Trouble], str]:
    """Open requests whose workflow needs a person, stopped ones first, and a note when Temporal
    could not be asked (what the read model shows is listed anyway)."""
    now = timezone.now()
    open_requests = ApprovalRequest.objects.exclude(
        status__in=[s.value for s in RequestStatus if s.is_final]
    ).select_related("request_type", "requester")
    found: dict[int, Trouble] = {}

    def add(request: ApprovalRequest, problem: str, *details: str, can_retry: bool = False) -> None:
        if request.pk not in found and len(found) < limit:
            found[request.pk] = Trouble(request, problem, [d for d in details if d], can_retry=can_retry)

    never_started = open_requests.filter(
        workflow_started_at__isnull=True, created_at__lt=now - NOT_STARTED_AFTER
    )
    for request in never_started.order_by("created_at")[:limit]:
        error = request.last_start_error or "none recorded"
        attempts = f"{request.start_attempts} attempt(s); last error: {error}"
        add(request, "Never started: Temporal could not be reached", attempts, can_retry=True)
    note = ""
    try:
        listed = temporal.call(lambda client: _listed(client, limit=limit * 5))
    except temporal.UNREACHABLE as exc:
        logger.warning("Could not ask Temporal for workflows in trouble: %s", exc)
        note, listed = UNREACHABLE_NOTE, {}
    for request in open_requests.filter(public_id__in=_public_ids(listed)):
        add(request, listed[request.workflow_id])
    not_projected = open_requests.filter(
        status=RequestStatus.SUBMITTED, workflow_started_at__lt=now - NOT_PROJECTED_AFTER
    )
    for request in not_projected.order_by("workflow_started_at")[:limit]:
        add(request, "Started, but review never began")
    late = open_requests.filter(status=RequestStatus.IN_REVIEW, deadline__lt=now - LATE_AFTER)
    for request in late.order_by("deadline")[:limit]:
        add(request, f"Its deadline passed {timesince(request.deadline, now)} ago and nothing moved")

    started = [t for t in found.values() if t.request.workflow_started_at is not None]
    if started and not note:
        try:
            temporal.call(lambda client: _describe(client, started))
        except temporal.UNREACHABLE as exc:
            logger.warning("Could not describe workflows in trouble: %s", exc)
            note = UNREACHABLE_NOTE
    troubles = [t for t in found.values() if not t.resolved]
    troubles.sort(key=lambda t: ({STOPPED: 0, FAILING: 1}.get(t.problem, 2), t.request.created_at))
    return troubles, note


async def _listed(client: Client, *, limit: int) -> dict[str, str]:
    """Workflow id → problem, for the runs Temporal lists as in trouble."""
    found: dict[str, str] = {}
    for problem, query in LISTED.items():
        async for execution in client.list_workflows(
            query, limit=limit, rpc_timeout=settings.TEMPORAL_RPC_TIMEOUT
        ):
            found.setdefault(execution.id, problem)
    return found


def _public_ids(workflow_ids: Iterable[str]) -> list[uuid.UUID]:
    ids = []
    for workflow_id in workflow_ids:
        try:
            ids.append(uuid.UUID(workflow_id.removeprefix("approval-")))
        except ValueError:
            continue  # not one of ours
    return ids


async def _describe(client: Client, troubles: list[Trouble]) -> None:
    """Fill in each trouble from its latest run: stopped (and why), or running (and what fails).
    A run listed as stopped that has since been retried and runs cleanly is resolved."""
    for trouble in troubles:
        handle = client.get_workflow_handle(trouble.request.workflow_id)
        try:
            description = await handle.describe(rpc_timeout=settings.TEMPORAL_RPC_TIMEOUT)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            trouble.details.append("Temporal has no record of its workflow.")
            continue
        trouble.status = STATUS_NAMES.get(description.status, str(description.status))
        trouble.run_id = description.run_id
        if description.status in CLOSED_BADLY:
            reason = await _close_reason(client, trouble.request.workflow_id, description.run_id)
            trouble.problem, trouble.can_retry = STOPPED, True
            trouble.details.insert(0, reason or f"{trouble.status}.")
        elif description.status == WorkflowExecutionStatus.RUNNING:
            trouble.details += _run_details(description)
            trouble.resolved = trouble.problem == STOPPED and not trouble.details


# --- Acting on one request --------------------------------------------------------------------


class _Audit:
    """One staff action on a request, recorded as a StaffAction however it ends."""

    def __init__(self, request: ApprovalRequest, actor: User, kind: str, reason: str = "") -> None:
        self.request, self.actor, self.kind, self.reason = request, actor, kind, reason
        self.status: WorkflowExecutionStatus | None = None
        self.run_id = ""

    @property
    def status_name(self) -> str:
        return STATUS_NAMES.get(self.status, "") if self.status is not None else ""

    def look_up_run(self) -> WorkflowExecutionStatus | None:
        """The latest run's status (None when Temporal has no such workflow), noted for the record."""

        async def describe(client: Client) -> tuple[WorkflowExecutionStatus | None, str]:
            try:
                description = await client.get_workflow_handle(self.request.workflow_id).describe(
                    rpc_timeout=settings.TEMPORAL_RPC_TIMEOUT
                )
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return None, ""
                raise
            return description.status, description.run_id

        self.status, self.run_id = temporal.call(describe)
        return self.status

    def _save(self, ok: bool, outcome: str) -> StaffAction:
        return StaffAction.objects.create(
            request=self.request,
            actor=self.actor,
            kind=self.kind,
            reason=self.reason,
            ok=ok,
            outcome=outcome,
            workflow_status=self.status_name,
            run_id=self.run_id,
        )

    def done(self, outcome: str) -> StaffAction:
        return self._save(True, outcome)

    def refused(self, outcome: str) -> ActionRefused:
        self._save(False, outcome)
        return ActionRefused(outcome)


UNANSWERED = "The workflow service did not answer, so nothing was done. Try again shortly."


def _staff_only(actor: User) -> None:
    if not actor.is_staff:
        raise NotAllowed("Only staff can cancel or retry a request's workflow.")


def request_cancel_by_staff(*, request: ApprovalRequest, actor: User, reason: str) -> StaffAction:
    """End an open request as cancelled, saying why; the requester and those it waited for are told.

    A running workflow cancels itself, through a validated update (so it answers truthfully, and
    what it was doing finishes first). A request whose workflow never started, or stopped for
    good, is closed in the read model directly, through the projection, since no workflow will."""
    _staff_only(actor)
    reason = reason.strip()
    if not reason:
        raise InvalidInput("Say why the request is cancelled: the requester will read it.")
    request.refresh_from_db()
    if not request.is_open:
        raise ActionRefused(f"This request is already {request.get_status_display().lower()}.")
    audit = _Audit(request, actor, StaffAction.Kind.CANCEL, reason)
    if request.workflow_started_at is not None:
        try:
            audit.look_up_run()
        except temporal.UNREACHABLE:
            raise audit.refused(UNANSWERED) from None
    if audit.status == WorkflowExecutionStatus.RUNNING:
        try:
            result = request_act(request=request, actor=actor, kind=ActionKind.CANCEL, comment=reason)
        except ApprovalError as exc:
            raise audit.refused(str(exc)) from exc
        return audit.done(result.message)
    _cancel_in_read_model(request=request, actor=actor, reason=reason)
    stopped = (
        f" Its workflow had stopped ({audit.status_name}), so it was closed here." if audit.status else ""
    )
    return audit.done("The request is cancelled." + stopped)


def _cancel_in_read_model(*, request: ApprovalRequest, actor: User, reason: str) -> None:
    """Project the cancellation as the workflow would have, then tell the people concerned."""
    waiting = list(request.participants.filter(pending=True).values_list("user_id", flat=True))
    at = timezone.now()
    with transaction.atomic():
        locked = ApprovalRequest.objects.select_for_update().get(pk=request.pk)
        last_seq = (
            RequestEvent.objects.filter(request=locked).order_by("-seq").values_list("seq", flat=True).first()
        )
        seq = max(last_seq or 0, locked.version) + 1
        name = display_name(actor)
        decided = Decided(actor.pk, name, at, reason)
        request_project(
            projection=Projection(
                request_id=str(locked.public_id),
                seq=seq,
                status=RequestStatus.CANCELLED,
                revision=locked.revision,
                content=Content(
                    locked.title, locked.details, None if locked.amount is None else str(locked.amount)
                ),
                stage_name=locked.stage_name,
                stage_number=locked.stage_number,
                stage_count=locked.stage_count,
                deadline=None,
                pending=[],
                new_participants=[],
                events=[
                    TimelineEntry(
                        seq=seq,
                        at=at,
                        kind=EventKind.CANCELLED,
                        actor_id=actor.pk,
                        actor_name=name,
                        comment=reason,
                        stage=locked.stage_name,
                        revision=locked.revision,
                    )
                ],
                decided=decided,
                stage_version=locked.stage_version,
            )
        )
    notification = NotificationInput(
        request_id=str(request.public_id),
        kind=NotificationKind.CANCELLED,
        recipient_ids=list(dict.fromkeys([request.requester_id, *waiting])),
        idempotency_key=f"{request.public_id}:{seq}:{NotificationKind.CANCELLED.value}",
        comment=reason,
        actor_name=name,
    )
    try:
        notification_send(notification=notification)
    except Exception:  # the emails stay recorded as pending, for staff to see in the mailbox
        logger.exception("Could not email the cancellation of %s", request.workflow_id)


def request_retry_by_staff(*, request: ApprovalRequest, actor: User) -> StaffAction:
    """Get an open request's workflow going again.

    Never started: start it now. Stopped (failed, terminated, timed out): reset the run to just
    before the step that failed, so that step runs again with the code and data as they are now,
    and actions sent since are applied again. A running workflow is left alone: Temporal already
    retries its steps."""
    _staff_only(actor)
    request.refresh_from_db()
    audit = _Audit(request, actor, StaffAction.Kind.RETRY)
    if not request.is_open:
        status = request.get_status_display().lower()
        raise audit.refused(f"This request is already {status}; there is nothing to retry.")
    if request.workflow_started_at is None:
        if request_start_workflow(public_id=request.public_id):
            return audit.done("The workflow is started.")
        raise audit.refused(
            "Temporal still cannot be reached; the request stays saved and starts when it is back."
        )
    try:
        status = audit.look_up_run()
    except temporal.UNREACHABLE:
        raise audit.refused(UNANSWERED) from None
    if status is None:
        raise audit.refused("Temporal has no record of this request's workflow.")
    if status not in CLOSED_BADLY:
        raise audit.refused(
            f"The workflow is {audit.status_name.lower()}; only a stopped workflow can be retried "
            "(a running one retries its own steps)."
        )
    stopped_run = audit.run_id

    async def reset(client: Client) -> str:
        handle = client.get_workflow_handle(request.workflow_id, run_id=stopped_run)
        events = [event async for event in handle.fetch_history_events()]
        response = await client.workflow_service.reset_workflow_execution(
            ResetWorkflowExecutionRequest(
                namespace=client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=request.workflow_id, run_id=stopped_run),
                reason=f"Retried by {actor.get_username()} from the dashboard",
                workflow_task_finish_event_id=reset_point(events),
                request_id=str(uuid.uuid4()),
            ),
            timeout=settings.TEMPORAL_RPC_TIMEOUT,
        )
        return response.run_id

    try:
        audit.run_id = temporal.call(reset)
    except (ValueError, *temporal.UNREACHABLE) as exc:
        raise audit.refused(f"Temporal did not retry it: {exc}") from exc
    return audit.done(
        f"The workflow resumes from before the step that stopped it ({audit.status_name.lower()})."
    )


def reset_point(events: list[Any]) -> int:
    """Where to resume a stopped run: the workflow task that scheduled the last activity that
    failed (so that the activity runs again), else the last completed workflow task."""
    by_id = {event.event_id: event for event in events}
    for event in reversed(events):
        if event.event_type in (
            EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
            EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
        ):
            attributes = (
                event.activity_task_failed_event_attributes
                if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
                else event.activity_task_timed_out_event_attributes
            )
            scheduled = by_id[attributes.scheduled_event_id]
            return scheduled.activity_task_scheduled_event_attributes.workflow_task_completed_event_id
    for event in reversed(events):
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            return event.event_id
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            return event.event_id
    raise ValueError("the run never started a workflow task")
