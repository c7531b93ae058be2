"""The approval entity workflow: one per request, for the request's whole life.

Deterministic: time comes from workflow.now(), every side effect is an activity. Handlers only
validate and change state; the main loop turns state changes into activities (projection into
the read model, emails), keeps the timers (reminders, deadlines, escalation levels) and
continues as new before the history grows large.

Rules the policy leaves to the engine:
- a person counts once per stage, however many of its groups they belong to;
- the requester is never an approver of their own request;
- one rejection rejects the request; one "request changes" pauses it for the requester;
- an approval by someone an escalation level added closes the stage outright;
- a stage whose approvers resolve to nobody escalates at once.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from workflows import activities
    from workflows.policy import next_stage_index, required_approvals
    from workflows.types import (
        Action,
        ActionKind,
        ActionResult,
        ApprovalInput,
        Assignee,
        AssignInput,
        ClosedStage,
        Content,
        Decided,
        EventKind,
        Exhausted,
        NotificationInput,
        NotificationKind,
        Projection,
        RequestState,
        RequestStatus,
        StageSpec,
        StageState,
        TimelineEntry,
        Vote,
    )

ACTIVITY_TIMEOUT = timedelta(seconds=30)
# A batch of emails may take a while; a heartbeat after each recipient shows it is alive.
EMAIL_TIMEOUT = timedelta(minutes=5)
EMAIL_HEARTBEAT = timedelta(seconds=30)
ACTIVITY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=list(activities.NON_RETRYABLE_ERROR_TYPES),
)
TIMELINE_KEPT = 300  # in workflow memory; the read model keeps every entry
RECENT_ACTIONS_KEPT = 200
MAX_COMMENT = 4000
MAX_TITLE = 200
MAX_EXTENSION = timedelta(days=30)
REFUSED = "Refused"
PATCH_PROGRESS_EMAIL = "notify-requester-on-next-stage"
PATCH_HANDED_BACK = "handed-back-acts-for-nobody"

DECISIONS = {ActionKind.APPROVE, ActionKind.REJECT, ActionKind.REQUEST_CHANGES}
ASSIGNEE_ACTIONS = DECISIONS | {ActionKind.DELEGATE, ActionKind.EXTEND}


def _hhmm(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def malformed(action: object) -> str | None:
    """Why a payload sent as an action is not one this workflow can weigh; None when it is.

    Signals and updates reach the workflow from whoever can talk to Temporal, and a handler
    that raises on a bad payload fails the workflow task on every replay: the request would be
    stuck for good. So the shape is checked before anything else reads it."""
    if not isinstance(action, Action):
        return "This is not an action."
    if not isinstance(action.kind, ActionKind):
        return "Unknown kind of action."
    if not _is_int(action.actor_id) or not _is_int(action.extend_seconds):
        return "The action names no valid person."
    if action.delegate_id is not None and not _is_int(action.delegate_id):
        return "The action names no valid person to delegate to."
    texts = (action.actor_name, action.comment, action.action_id, action.delegate_name)
    if not all(isinstance(text, str) for text in texts) or len(action.action_id) > 200:
        return "The action is not well formed."
    if any("\x00" in text for text in texts):  # no database keeps it: the projection would fail
        return "The action holds a character that cannot be kept (NUL)."
    content = action.content
    if content is not None:
        if not isinstance(content, Content) or not all(
            isinstance(text, str) for text in (content.title, content.details)
        ):
            return "The request's new content is not well formed."
        if "\x00" in content.title + content.details:
            return "The request's new content holds a character that cannot be kept (NUL)."
        if len(content.title) > MAX_TITLE:
            return f"Titles are limited to {MAX_TITLE} characters."
        if content.amount is not None:
            try:
                if not isinstance(content.amount, str) or not Decimal(content.amount).is_finite():
                    raise InvalidOperation
            except InvalidOperation:
                return "The amount is not a number."
    return None


@workflow.defn
class ApprovalWorkflow:
    @workflow.init
    def __init__(self, input: ApprovalInput) -> None:
        self._input = input
        self.s: RequestState = input.carried or RequestState(
            request_id=input.request_id,
            requester_id=input.requester_id,
            requester_name=input.requester_name,
            policy=input.policy,
            content=input.content,
        )
        s = self.s
        self._events: list[TimelineEntry] = s.unsent_events  # not yet projected
        self._participants: list[Assignee] = s.unsent_participants  # not yet projected
        self._notifications: list[NotificationInput] = s.unsent_notifications  # not yet sent
        s.unsent_events, s.unsent_participants, s.unsent_notifications = [], [], []
        if missing := len(s.recent_action_ids) - len(s.recent_results):  # state carried by older code
            s.recent_results = [ActionResult(s.status, "This was already done.")] * missing + s.recent_results
        self._results: dict[str, ActionResult] = dict(zip(s.recent_action_ids, s.recent_results, strict=True))
        self._wake = False

    # --- Main loop --------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: ApprovalInput) -> RequestState:
        s = self.s
        if input.carried is None:
            self._event(EventKind.SUBMITTED, actor_id=s.requester_id, actor_name=s.requester_name, seq=0)
            s.status = RequestStatus.IN_REVIEW
            self._enter_stage(next_stage_index(s.policy, s.content, -1))
        try:
            await self._lifecycle()
        except (asyncio.CancelledError, ActivityError) as err:
            # Someone cancelled the workflow in Temporal (the UI, the CLI): the request ends as
            # cancelled, and that is projected and told like any other end. (A cancel that meets
            # an activity arrives as that activity's error.)
            if not is_cancelled_exception(err):
                raise
            if not s.status.is_final:
                detail = "The workflow was cancelled in Temporal"
                self._finish(
                    RequestStatus.CANCELLED,
                    Decided(None, "Temporal", workflow.now(), detail),
                    EventKind.CANCELLED,
                )
        await workflow.wait_condition(workflow.all_handlers_finished)
        while self._unflushed():
            await self._flush_batch()
        return s

    async def _lifecycle(self) -> None:
        """Until the request is final: assign, project and email, sleep until the next timer."""
        s = self.s
        while not s.status.is_final:
            await self._assign_pending()
            while self._unflushed() and not self._should_continue_as_new():
                await self._flush_batch()
            if s.status.is_final:
                break
            if self._should_continue_as_new():
                await self._continue_as_new()
            # Sleep until the next timer is due or there is work: effects to send, people to
            # assign, or a handler that moved a deadline (the timeout is computed afresh then).
            self._wake = False
            wake_at = self._next_wake()
            timeout = None if wake_at is None else max(wake_at - workflow.now(), timedelta(0))
            try:
                await workflow.wait_condition(
                    lambda: self._wake or self._unflushed() or self._needs_assignment(), timeout=timeout
                )
            except TimeoutError:
                pass
            self._on_time()

    def _needs_assignment(self) -> bool:
        stage = self.s.stage
        return (
            self.s.status == RequestStatus.IN_REVIEW
            and stage is not None
            and (not stage.assigned or stage.levels_assigned < stage.escalation_level)
        )

    def _next_wake(self) -> datetime | None:
        stage = self.s.stage
        if self.s.status != RequestStatus.IN_REVIEW or stage is None:
            return None  # changes requested: nothing runs until the requester acts
        times = [stage.deadline] + ([stage.next_reminder_at] if stage.next_reminder_at else [])
        return min(times)

    def _on_time(self) -> None:
        """Fire whatever is due: a reminder, then the deadline (escalation or the final outcome)."""
        s, stage = self.s, self.s.stage
        if s.status != RequestStatus.IN_REVIEW or stage is None or not stage.assigned:
            return
        now = workflow.now()
        spec = self._spec()
        if stage.next_reminder_at and now >= stage.next_reminder_at and spec.reminder_seconds:
            if now < stage.deadline and (waiting := s.pending()):
                event = self._event(EventKind.REMINDED, detail=", ".join(a.name for a in waiting))
                self._notify(NotificationKind.REMINDER, [a.user_id for a in waiting], event)
            interval = timedelta(seconds=spec.reminder_seconds)
            while stage.next_reminder_at <= now:  # one reminder after an outage, not a burst
                stage.next_reminder_at += interval
        if now >= stage.deadline:
            self._deadline_passed(spec, stage)

    def _deadline_passed(self, spec: StageSpec, stage: StageState) -> None:
        if stage.escalation_level < len(spec.escalation):
            level = spec.escalation[stage.escalation_level]
            stage.escalation_level += 1
            stage.deadline = max(stage.deadline, workflow.now()) + timedelta(seconds=level.after_seconds)
            return  # _assign_pending adds the level's people and records the escalation
        at = workflow.now()
        detail = f"Deadline of stage “{stage.name}” passed after {stage.escalation_level} escalation level(s)"
        if spec.on_exhausted == Exhausted.APPROVE:
            self._stage_approved(Decided(by_id=None, by_name="policy", at=at, comment=detail), automatic=True)
        elif spec.on_exhausted == Exhausted.REJECT:
            self._finish(RequestStatus.REJECTED, Decided(None, "policy", at, detail), EventKind.REJECTED)
        else:
            self._finish(RequestStatus.EXPIRED, Decided(None, "policy", at, detail), EventKind.EXPIRED)

    # --- Stages -----------------------------------------------------------------------------

    def _spec(self) -> StageSpec:
        assert self.s.stage is not None
        return self.s.policy.stages[self.s.stage.index]

    def _enter_stage(self, index: int | None, decided: Decided | None = None) -> None:
        """Start stage `index`; with no stage left, the request is approved (by `decided`)."""
        s = self.s
        if index is None:
            s.stage = None
            by = decided or Decided(None, "policy", workflow.now(), "No further stage of the policy applies")
            self._finish(RequestStatus.APPROVED, by, EventKind.APPROVED)
            return
        spec = s.policy.stages[index]
        now = workflow.now()
        s.stage_versions += 1
        s.stage = StageState(
            index=index,
            name=spec.name,
            version=s.stage_versions,
            rule=spec.rule,
            required=1,
            started_at=now,
            deadline=now + timedelta(seconds=spec.deadline_seconds),
            next_reminder_at=now + timedelta(seconds=spec.reminder_seconds)
            if spec.reminder_seconds
            else None,
        )
        self._wake = True

    async def _assign_pending(self) -> None:
        """Resolve who acts: the stage's approvers when it starts, then each escalation level."""
        s = self.s
        stage = s.stage
        if s.status != RequestStatus.IN_REVIEW or stage is None:
            return
        spec = self._spec()
        if not stage.assigned:
            assignees = await self._resolve(spec.user_ids, spec.group_ids, level=0)
            if s.stage is not stage:
                return  # withdrawn or restarted while resolving
            stage.assignees = assignees
            stage.required = required_approvals(spec, len(assignees))
            stage.assigned = True
            self._add_participants(assignees)
            names = ", ".join(a.name for a in assignees) or "nobody (escalating at once)"
            event = self._event(EventKind.STAGE_STARTED, detail=f"Approvers: {names}; needs {stage.required}")
            self._notify(NotificationKind.ASSIGNED, [a.user_id for a in assignees], event)
            if not assignees:
                stage.deadline = workflow.now()
                self._wake = True
        while (
            s.stage is stage
            and s.status == RequestStatus.IN_REVIEW
            and stage.levels_assigned < stage.escalation_level
        ):
            level = spec.escalation[stage.levels_assigned]
            resolved = await self._resolve(level.user_ids, level.group_ids, level=stage.levels_assigned + 1)
            if s.stage is not stage or s.status != RequestStatus.IN_REVIEW:
                return
            stage.levels_assigned += 1
            already = {a.user_id for a in stage.assignees}
            added = [a for a in resolved if a.user_id not in already]
            stage.assignees.extend(added)
            self._add_participants(added)
            names = ", ".join(a.name for a in added) or "nobody new"
            event = self._event(
                EventKind.ESCALATED,
                detail=f"Level {stage.levels_assigned}: {names} added; next deadline {_hhmm(stage.deadline)}",
            )
            self._notify(NotificationKind.ESCALATED, [a.user_id for a in added], event)

    def _add_participants(self, assignees: list[Assignee]) -> None:
        self._participants.extend(assignees)
        for a in assignees:
            if a.user_id not in self.s.participant_ids:
                self.s.participant_ids.append(a.user_id)

    async def _resolve(self, user_ids: list[int], group_ids: list[int], level: int) -> list[Assignee]:
        return await workflow.execute_activity(
            activities.resolve_approvers,
            AssignInput(
                request_id=self.s.request_id,
                requester_id=self.s.requester_id,
                user_ids=user_ids,
                group_ids=group_ids,
                level=level,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )

    def _stage_approved(self, decided: Decided, automatic: bool = False) -> None:
        s = self.s
        assert s.stage is not None
        s.closed_stages.append(
            ClosedStage(s.stage.name, [a.user_id for a in s.stage.assignees], decided.by_name, decided.at)
        )
        how = "automatically, as the policy allows" if automatic else f"by {decided.by_name}"
        event = self._event(
            EventKind.STAGE_APPROVED, actor_id=decided.by_id, actor_name=decided.by_name, detail=how
        )
        self._enter_stage(next_stage_index(s.policy, s.content, s.stage.index), decided)
        # Added after the first release: runs recorded before it replay without this email.
        if s.status == RequestStatus.IN_REVIEW and workflow.patched(PATCH_PROGRESS_EMAIL):
            self._notify(NotificationKind.PROGRESS, [s.requester_id], event)

    def _finish(self, status: RequestStatus, decided: Decided, kind: EventKind) -> None:
        s = self.s
        waiting = s.pending()
        s.status = status
        s.decided = decided
        event = self._event(kind, actor_id=decided.by_id, actor_name=decided.by_name, comment=decided.comment)
        notify = {
            RequestStatus.APPROVED: NotificationKind.DECIDED,
            RequestStatus.REJECTED: NotificationKind.DECIDED,
            RequestStatus.EXPIRED: NotificationKind.EXPIRED,
            RequestStatus.WITHDRAWN: NotificationKind.WITHDRAWN,
            RequestStatus.CANCELLED: NotificationKind.CANCELLED,
        }[status]
        if status == RequestStatus.WITHDRAWN:
            self._notify(notify, [a.user_id for a in waiting], event)
        elif status == RequestStatus.CANCELLED:
            self._notify(notify, [s.requester_id, *(a.user_id for a in waiting)], event)
        else:
            self._notify(notify, [s.requester_id], event)
        self._wake = True

    # --- Messages ---------------------------------------------------------------------------

    @workflow.signal
    def act(self, action: Action) -> None:
        """Fire-and-forget actions (email links, integrations): invalid ones are logged and dropped."""
        problem = self._problem(action)
        if problem:
            who = (getattr(action, "kind", type(action).__name__), getattr(action, "actor_id", "?"))
            workflow.logger.warning("Refused %s by %s: %s", *who, problem)
            return
        self._apply(action)

    @workflow.update
    def submit_action(self, action: Action) -> ActionResult:
        problem = self._problem(action)
        if problem:  # the state changed between validation and now (a concurrent action)
            raise ApplicationError(problem, type=REFUSED, non_retryable=True)
        return self._apply(action)

    @submit_action.validator
    def _validate_action(self, action: Action) -> None:
        problem = self._problem(action)
        if problem:
            raise ApplicationError(problem, type=REFUSED, non_retryable=True)

    @workflow.query
    def state(self) -> RequestState:
        return self.s

    def _problem(self, action: Action) -> str | None:
        """Why this action may not happen now, in words for the person who tried; None if it may."""
        if bad := malformed(action):
            return bad
        s = self.s
        if action.action_id and action.action_id in self._results:
            return None  # a repeat of an action already applied: answered with the same result
        kind = action.kind
        comment = action.comment.strip()
        if len(action.comment) > MAX_COMMENT:
            return f"Comments are limited to {MAX_COMMENT} characters."
        if s.status.is_final:
            by = f" by {s.decided.by_name} at {_hhmm(s.decided.at)}" if s.decided else ""
            return f"This request is already {s.status.label.lower()}{by}."
        is_requester = action.actor_id == s.requester_id
        if kind == ActionKind.CANCEL:
            return None if comment else "Say why the request is cancelled."
        if kind == ActionKind.COMMENT:
            if not comment:
                return "Write a comment first."
            if not (is_requester or action.actor_id in s.participant_ids):
                return "Only the requester and the request's approvers can comment."
            return None
        if kind == ActionKind.WITHDRAW:
            return None if is_requester else "Only the requester can withdraw the request."
        if kind == ActionKind.RESUBMIT:
            if not is_requester:
                return "Only the requester can resubmit the request."
            if s.status != RequestStatus.CHANGES_REQUESTED:
                return "The request can be resubmitted only after changes were requested."
            if action.content is None or not action.content.title.strip():
                return "A resubmitted request needs a title."
            return None
        # Approve, reject, request changes, delegate, extend: the current stage's approvers only.
        if is_requester:
            return "You cannot decide on your own request."
        if s.status == RequestStatus.CHANGES_REQUESTED:
            return "Changes were requested; the requester has to resubmit before anyone decides."
        stage = s.stage
        if stage is None or not stage.assigned:
            return "Approvers are being assigned; try again in a moment."
        voted = next((v for v in stage.approvals if v.user_id == action.actor_id), None)
        if voted:
            return f"You already approved stage “{stage.name}” at {_hhmm(voted.at)}."
        if action.actor_id not in {a.user_id for a in stage.assignees}:
            return self._not_an_approver_message(action.actor_id)
        if kind in (ActionKind.REJECT, ActionKind.REQUEST_CHANGES) and not comment:
            return "A comment is required to reject or to request changes."
        if kind == ActionKind.DELEGATE:
            if action.delegate_id is None:
                return "Choose someone to delegate to."
            if action.delegate_id == s.requester_id:
                return "The requester cannot approve their own request."
            if action.delegate_id in {a.user_id for a in stage.assignees}:
                return f"{action.delegate_name or 'That person'} is already an approver of this stage."
        if kind == ActionKind.EXTEND and not 60 <= action.extend_seconds <= MAX_EXTENSION.total_seconds():
            return f"Ask for between one minute and {MAX_EXTENSION.days} days more."
        return None

    def _not_an_approver_message(self, actor_id: int) -> str:
        for closed in reversed(self.s.closed_stages):
            if actor_id in closed.assignee_ids:
                return (
                    f"Stage “{closed.name}” was already approved by {closed.by_name} at {_hhmm(closed.at)}."
                )
        return "You are not an approver of this stage."

    def _apply(self, action: Action) -> ActionResult:
        if action.action_id and action.action_id in self._results:
            return self._results[action.action_id]
        s = self.s
        kind = action.kind
        comment = action.comment.strip()
        actor = {"actor_id": action.actor_id, "actor_name": action.actor_name}
        stage = s.stage
        message = ""
        if kind == ActionKind.COMMENT:
            self._event(EventKind.COMMENT, comment=comment, **actor)
            message = "Your comment is added."
        elif kind == ActionKind.WITHDRAW:
            self._finish(
                RequestStatus.WITHDRAWN,
                Decided(action.actor_id, action.actor_name, workflow.now(), comment),
                EventKind.WITHDRAWN,
            )
            message = "The request is withdrawn."
        elif kind == ActionKind.CANCEL:
            self._finish(
                RequestStatus.CANCELLED,
                Decided(action.actor_id, action.actor_name, workflow.now(), comment),
                EventKind.CANCELLED,
            )
            message = "The request is cancelled."
        elif kind == ActionKind.RESUBMIT:
            assert action.content is not None and stage is not None
            s.content = Content(action.content.title.strip(), action.content.details, action.content.amount)
            s.revision += 1
            s.status = RequestStatus.IN_REVIEW
            self._event(EventKind.RESUBMITTED, comment=comment, detail=f"Revision {s.revision}", **actor)
            # The current stage starts again, unless the new content means it no longer applies.
            self._enter_stage(next_stage_index(s.policy, s.content, stage.index - 1))
            message = "Your request is resubmitted; review starts again."
        elif kind == ActionKind.APPROVE:
            assert stage is not None
            me = next(a for a in stage.assignees if a.user_id == action.actor_id)
            vote = Vote(action.actor_id, action.actor_name, workflow.now(), s.revision, comment)
            stage.approvals.append(vote)
            self._event(
                EventKind.APPROVAL,
                comment=comment,
                detail=f"{len(stage.approvals)} of {stage.required}",
                **actor,
            )
            if me.level > 0 or len(stage.approvals) >= stage.required:
                self._stage_approved(Decided(vote.user_id, vote.name, vote.at, comment))
                message = f"Stage “{stage.name}” is approved."
            else:
                message = f"Your approval is recorded ({len(stage.approvals)} of {stage.required})."
        elif kind == ActionKind.REJECT:
            self._finish(
                RequestStatus.REJECTED,
                Decided(action.actor_id, action.actor_name, workflow.now(), comment),
                EventKind.REJECTED,
            )
            message = "The request is rejected."
        elif kind == ActionKind.REQUEST_CHANGES:
            s.status = RequestStatus.CHANGES_REQUESTED
            event = self._event(EventKind.CHANGES_REQUESTED, comment=comment, **actor)
            self._notify(NotificationKind.CHANGES_REQUESTED, [s.requester_id], event)
            message = "Changes are requested from the requester."
        elif kind == ActionKind.DELEGATE:
            assert stage is not None and action.delegate_id is not None
            i = next(i for i, a in enumerate(stage.assignees) if a.user_id == action.actor_id)
            original = stage.assignees[i]
            delegate = Assignee(
                user_id=action.delegate_id,
                name=action.delegate_name,
                level=original.level,
                acting_for_id=original.acting_for_id or original.user_id,
                acting_for_name=original.acting_for_name or original.name,
            )
            if delegate.acting_for_id == delegate.user_id and workflow.patched(PATCH_HANDED_BACK):
                delegate.acting_for_id, delegate.acting_for_name = None, ""  # handed back: their own again
            stage.assignees[i] = delegate
            self._add_participants([delegate])
            event = self._event(EventKind.DELEGATED, comment=comment, detail=f"to {delegate.name}", **actor)
            self._notify(NotificationKind.ASSIGNED, [delegate.user_id], event)
            message = f"{delegate.name} now acts in your place."
        elif kind == ActionKind.EXTEND:
            assert stage is not None
            stage.deadline = max(stage.deadline, workflow.now()) + timedelta(seconds=action.extend_seconds)
            self._event(
                EventKind.EXTENDED, comment=comment, detail=f"New deadline {_hhmm(stage.deadline)}", **actor
            )
            message = f"The deadline is now {_hhmm(stage.deadline)}."
        self._wake = True
        result = ActionResult(status=s.status, message=message, stage=s.stage.name if s.stage else "")
        if action.action_id:
            self._results[action.action_id] = result
            s.recent_action_ids = (s.recent_action_ids + [action.action_id])[-RECENT_ACTIONS_KEPT:]
            s.recent_results = (s.recent_results + [result])[-RECENT_ACTIONS_KEPT:]
            if len(self._results) > 2 * RECENT_ACTIONS_KEPT:
                self._results = dict(zip(s.recent_action_ids, s.recent_results, strict=True))
        return result

    # --- Effects ----------------------------------------------------------------------------

    def _event(
        self,
        kind: EventKind,
        *,
        actor_id: int | None = None,
        actor_name: str = "",
        comment: str = "",
        detail: str = "",
        seq: int | None = None,
        revision: int | None = None,
    ) -> TimelineEntry:
        s = self.s
        if seq is None:
            s.seq += 1
            seq = s.seq
        entry = TimelineEntry(
            seq=seq,
            at=workflow.now(),
            kind=kind,
            actor_id=actor_id,
            actor_name=actor_name,
            comment=comment,
            detail=detail,
            stage=s.stage.name if s.stage else "",
            revision=s.revision if revision is None else revision,
        )
        s.timeline.append(entry)
        if len(s.timeline) > TIMELINE_KEPT:
            dropped = len(s.timeline) - TIMELINE_KEPT
            s.timeline = s.timeline[dropped:]
            s.timeline_dropped += dropped
        self._events.append(entry)
        return entry

    def _notify(self, kind: NotificationKind, recipient_ids: list[int], event: TimelineEntry) -> None:
        if recipient_ids:
            self._notifications.append(
                NotificationInput(
                    request_id=self.s.request_id,
                    kind=kind,
                    recipient_ids=list(dict.fromkeys(recipient_ids)),
                    idempotency_key=f"{self.s.request_id}:{event.seq}:{kind.value}",
                    comment=event.comment,
                    actor_name=event.actor_name,
                )
            )

    def _unflushed(self) -> bool:
        return bool(self._events or self._notifications)

    async def _flush_batch(self) -> None:
        """Project the new events into the read model, then send the emails they call for."""
        events, self._events = self._events, []
        participants, self._participants = self._participants, []
        notifications, self._notifications = self._notifications, []
        try:
            if events:
                await workflow.execute_activity(
                    activities.project_state,
                    self._projection(events, participants),
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    retry_policy=ACTIVITY_RETRY,
                )
                events, participants = [], []
            while notifications:
                await workflow.execute_activity(
                    activities.send_notification,
                    notifications[0],
                    start_to_close_timeout=EMAIL_TIMEOUT,
                    heartbeat_timeout=EMAIL_HEARTBEAT,
                    retry_policy=ACTIVITY_RETRY,
                )
                notifications.pop(0)
        except (asyncio.CancelledError, ActivityError):
            # Cancelled (or failed) halfway: what was not done yet goes back, to be done after the
            # cancellation is handled (the activities are idempotent: one that finished anyway
            # does no harm when it runs again).
            self._events = events + self._events
            self._participants = participants + self._participants
            self._notifications = notifications + self._notifications
            raise

    def _projection(self, events: list[TimelineEntry], participants: list[Assignee]) -> Projection:
        s = self.s
        stage = s.stage
        done = len(s.closed_stages)
        remaining = 0
        if stage is not None:
            index: int | None = stage.index
            while index is not None:
                remaining += 1
                index = next_stage_index(s.policy, s.content, index)
        return Projection(
            request_id=s.request_id,
            seq=max(e.seq for e in events),
            status=s.status,
            revision=s.revision,
            content=s.content,
            stage_name=stage.name if stage else "",
            stage_version=stage.version if stage else 0,
            stage_number=done + 1 if stage else 0,
            stage_count=done + remaining,
            deadline=stage.deadline if stage and s.status == RequestStatus.IN_REVIEW else None,
            pending=s.pending(),
            new_participants=participants,
            events=events,
            decided=s.decided,
        )

    # --- Continue-as-new --------------------------------------------------------------------

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._input.history_limit
        )

    async def _continue_as_new(self) -> None:
        # Let running handlers finish; what they produced and is not yet projected or sent
        # travels with the state, and the next run carries it out first.
        await workflow.wait_condition(workflow.all_handlers_finished)
        s = self.s
        s.unsent_events, s.unsent_participants, s.unsent_notifications = (
            self._events,
            self._participants,
            self._notifications,
        )
        s.runs += 1
        workflow.continue_as_new(
            ApprovalInput(
                request_id=s.request_id,
                requester_id=s.requester_id,
                requester_name=s.requester_name,
                policy=s.policy,
                content=s.content,
                history_limit=self._input.history_limit,
                carried=s,
            )
        )
