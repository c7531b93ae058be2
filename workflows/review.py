"""A request under review: its state, how it moves, and the effects each move calls for.

Deterministic and free of I/O: the time comes from `now` (the workflow passes `workflow.now`),
and effects are only queued here (timeline entries to project, people to record, emails to
send) for the workflow to carry out through activities. Each change of behaviour asks
`patched(name)` (the workflow passes `workflow.patched`), so runs recorded before it replay as
they ran.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta

from workflows.policy import condition_words, next_stage_index, required_approvals
from workflows.rules import when
from workflows.types import (
    ActionResult,
    Assignee,
    ClosedStage,
    Content,
    Decided,
    EventKind,
    NotificationInput,
    NotificationKind,
    Projection,
    RequestState,
    RequestStatus,
    StageSpec,
    StageState,
    TimelineEntry,
    notification_key,
)

# In workflow memory, the last entries only, and without their comments: the read model keeps
# every entry whole. (What the workflow carries stays bounded however long the request lives.)
TIMELINE_KEPT = 30
TIMELINE_DETAIL_KEPT = 120
TIMELINE_NAME_KEPT = 60
ANSWERS_KEPT = 200

# Changes of behaviour since the first release, each behind workflow.patched.
PATCH_PROGRESS_EMAIL = "notify-requester-on-next-stage"
PATCH_HANDED_BACK = "handed-back-acts-for-nobody"
PATCH_SKIPPED_STAGES = "record-skipped-stages"
# Decisions wait out the request type's undo period (Policy.undo_seconds) before they take effect.
PATCH_UNDO = "undo-grace"
# A signalled action the workflow will not take is in the timeline as let go, with why, so that
# its sender is not told it is on its way for good (see handlers.drop).
PATCH_DROPPED_TOLD = "dropped-signal-told"

# Who hears of a request's end, and by which email.
END_NOTIFICATIONS = {
    RequestStatus.APPROVED: NotificationKind.DECIDED,
    RequestStatus.REJECTED: NotificationKind.DECIDED,
    RequestStatus.EXPIRED: NotificationKind.EXPIRED,
    RequestStatus.WITHDRAWN: NotificationKind.WITHDRAWN,
    RequestStatus.CANCELLED: NotificationKind.CANCELLED,
}


class Review:
    def __init__(
        self, state: RequestState, *, now: Callable[[], datetime], patched: Callable[[str], bool]
    ) -> None:
        self.state = state
        self.now = now
        self.patched = patched
        # Effects not carried out yet; a run that continued as new hands them on in the state.
        self.events: list[TimelineEntry] = state.unsent_events
        self.participants: list[Assignee] = state.unsent_participants
        self.notifications: list[NotificationInput] = state.unsent_notifications
        state.unsent_events, state.unsent_participants, state.unsent_notifications = [], [], []
        if missing := len(state.recent_action_ids) - len(state.recent_results):  # carried by older code
            already = ActionResult(state.status, "This was already done.")
            state.recent_results = [already] * missing + state.recent_results
        self._answers = dict(zip(state.recent_action_ids, state.recent_results, strict=True))
        # Something changed that the main loop must look at (a stage, a deadline, an end).
        self.changed = False

    # --- Stages -------------------------------------------------------------------------------

    @property
    def spec(self) -> StageSpec:
        """The policy's spec of the current stage."""
        assert self.state.stage is not None
        return self.state.policy.stages[self.state.stage.index]

    def submit(self) -> None:
        state = self.state
        self.record(EventKind.SUBMITTED, actor_id=state.requester_id, actor_name=state.requester_name, seq=0)
        state.status = RequestStatus.IN_REVIEW
        self.advance(after=-1)

    def advance(self, *, after: int, decided: Decided | None = None) -> None:
        """Start the first stage after index `after` that applies to the request's content;
        with none left, the request is approved (by `decided`)."""
        state = self.state
        index = next_stage_index(state.policy, state.content, after)
        skipped = range(after + 1, len(state.policy.stages) if index is None else index)
        if skipped and self.patched(PATCH_SKIPPED_STAGES):
            for spec in (state.policy.stages[i] for i in skipped):
                words = condition_words(spec.condition) if spec.condition else ""
                self.record(EventKind.STAGE_SKIPPED, detail=f"It applies {words}", stage=spec.name)
        self.enter_stage(index, decided)

    def enter_stage(self, index: int | None, decided: Decided | None = None) -> None:
        state = self.state
        if index is None:
            state.stage = None
            by = decided or Decided(None, "policy", self.now(), "No further stage of the policy applies")
            self.finish(RequestStatus.APPROVED, by, EventKind.APPROVED)
            return
        spec = state.policy.stages[index]
        now = self.now()
        state.stage_versions += 1
        state.stage = StageState(
            index=index,
            name=spec.name,
            version=state.stage_versions,
            rule=spec.rule,
            required=1,
            started_at=now,
            deadline=now + timedelta(seconds=spec.deadline_seconds),
            next_reminder_at=now + timedelta(seconds=spec.reminder_seconds)
            if spec.reminder_seconds
            else None,
        )
        self.changed = True
        if spec.auto_approve:
            why = f"Approved automatically: the policy trusts {state.requester_name} with this stage"
            if spec.condition is not None:
                why += f", which applies {condition_words(spec.condition)}"
            self.stage_approved(Decided(None, "policy", now, why + "."), automatic=True, how=why)

    def assign(self, assignees: list[Assignee]) -> None:
        """The current stage's approvers are known: ask them (nobody: escalate at once)."""
        stage = self.state.stage
        assert stage is not None
        stage.assignees = assignees
        stage.required = required_approvals(self.spec, len(assignees))
        stage.assigned = True
        self.add_participants(assignees)
        names = ", ".join(a.name for a in assignees) or "nobody (escalating at once)"
        event = self.record(EventKind.STAGE_STARTED, detail=f"Approvers: {names}; needs {stage.required}")
        self.notify(NotificationKind.ASSIGNED, [a.user_id for a in assignees], event)
        if not assignees:
            stage.deadline = self.now()
            self.changed = True

    def escalate(self, resolved: list[Assignee]) -> None:
        """The next escalation level's people are known: add those not asked yet, and tell them."""
        stage = self.state.stage
        assert stage is not None
        stage.levels_assigned += 1
        already = {a.user_id for a in stage.assignees}
        added = [a for a in resolved if a.user_id not in already]
        stage.assignees.extend(added)
        self.add_participants(added)
        names = ", ".join(a.name for a in added) or "nobody new"
        detail = f"Level {stage.levels_assigned}: {names} added; next deadline {when(stage.deadline)}"
        event = self.record(EventKind.ESCALATED, detail=detail)
        self.notify(NotificationKind.ESCALATED, [a.user_id for a in added], event)

    def stage_approved(self, decided: Decided, *, automatic: bool = False, how: str = "") -> None:
        state = self.state
        stage = state.stage
        assert stage is not None
        state.closed_stages.append(
            ClosedStage(
                stage.name,
                [a.user_id for a in stage.assignees],
                decided.by_name,
                decided.at,
                approver_ids=[v.user_id for v in stage.approvals],
            )
        )
        if not how:
            how = "automatically, as the policy allows" if automatic else f"by {decided.by_name}"
        event = self.record(
            EventKind.STAGE_APPROVED, actor_id=decided.by_id, actor_name=decided.by_name, detail=how
        )
        self.advance(after=stage.index, decided=decided)
        if state.status == RequestStatus.IN_REVIEW and self.patched(PATCH_PROGRESS_EMAIL):
            self.notify(NotificationKind.PROGRESS, [state.requester_id], event)

    def finish(self, status: RequestStatus, decided: Decided, kind: EventKind) -> None:
        """End the request, and tell those it concerns."""
        state = self.state
        waiting = state.pending()
        state.status = status
        state.decided = decided
        event = self.record(kind, actor_id=decided.by_id, actor_name=decided.by_name, comment=decided.comment)
        if status == RequestStatus.WITHDRAWN:
            recipients = [a.user_id for a in waiting]
        elif status == RequestStatus.CANCELLED:
            recipients = [state.requester_id, *(a.user_id for a in waiting)]
        else:
            recipients = [state.requester_id]
        self.notify(END_NOTIFICATIONS[status], recipients, event)
        self.changed = True

    def add_participants(self, assignees: list[Assignee]) -> None:
        self.participants.extend(assignees)
        for assignee in assignees:
            if assignee.user_id not in self.state.participant_ids:
                self.state.participant_ids.append(assignee.user_id)

    # --- Answers ------------------------------------------------------------------------------

    def answered(self, action_id: str) -> ActionResult | None:
        """The answer given to this action already, if it was applied before: a retried signal,
        a double click, even across continue-as-new."""
        return self._answers.get(action_id) if action_id else None

    def remember(self, action_id: str, result: ActionResult) -> None:
        if not action_id:
            return
        state = self.state
        self._answers[action_id] = result
        state.recent_action_ids = (state.recent_action_ids + [action_id])[-ANSWERS_KEPT:]
        state.recent_results = (state.recent_results + [result])[-ANSWERS_KEPT:]
        if len(self._answers) > 2 * ANSWERS_KEPT:
            self._answers = dict(zip(state.recent_action_ids, state.recent_results, strict=True))

    # --- Effects ------------------------------------------------------------------------------

    def record(
        self,
        kind: EventKind,
        *,
        actor_id: int | None = None,
        actor_name: str = "",
        comment: str = "",
        detail: str = "",
        seq: int | None = None,
        stage: str | None = None,
    ) -> TimelineEntry:
        """Add an entry to the timeline, numbered, to be projected."""
        state = self.state
        if seq is None:
            state.seq += 1
            seq = state.seq
        entry = TimelineEntry(
            seq=seq,
            at=self.now(),
            kind=kind,
            actor_id=actor_id,
            actor_name=actor_name,
            comment=comment,
            detail=detail,
            stage=(state.stage.name if state.stage else "") if stage is None else stage,
            revision=state.revision,
        )
        state.timeline.append(
            dataclasses.replace(
                entry,
                comment="",
                action_id="",
                detail=entry.detail[:TIMELINE_DETAIL_KEPT],
                actor_name=entry.actor_name[:TIMELINE_NAME_KEPT],
            )
        )
        if len(state.timeline) > TIMELINE_KEPT:
            dropped = len(state.timeline) - TIMELINE_KEPT
            state.timeline = state.timeline[dropped:]
            state.timeline_dropped += dropped
        self.events.append(entry)
        return entry

    def notify(self, kind: NotificationKind, recipient_ids: list[int], event: TimelineEntry) -> None:
        if recipient_ids:
            self.notifications.append(
                NotificationInput(
                    request_id=self.state.request_id,
                    kind=kind,
                    recipient_ids=list(dict.fromkeys(recipient_ids)),
                    idempotency_key=notification_key(self.state.request_id, event.seq, kind),
                    comment=event.comment,
                    actor_name=event.actor_name,
                )
            )

    def unflushed(self) -> bool:
        return bool(self.events or self.notifications)

    def take_effects(self) -> tuple[list[TimelineEntry], list[Assignee], list[NotificationInput]]:
        """Everything queued so far, to carry out now."""
        taken = self.events, self.participants, self.notifications
        self.events, self.participants, self.notifications = [], [], []
        return taken

    def put_back(
        self,
        events: list[TimelineEntry],
        participants: list[Assignee],
        notifications: list[NotificationInput],
    ) -> None:
        """Effects that were not carried out after all, ahead of anything queued since."""
        self.events = events + self.events
        self.participants = participants + self.participants
        self.notifications = notifications + self.notifications

    def projection(
        self,
        events: list[TimelineEntry],
        participants: list[Assignee],
        *,
        with_content: bool = True,
        notifications: list[NotificationInput] | None = None,
    ) -> Projection:
        """The state after these events, for the read model; its content only `with_content`
        (the read model keeps each revision's once it has it), and the `notifications` to send
        once it is projected."""
        state = self.state
        stage = state.stage
        done = len(state.closed_stages)
        remaining = 0
        if stage is not None:
            index: int | None = stage.index
            while index is not None:
                remaining += 1
                index = next_stage_index(state.policy, state.content, index)
        return Projection(
            request_id=state.request_id,
            seq=max(e.seq for e in events),
            status=state.status,
            revision=state.revision,
            content=state.content if with_content else None,
            stage_name=stage.name if stage else "",
            stage_version=stage.version if stage else 0,
            stage_number=done + 1 if stage else 0,
            stage_count=done + remaining,
            deadline=stage.deadline if stage and state.status == RequestStatus.IN_REVIEW else None,
            pending=state.pending(),
            new_participants=participants,
            events=events,
            decided=state.decided,
            state=snapshot(state),
            notifications=notifications or [],
        )

    def carried(self) -> RequestState:
        """The state for the next run, with the effects still to carry out."""
        state = self.state
        state.unsent_events, state.unsent_participants, state.unsent_notifications = (
            self.events,
            self.participants,
            self.notifications,
        )
        state.runs += 1
        return state


def snapshot(state: RequestState) -> RequestState:
    """The state as the read model keeps it, for the rules to weigh there: without what only the
    workflow needs (its timeline, its answers, its effects), nor what the read model keeps in
    columns of its own (the policy as submitted, the content, the decision's comment)."""
    decided = state.decided and dataclasses.replace(state.decided, comment="")
    return dataclasses.replace(
        state,
        decided=decided,
        # (A held decision's comment is in the timeline, with the event that held it.)
        held=[dataclasses.replace(h, action=dataclasses.replace(h.action, comment="")) for h in state.held],
        policy=dataclasses.replace(state.policy, stages=[]),
        content=Content(""),
        timeline=[],
        timeline_dropped=0,
        recent_action_ids=[],
        recent_results=[],
        unsent_events=[],
        unsent_participants=[],
        unsent_notifications=[],
    )


def json_size(*texts: str) -> int:
    """The most bytes these texts can take as JSON: each UTF-16 unit a six-byte escape."""
    return 6 * sum(len(text.encode("utf-16-le")) // 2 for text in texts)


def projection_part(events: list[TimelineEntry], budget: int) -> int:
    """How many of the leading events one projection takes (always at least one): their text,
    at its longest as JSON, within `budget` bytes."""
    used = 0
    for taken, event in enumerate(events):
        used += json_size(event.comment, event.detail, event.actor_name)
        if used > budget and taken:
            return taken
    return len(events)


def notifications_fit(notifications: list[NotificationInput], budget: int) -> bool:
    """Whether these emails' text, at its longest as JSON, is within `budget` bytes."""
    return sum(json_size(n.comment, n.actor_name) for n in notifications) <= budget
