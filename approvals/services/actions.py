"""People acting on requests, through their workflows.

Each action is weighed first here, by the workflow's own rules over the state it last projected
(so a stranger is told at once, and Temporal is not asked for what cannot be), then by the
workflow itself, whose answer is the truth. What Temporal answers, or fails to, is told as it is:
refused, recorded, not recorded, or not known yet.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import OperationalError, connection, transaction

from approvals import audit
from approvals import client as temporal
from approvals.exceptions import (
    ActionPending,
    ActionRefused,
    ApprovalError,
    InvalidInput,
    NotAllowed,
    WorkflowUnavailable,
)
from approvals.models import ApprovalRequest, PendingAction, RequestEvent
from approvals.selectors.requests import display_name, request_state, requests_visible, reviewers
from approvals.services import agents
from approvals.services.trouble import request_stopped_note
from workflows import rules
from workflows.types import Action, ActionKind, ActionResult, Content, EventKind, RequestStatus

logger = logging.getLogger(__name__)

UNANSWERED = "The workflow service did not answer, so this was not recorded. Please try again."
TASKS_FAILING = (
    "The workflow cannot take actions right now (its tasks are failing), so this was not recorded. "
    "Staff see it on their dashboard."
)
RECORDED_LATE = "Recorded. The workflow is slow to confirm it; it shows as pending here until it does."
NOT_KNOWN_YET = (
    "Sent. The workflow service has not picked it up yet: it counts as soon as it does (unless "
    "the request has moved on by then), and shows as pending here until then."
)
BULK_CONCURRENCY = 8
NOTE_LOCK_WAIT = timedelta(seconds=2)  # for the request's row, to note an action as pending
REFUSALS = {
    rules.Why.FORBIDDEN: NotAllowed,
    rules.Why.NOT_NOW: ActionRefused,
    rules.Why.INVALID: InvalidInput,
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
    target_id: str = "",
    via: PendingAction.Via = PendingAction.Via.PAGE,
    action_sha256: str | None = None,
    edited_arguments: dict[str, Any] | None = None,
) -> ActionResult:
    """Apply one person's action through the workflow and return its truthful answer, which
    comes once the read model shows what it did. `action_id` makes a repeated submission of the
    same form count once. With no answer in time, ActionPending, and the action shows as
    pending (`via` says where it was sent from) until the read model confirms it.

    An agent action's approval names the version approved (`action_sha256`: the one its
    approver saw; none: the one the read model shows now); with `edited_arguments`, it approves
    them instead, as the action's new version (its token will hold for them only)."""
    if (done := _done_already(request=request, kind=kind, action_id=action_id)) is not None:
        return done
    edited_sha256 = ""
    if edited_arguments is not None:
        if kind != ActionKind.APPROVE or not request.is_agent_action:
            raise InvalidInput(rules.NOT_AN_AGENT_ACTION)
        edited_sha256 = agents.action_version_keep(request=request, actor=actor, arguments=edited_arguments)
    content = None
    if kind == ActionKind.RESUBMIT:
        content = Content(title=title, details=details, amount=None if amount is None else str(amount))
    action = _checked_action(
        request=request,
        actor=actor,
        kind=kind,
        comment=comment,
        action_id=action_id,
        delegate=delegate,
        extend_by=extend_by,
        content=content,
        target_id=target_id,
        action_sha256=action_sha256,
        edited_sha256=edited_sha256,
    )
    try:
        return temporal.send_update(request.public_id, action)
    except temporal.TemporalError as exc:
        told = _told(request, action, exc)
        if isinstance(told, ActionPending):
            pending_action_note(request=request, action=action, via=via)
        raise told from exc


def _done_already(
    *, request: ApprovalRequest, kind: ActionKind, action_id: uuid.UUID | None
) -> ActionResult | None:
    """An action sent again once it took effect and the request closed (a retry with its
    Idempotency-Key, a second click): it counted once, and is answered so, not refused as late."""
    if action_id is None or request.is_open:
        return None
    took_effect = RequestEvent.objects.filter(request=request, action_id=str(action_id)).exclude(
        kind__in=[EventKind.HELD, EventKind.UNDONE, EventKind.LAPSED]
    )
    if not took_effect.exists():
        return None
    message = f"Your {rules.NOUNS[kind]} was recorded already; it counts once."
    return ActionResult(RequestStatus(request.status), message, stage=request.stage_name)


def request_signal(
    *,
    request: ApprovalRequest,
    actor: User,
    kind: ActionKind,
    comment: str = "",
    action_id: uuid.UUID,
    via: PendingAction.Via = PendingAction.Via.EMAIL,
    action_sha256: str | None = None,
) -> bool:
    """Send an action as a signal: accepted by Temporal even while no worker runs.

    For email links and integrations. The workflow applies it if it still fits when it arrives
    (and drops it otherwise); `action_id` makes a repeated signal count once. It shows as pending
    until the read model confirms it. True once Temporal has it; False when that is not known
    (its deadline passed), the action still shown as pending.
    """
    action = _checked_action(
        request=request,
        actor=actor,
        kind=kind,
        comment=comment,
        action_id=action_id,
        action_sha256=action_sha256,
    )
    # Noted first: a running worker applies a signal at once, and may project it before this
    # call returns.
    pending_action_note(request=request, action=action, via=via)
    try:
        temporal.send_signal(request.public_id, action)
    except temporal.TimedOut:
        return False
    except temporal.TemporalError as exc:
        PendingAction.objects.filter(action_id=action.action_id).delete()  # Temporal never had it
        raise _told(request, action, exc) from exc
    return True


def pending_action_note(*, request: ApprovalRequest, action: Action, via: PendingAction.Via) -> None:
    """Show the action as pending to its sender until the read model confirms it, unless it
    already does (or the request is over). Under the request's row lock, which the projection
    takes too: either it sees this note and clears it, or this sees what it projected.

    A projection that holds the lock longer than NOTE_LOCK_WAIT (the database is slow) leaves
    the action unnoted: the person's answer still says what is known, and a note that might
    never be cleared would not."""
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"SET LOCAL lock_timeout = '{int(NOTE_LOCK_WAIT.total_seconds() * 1000)}ms'"
                    )
            locked = ApprovalRequest.objects.select_for_update().get(pk=request.pk)
            confirmed = RequestEvent.objects.filter(request=locked, action_id=action.action_id).exists()
            if locked.is_open and not confirmed:
                PendingAction.objects.get_or_create(
                    action_id=action.action_id,
                    defaults={
                        "request": locked,
                        "actor_id": action.actor_id,
                        "kind": action.kind.value,
                        "via": via,
                    },
                )
    except OperationalError as exc:  # the lock's wait ran out
        logger.warning("Not noted as pending: %s on %s (%s)", action.kind, request.workflow_id, exc)


@dataclass
class BulkOutcome:
    """What happened to one request of a bulk action."""

    public_id: uuid.UUID
    title: str
    ok: bool
    message: str
    url: str = ""
    pending: bool = False  # not known yet whether it was recorded
    undo_until: datetime | None = None  # held for its undo period until then


def requests_act_bulk(
    *,
    actor: User,
    public_ids: list[uuid.UUID],
    kind: ActionKind,
    comment: str,
    bulk_id: uuid.UUID,
    undo_of: uuid.UUID | None = None,
) -> list[BulkOutcome]:
    """Take one decision on many requests, each through its own workflow's validated update.

    Every request gets its own answer: one refusal (already decided, not yours, Temporal away)
    never stops the others. Each action id derives from the bulk id, so submitting the same bulk
    form again counts once per request; an undo of a bulk decision (`undo_of`: its bulk id)
    names each request's decision the same way.
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
                target_id=str(uuid.uuid5(undo_of, str(public_id))) if undo_of else "",
            )
        except ApprovalError as exc:
            if isinstance(exc, NotAllowed):
                audit.log_refused(actor, f"bulk {kind} on {public_id}", str(exc))
            outcomes[public_id] = _outcome(request, False, str(exc))
    for public_id, answer in temporal.send_updates(actions, BULK_CONCURRENCY).items():
        request = found[public_id]
        if isinstance(answer, ActionResult):
            outcomes[public_id] = _outcome(request, True, answer.message, undo_until=answer.undo_until)
        else:
            told = _told(request, actions[public_id], answer)
            unknown = isinstance(answer, temporal.Unanswered) and not answer.accepted
            recorded = isinstance(answer, temporal.Unanswered) and answer.accepted
            if isinstance(told, ActionPending):
                pending_action_note(request=request, action=actions[public_id], via=PendingAction.Via.BULK)
            outcomes[public_id] = _outcome(request, recorded, str(told), pending=unknown)
    return [outcomes[pid] for pid in public_ids]


def _outcome(
    request: ApprovalRequest,
    ok: bool,
    message: str,
    pending: bool = False,
    undo_until: datetime | None = None,
) -> BulkOutcome:
    return BulkOutcome(
        request.public_id, request.title, ok, message, request.get_absolute_url(), pending, undo_until
    )


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
    target_id: str = "",
    action_sha256: str | None = None,
    edited_sha256: str = "",
) -> Action:
    """The action, once the workflow's rules, over the state it last projected, allow it (or
    leave it to the workflow)."""
    if kind == ActionKind.DELEGATE and delegate is not None and not delegate.is_active:
        raise InvalidInput("Choose an active person to delegate to.")
    seen = ""
    if kind == ActionKind.APPROVE and request.is_agent_action:
        seen = request.action_sha256 if action_sha256 is None else action_sha256
        if edited_sha256:
            content = dataclasses.replace(request.content(), action_sha256=edited_sha256)
    action = Action(
        kind=kind,
        actor_id=actor.pk,
        actor_name=display_name(actor),
        comment=comment.strip(),
        action_id=str(action_id or uuid.uuid4()),
        delegate_id=delegate.pk if delegate else None,
        delegate_name=display_name(delegate) if delegate else "",
        extend_seconds=int(extend_by.total_seconds()) if extend_by else 0,
        content=content,
        as_staff=actor.is_staff,
        target_id=target_id,
        action_sha256=seen,
    )
    started = request.workflow_started_at is not None
    refused = rules.refusal(
        request_state(request=request), action, started=started, stopped=request.workflow_stopped
    )
    # What does not fit the request's state now is the workflow's to say while it runs: it knows
    # a repeat of an action it applied (a double click), which it answers as the first time.
    if refused and (
        refused.why != rules.Why.NOT_NOW or not request.is_open or not started or request.workflow_stopped
    ):
        raise REFUSALS[refused.why](refused.message)
    # Who may take a stage: a fact of the read model, not of the workflow's rules.
    if (
        kind == ActionKind.DELEGATE
        and delegate is not None
        and not reviewers().filter(pk=delegate.pk).exists()
    ):
        raise InvalidInput(
            f"{display_name(delegate)} does not review requests here (no policy asks them), so a stage "
            "cannot be delegated to them."
        )
    return action


def _told(request: ApprovalRequest, action: Action, exc: temporal.TemporalError) -> ApprovalError:
    """What the person is told when the workflow gave no result for their action: refused,
    recorded but not confirmed yet, not known yet, or not recorded, as it is."""
    if isinstance(exc, temporal.Refused):
        return ActionRefused(str(exc))
    if isinstance(exc, temporal.Unanswered):
        return ActionPending(RECORDED_LATE if exc.accepted else NOT_KNOWN_YET)
    if isinstance(exc, temporal.TimedOut):  # Temporal had it, and may have taken it
        return ActionPending(NOT_KNOWN_YET)
    if isinstance(exc, temporal.Rejected):
        return InvalidInput(f"The workflow service refused this as it is, so it was not recorded: {exc}")
    logger.warning("Could not send %s to %s: %s", action.kind, request.workflow_id, exc)
    if isinstance(exc, temporal.NoWorkflow):
        # Its workflow has closed since the request was read: a decision racing the deadline,
        # say (the read model, projected before a workflow ends, says how), or it stopped.
        request.refresh_from_db()
        if not request.is_open:
            return ActionRefused(rules.closed(request_state(request=request)))
        if stopped := request_stopped_note(request=request):
            return ActionRefused(rules.stopped_message(stopped))
    if isinstance(exc, temporal.TasksFailing):
        return WorkflowUnavailable(TASKS_FAILING)
    return WorkflowUnavailable(UNANSWERED)
