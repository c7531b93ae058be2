"""People acting on requests, through the workflow, and the workflow's live state."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import TypeVar

from django.conf import settings
from django.contrib.auth.models import User
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from approvals.exceptions import (
    ActionRefused,
    ApprovalError,
    InvalidInput,
    NotAllowed,
    ReviewNotStarted,
    WorkflowUnavailable,
)
from approvals.models import ApprovalRequest
from approvals.selectors.requests import requests_visible
from approvals.services.requests import display_name
from workflows import client as temporal
from workflows.approval import ApprovalWorkflow
from workflows.types import Action, ActionKind, ActionResult, Content, RequestState

logger = logging.getLogger(__name__)
T = TypeVar("T")

UNANSWERED = "The workflow service did not answer, so this was not recorded. Please try again."
REQUESTER_ACTIONS = {ActionKind.WITHDRAW, ActionKind.RESUBMIT}
APPROVER_ACTIONS = {
    ActionKind.APPROVE,
    ActionKind.REJECT,
    ActionKind.REQUEST_CHANGES,
    ActionKind.DELEGATE,
    ActionKind.EXTEND,
}


def request_act(
    *,
    request: ApprovalRequest,
    actor: User,
    kind: ActionKind,
    comment: str = "",
    action_id: uuid.UUID | None = None,
    delegate: User | None = None,
    extend_by: timedelta | None = None,
    title: str = "",
    details: str = "",
    amount: Decimal | None = None,
) -> ActionResult:
    """Apply one person's action through the workflow and return its truthful answer.

    Who may act at all is checked here against the read model (403 for strangers); whether the
    action fits the request's state right now is the workflow's call, made atomically by the
    update's validator ("already approved by X at 10:02"), and a refusal leaves no trace.
    `action_id` makes a repeated submission of the same form count once.
    """
    action = _checked_action(
        request=request,
        actor=actor,
        kind=kind,
        comment=comment,
        action_id=action_id,
        delegate=delegate,
        extend_by=extend_by,
        content=Content(title=title, details=details, amount=None if amount is None else str(amount))
        if kind == ActionKind.RESUBMIT
        else None,
    )

    async def update(client: Client) -> ActionResult:
        handle = client.get_workflow_handle(request.workflow_id)
        return await handle.execute_update(
            ApprovalWorkflow.submit_action,
            action,
            id=action.action_id,
            rpc_timeout=settings.TEMPORAL_RPC_TIMEOUT,
        )

    try:
        return _call(request, kind, update)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
        raise ActionRefused(message) from exc


@dataclass
class BulkOutcome:
    """What happened to one request of a bulk action."""

    public_id: uuid.UUID
    title: str
    ok: bool
    message: str
    url: str = ""


BULK_CONCURRENCY = 8


def requests_act_bulk(
    *, actor: User, public_ids: list[uuid.UUID], kind: ActionKind, comment: str, bulk_id: uuid.UUID
) -> list[BulkOutcome]:
    """Take one decision on many requests, each through its own workflow's validated update.

    Every request gets its own answer: one refusal (already decided, not yours, Temporal away)
    never stops the others. Each action id derives from the bulk id, so submitting the same bulk
    form again counts once per request.
    """
    # Requests this person may not see are "not there", exactly like ids that match nothing.
    found = {r.public_id: r for r in requests_visible(user=actor, public_ids=public_ids)}
    outcomes: dict[uuid.UUID, BulkOutcome] = {}
    actions: dict[uuid.UUID, Action] = {}
    for public_id in public_ids:
        request = found.get(public_id)
        if request is None:
            outcomes[public_id] = BulkOutcome(public_id, str(public_id), False, "There is no such request.")
            continue
        try:
            actions[public_id] = _checked_action(
                request=request,
                actor=actor,
                kind=kind,
                comment=comment,
                action_id=uuid.uuid5(bulk_id, str(public_id)),
            )
        except ApprovalError as exc:
            if isinstance(exc, NotAllowed):
                logger.warning("Refused bulk %s by %s on %s: %s", kind, actor, public_id, exc)
            outcomes[public_id] = BulkOutcome(
                public_id, request.title, False, str(exc), request.get_absolute_url()
            )

    async def update_all(client: Client) -> list[ActionResult | BaseException]:
        limit = asyncio.Semaphore(BULK_CONCURRENCY)

        async def one(public_id: uuid.UUID, action: Action) -> ActionResult:
            async with limit:
                handle = client.get_workflow_handle(found[public_id].workflow_id)
                return await handle.execute_update(
                    ApprovalWorkflow.submit_action,
                    action,
                    id=action.action_id,
                    rpc_timeout=settings.TEMPORAL_RPC_TIMEOUT,
                )

        return await asyncio.gather(*(one(pid, a) for pid, a in actions.items()), return_exceptions=True)

    if actions:
        try:
            answers: list[ActionResult | BaseException] = temporal.call(update_all)
        except temporal.UNREACHABLE as exc:
            answers = [exc] * len(actions)
        for public_id, answer in zip(actions, answers, strict=True):
            request = found[public_id]
            if isinstance(answer, ActionResult):
                ok, message = True, answer.message
            elif isinstance(answer, WorkflowUpdateFailedError):
                cause = answer.cause
                ok, message = False, cause.message if isinstance(cause, ApplicationError) else str(cause)
            elif (
                isinstance(answer, RPCError)
                and answer.status == RPCStatusCode.NOT_FOUND
                and _now_closed(request)
            ):
                ok, message = False, _closed(request)
            elif isinstance(answer, temporal.UNREACHABLE):
                logger.warning("Could not send bulk %s to %s: %s", kind, request.workflow_id, answer)
                ok, message = False, "The workflow service did not answer, so this was not recorded."
            else:
                raise answer
            outcomes[public_id] = BulkOutcome(
                public_id, request.title, ok, message, request.get_absolute_url()
            )
    return [outcomes[pid] for pid in public_ids]


def request_signal(
    *, request: ApprovalRequest, actor: User, kind: ActionKind, comment: str = "", action_id: uuid.UUID
) -> None:
    """Send an action as a signal: accepted by Temporal even while no worker runs.

    For email links and integrations. The workflow applies it if it still fits when it arrives
    (and drops it otherwise); `action_id` makes a repeated signal count once.
    """
    action = _checked_action(request=request, actor=actor, kind=kind, comment=comment, action_id=action_id)

    async def signal(client: Client) -> None:
        handle = client.get_workflow_handle(request.workflow_id)
        await handle.signal(ApprovalWorkflow.act, action, rpc_timeout=settings.TEMPORAL_RPC_TIMEOUT)

    _call(request, kind, signal)


def _call(request: ApprovalRequest, kind: ActionKind, fn: Callable[[Client], Awaitable[T]]) -> T:
    """Run `fn` against Temporal; when Temporal is away, say plainly that nothing was recorded."""
    try:
        return temporal.call(fn)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND and _now_closed(request):
            raise ActionRefused(_closed(request)) from exc
        logger.warning("Could not send %s to %s: %s", kind, request.workflow_id, exc)
        if exc.status == RPCStatusCode.FAILED_PRECONDITION:  # its workflow tasks keep failing
            raise WorkflowUnavailable(
                "The workflow cannot take actions right now (its tasks are failing), so this was not "
                "recorded. Staff see it on their dashboard."
            ) from exc
        raise WorkflowUnavailable(UNANSWERED) from exc
    except temporal.UNREACHABLE as exc:
        logger.warning("Could not send %s to %s: %s", kind, request.workflow_id, exc)
        raise WorkflowUnavailable(UNANSWERED) from exc


def _checked_action(
    *,
    request: ApprovalRequest,
    actor: User,
    kind: ActionKind,
    comment: str,
    action_id: uuid.UUID | None,
    delegate: User | None = None,
    extend_by: timedelta | None = None,
    content: Content | None = None,
) -> Action:
    """The action, once the read model says this person may take it at all."""
    is_requester = actor.pk == request.requester_id
    is_participant = request.participants.filter(user=actor).exists()
    if kind in REQUESTER_ACTIONS and not is_requester:
        raise NotAllowed("Only the requester can do that.")
    if kind in APPROVER_ACTIONS:
        if is_requester:
            raise NotAllowed("You cannot decide on your own request.")
        if not is_participant:
            raise NotAllowed("You are not an approver of this request, so you cannot decide it.")
    if kind == ActionKind.CANCEL and not actor.is_staff:
        raise NotAllowed("Only staff can cancel a request.")
    if kind == ActionKind.COMMENT and not (is_requester or is_participant):
        raise NotAllowed("Only the requester and the request's approvers can comment.")
    if kind == ActionKind.DELEGATE and (delegate is None or not delegate.is_active):
        raise InvalidInput("Choose an active person to delegate to.")
    if not request.is_open:
        raise ActionRefused(_closed(request))
    if request.workflow_started_at is None:
        raise ReviewNotStarted(
            "Review has not started yet: the workflow service is catching up. Try again shortly."
        )
    return Action(
        kind=kind,
        actor_id=actor.pk,
        actor_name=display_name(actor),
        comment=comment.strip(),
        action_id=str(action_id or uuid.uuid4()),
        delegate_id=delegate.pk if delegate else None,
        delegate_name=display_name(delegate) if delegate else "",
        extend_seconds=int(extend_by.total_seconds()) if extend_by else 0,
        content=content,
    )


def request_live_state(*, request: ApprovalRequest) -> RequestState | None:
    """The workflow's own view of the request, or None when Temporal cannot answer now."""
    if request.workflow_started_at is None:
        return None

    async def query(client: Client) -> RequestState | None:
        handle = client.get_workflow_handle(request.workflow_id)
        description = await handle.describe(rpc_timeout=settings.TEMPORAL_RPC_TIMEOUT)
        if description.status not in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED):
            return None
        return await handle.query(ApprovalWorkflow.state, rpc_timeout=settings.TEMPORAL_RPC_TIMEOUT)

    try:
        return temporal.call(query)
    except temporal.UNREACHABLE as exc:
        logger.info("No live state for %s: %s", request.workflow_id, exc)
        return None


def _closed(request: ApprovalRequest) -> str:
    by = f" by {request.decided_by_name}" if request.decided_by_name else ""
    return f"This request is already {request.get_status_display().lower()}{by}."


def _now_closed(request: ApprovalRequest) -> bool:
    """Whether the request has closed since it was read: its workflow finished in between (a
    decision racing the deadline, say), and the read model, projected before a workflow ends,
    says how."""
    request.refresh_from_db()
    return not request.is_open
