"""Staff on a request's workflows: cancel the request, retry its workflow, or retry its
fulfilment once it was rolled back.

Every cancel and retry is recorded as a StaffAction, refused or not.
"""

from __future__ import annotations

import logging
import uuid

from django.contrib.auth.models import User
from django.db.models import Max
from django.utils import timezone

from approvals import client as temporal
from approvals.exceptions import ActionRefused, ApprovalError, InvalidInput, NotAllowed
from approvals.live import push_after_commit
from approvals.models import ApprovalRequest, StaffAction
from approvals.selectors.requests import display_name, request_state
from approvals.services.actions import request_act
from approvals.services.notifications import notification_send
from approvals.services.projection import request_change, request_project
from approvals.services.requests import request_start_workflow
from approvals.services.trouble import activity_failure_clear
from workflows import handlers, rules
from workflows.review import Review
from workflows.types import Action, ActionKind, FulfilmentInput, FulfilmentStatus
from workflows.types import Fulfilment as Kind

logger = logging.getLogger(__name__)

UNANSWERED = "The workflow service did not answer, so nothing was done. Try again shortly."


class _Audit:
    """One staff action on a request, recorded as a StaffAction however it ends."""

    def __init__(self, request: ApprovalRequest, actor: User, kind: str, reason: str = "") -> None:
        self.request, self.actor, self.kind, self.reason = request, actor, kind, reason
        self.run: temporal.Run | None = None
        self.run_id = ""

    def look_up_run(self) -> temporal.Run | None:
        """The latest run (None when Temporal has no such workflow), noted for the record."""
        self.run = temporal.describe(self.request.public_id)
        self.run_id = self.run.run_id if self.run else ""
        return self.run

    def _save(self, ok: bool, outcome: str) -> StaffAction:
        return StaffAction.objects.create(
            request=self.request,
            actor=self.actor,
            kind=self.kind,
            reason=self.reason,
            ok=ok,
            outcome=outcome,
            workflow_status=self.run.status.value if self.run else "",
            run_id=self.run_id,
        )

    def done(self, outcome: str) -> StaffAction:
        return self._save(True, outcome)

    def refused(self, outcome: str, error: type[ApprovalError] = ActionRefused) -> ApprovalError:
        self._save(False, outcome)
        return error(outcome)


def _as_kept(text: str) -> str:
    """The text as a database keeps it, for the record of an attempt the rules refuse for what
    it holds (NUL, a lone surrogate): each such character becomes U+FFFD."""
    kept = text.replace("\x00", "\ufffd")
    return kept.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _staff_only(actor: User) -> None:
    if not actor.is_staff:
        raise NotAllowed("Only staff can cancel or retry a request's workflow.")


def request_cancel_by_staff(*, request: ApprovalRequest, actor: User, reason: str) -> StaffAction:
    """End an open request as cancelled, saying why; the requester and those it waited for are told.

    A running workflow cancels itself, through a validated update (so it answers truthfully, and
    what it was doing finishes first). A request whose workflow never started, or stopped for
    good, is closed here, by the workflow's own cancel over the state it last projected, since no
    workflow will."""
    _staff_only(actor)
    request.refresh_from_db()
    action = Action(
        kind=ActionKind.CANCEL,
        actor_id=actor.pk,
        actor_name=display_name(actor),
        comment=reason.strip(),
        action_id=str(uuid.uuid4()),
        as_staff=True,
    )
    audit = _Audit(request, actor, StaffAction.Kind.CANCEL, _as_kept(action.comment[: rules.MAX_COMMENT]))
    if refused := rules.refusal(request_state(request=request), action):
        raise audit.refused(
            refused.message, InvalidInput if refused.why == rules.Why.INVALID else ActionRefused
        )
    if request.workflow_started_at is not None:
        try:
            audit.look_up_run()
        except temporal.TemporalError:
            raise audit.refused(UNANSWERED) from None
    if audit.run is not None and audit.run.status == temporal.RunStatus.RUNNING:
        try:
            result = request_act(request=request, actor=actor, kind=ActionKind.CANCEL, comment=action.comment)
        except ApprovalError as exc:
            raise audit.refused(str(exc)) from exc
        return audit.done(result.message)
    message = _cancel_here(request=request, action=action)
    if audit.run is not None:
        message += f" Its workflow had stopped ({audit.run.status.value}), so it was closed here."
    return audit.done(message)


def _cancel_here(*, request: ApprovalRequest, action: Action) -> str:
    """Apply the cancel as the workflow would have, to the state it last projected: its own
    handler, its own projection and its own notification keys."""
    state = request_state(request=request, to_change=True)
    last_seq = request.events.aggregate(last=Max("seq"))["last"] or 0
    state.seq = max(state.seq, last_seq, request.version)
    review = Review(state, now=timezone.now, patched=lambda name: True)
    result = handlers.apply(review, action)
    events, participants, notifications = review.take_effects()
    push_after_commit(request_project(projection=review.projection(events, participants)))
    for notification in notifications:
        try:
            notification_send(notification=notification)
        except Exception:  # the emails stay recorded as pending, for staff to see in the mailbox
            logger.exception("Could not email the cancellation of %s", request.workflow_id)
    return result.message


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
        request.refresh_from_db()
        if request.workflow_stopped:
            raise audit.refused(f"{request.workflow_stopped} (again). Cancel it, or fix what it holds.")
        raise audit.refused(
            "Temporal still cannot be reached; the request stays saved and starts when it is back."
        )
    try:
        run = audit.look_up_run()
    except temporal.TemporalError:
        raise audit.refused(UNANSWERED) from None
    if run is None:
        raise audit.refused("Temporal has no record of this request's workflow.")
    if not run.status.stopped:
        raise audit.refused(
            f"The workflow is {run.status.value.lower()}; only a stopped workflow can be retried "
            "(a running one retries its own steps)."
        )
    reason = f"Retried by {actor.get_username()} from the dashboard"
    try:
        audit.run_id = temporal.retry_stopped(request.public_id, run.run_id, reason)
    except (ValueError, temporal.TemporalError) as exc:
        raise audit.refused(f"Temporal did not retry it: {exc}") from exc
    activity_failure_clear(request_id=str(request.public_id))
    if ApprovalRequest.objects.filter(pk=request.pk).exclude(workflow_stopped="").update(workflow_stopped=""):
        push_after_commit(request_change(request))
    return audit.done(
        f"The workflow resumes from before the step that stopped it ({run.status.value.lower()})."
    )


def fulfilment_retry_by_staff(*, request: ApprovalRequest, actor: User, reason: str = "") -> StaffAction:
    """Start the request's fulfilment again, as a new attempt with keys of its own, once the last
    attempt has rolled back; recorded as a StaffAction, refused or not."""
    _staff_only(actor)
    request.refresh_from_db()
    audit = _Audit(request, actor, StaffAction.Kind.FULFIL, reason.strip()[:1000])
    last = request.fulfilments.order_by("-attempt").first()
    kind = Kind(request.policy.get("fulfilment", "") or "")
    if last is None or not kind:
        raise audit.refused("This request has no fulfilment to retry.")
    if last.status != FulfilmentStatus.ROLLED_BACK:
        raise audit.refused(
            f"Its fulfilment is {last.get_status_display().lower()}; "
            "only one that was rolled back can be retried."
        )
    base_seq = request.events.aggregate(last=Max("seq"))["last"] or 0
    attempt = last.attempt + 1
    try:
        started = temporal.start_fulfilment(
            FulfilmentInput(
                request_id=str(request.public_id),
                fulfilment=kind,
                attempt=attempt,
                base_seq=base_seq,
                by_name=display_name(actor),
                reason=audit.reason,
            )
        )
    except temporal.TemporalError:
        raise audit.refused(UNANSWERED) from None
    if not started:
        raise audit.refused(f"Fulfilment attempt {attempt} was started already (by someone else just now).")
    return audit.done(f"Fulfilment attempt {attempt} started.")
