"""The current stage's timers: reminders, the deadline, and the escalation levels it brings on.

As with an updatable timer, the workflow sleeps until the earliest of them is due and wakes
early when something moves one (an extension, a new stage, a decision); what is due then is
fired here. Every time is workflow time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow

from workflows import handlers
from workflows.review import Review
from workflows.types import Decided, EventKind, Exhausted, NotificationKind, RequestState, RequestStatus


def next_wake(state: RequestState) -> datetime | None:
    """When the next timer is due: a held decision's undo period ending, or one of the current
    stage's; None when nothing runs on time (no stage, or changes requested: nothing happens
    until the requester acts). The deadline waits while a decision is held: one made before it
    counts, however late its undo period ends."""
    held = [h.until for h in state.held]
    stage = state.stage
    if state.status != RequestStatus.IN_REVIEW or stage is None:
        return min(held, default=None)
    deadline = [] if held else [stage.deadline]
    return min(held + deadline + ([stage.next_reminder_at] if stage.next_reminder_at else []))


async def sleep_until(wake_at: datetime | None, woken: Callable[[], bool]) -> None:
    """Sleep until `wake_at`, or until `woken()` holds (the timeout is worked out afresh on the
    next sleep, so a moved deadline counts)."""
    timeout = None if wake_at is None else max(wake_at - workflow.now(), timedelta(0))
    try:
        await workflow.wait_condition(woken, timeout=timeout)
    except TimeoutError:
        pass


class Alarm:
    """One durable timer for the next wake, started again only when the wake time moves (or
    after it rang): an action that leaves the deadline where it was costs no timer events, where
    `sleep_until` cancels its timer on every wake and starts another."""

    def __init__(self) -> None:
        self._at: datetime | None = None
        self._timer: asyncio.Task[None] | None = None

    async def sleep_until(self, wake_at: datetime | None, woken: Callable[[], bool]) -> None:
        """As `sleep_until` above, on the one timer."""
        if wake_at != self._at or self._timer is None or self._timer.done():
            self.stop()
            self._at = wake_at
            if wake_at is not None:
                delay = max(wake_at - workflow.now(), timedelta(0))
                self._timer = asyncio.create_task(workflow.sleep(delay))
        timer = self._timer
        await workflow.wait_condition(lambda: woken() or (timer is not None and timer.done()))

    def stop(self) -> None:
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
        self._timer, self._at = None, None


def fire_due(review: Review) -> None:
    """Fire whatever is due: held decisions whose undo period ended, a reminder, then the
    deadline (an escalation, or the outcome) unless a decision is still held."""
    if review.state.held:
        handlers.take_effect(review)
    state, stage = review.state, review.state.stage
    if state.status != RequestStatus.IN_REVIEW or stage is None or not stage.assigned:
        return
    now = review.now()
    spec = review.spec
    if stage.next_reminder_at and now >= stage.next_reminder_at and spec.reminder_seconds:
        deciding = {h.action.actor_id for h in state.held}
        if now < stage.deadline and (waiting := [a for a in state.pending() if a.user_id not in deciding]):
            event = review.record(EventKind.REMINDED, detail=", ".join(a.name for a in waiting))
            review.notify(NotificationKind.REMINDER, [a.user_id for a in waiting], event)
        interval = timedelta(seconds=spec.reminder_seconds)
        while stage.next_reminder_at <= now:  # one reminder after an outage, not a burst
            stage.next_reminder_at += interval
    if now >= stage.deadline and not state.held:
        _deadline_passed(review)


def _deadline_passed(review: Review) -> None:
    """The next escalation level (whose people the workflow then adds), or, with none left, the
    outcome the policy names."""
    stage, spec = review.state.stage, review.spec
    assert stage is not None
    if stage.escalation_level < len(spec.escalation):
        level = spec.escalation[stage.escalation_level]
        stage.escalation_level += 1
        stage.deadline = max(stage.deadline, review.now()) + timedelta(seconds=level.after_seconds)
        return
    levels = stage.escalation_level
    after = f" after {levels} escalation level{'s' if levels > 1 else ''}" if levels else ""
    detail = f"Deadline of stage “{stage.name}” passed{after}"
    by = Decided(by_id=None, by_name="policy", at=review.now(), comment=detail)
    if spec.on_exhausted == Exhausted.APPROVE:
        review.stage_approved(by, automatic=True)
    elif spec.on_exhausted == Exhausted.REJECT:
        review.finish(RequestStatus.REJECTED, by, EventKind.REJECTED)
    else:
        review.finish(RequestStatus.EXPIRED, by, EventKind.EXPIRED)
