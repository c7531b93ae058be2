"""What each kind of action does to a request under review: one small handler per kind.

A handler runs only once `rules.problem` has found nothing against the action (the update's
validator or the signal handler asked, in the same workflow task), so it changes the state
without checking again. It returns the answer's message.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from workflows.review import PATCH_HANDED_BACK, Review
from workflows.rules import when
from workflows.types import (
    Action,
    ActionKind,
    ActionResult,
    Assignee,
    Content,
    Decided,
    EventKind,
    NotificationKind,
    RequestStatus,
    TimelineEntry,
    Vote,
)

Handler = Callable[[Review, Action], str]


def apply(review: Review, action: Action) -> ActionResult:
    """Apply the action (once: a repeat gets the first answer again) and answer it."""
    if (earlier := review.answered(action.action_id)) is not None:
        return earlier
    before = len(review.events)
    message = HANDLERS[action.kind](review, action)
    for entry in review.events[before:]:
        entry.action_id = action.action_id  # how the read model knows the action took effect
    review.changed = True
    state = review.state
    result = ActionResult(
        status=state.status, message=message, stage=state.stage.name if state.stage else "", seq=state.seq
    )
    review.remember(action.action_id, result)
    return result


def _by(review: Review, action: Action) -> Decided:
    return Decided(action.actor_id, action.actor_name, review.now(), action.comment.strip())


def _record(review: Review, kind: EventKind, action: Action, detail: str = "") -> TimelineEntry:
    return review.record(
        kind,
        actor_id=action.actor_id,
        actor_name=action.actor_name,
        comment=action.comment.strip(),
        detail=detail,
    )


def _comment(review: Review, action: Action) -> str:
    _record(review, EventKind.COMMENT, action)
    return "Your comment is added."


def _withdraw(review: Review, action: Action) -> str:
    review.finish(RequestStatus.WITHDRAWN, _by(review, action), EventKind.WITHDRAWN)
    return "The request is withdrawn."


def _cancel(review: Review, action: Action) -> str:
    review.finish(RequestStatus.CANCELLED, _by(review, action), EventKind.CANCELLED)
    return "The request is cancelled."


def _resubmit(review: Review, action: Action) -> str:
    state, stage, content = review.state, review.state.stage, action.content
    assert content is not None and stage is not None
    state.content = Content(content.title.strip(), content.details, content.amount)
    state.revision += 1
    state.status = RequestStatus.IN_REVIEW
    _record(review, EventKind.RESUBMITTED, action, detail=f"Revision {state.revision}")
    # The current stage starts again, unless the new content means it no longer applies.
    review.advance(after=stage.index - 1)
    return "Your request is resubmitted; review starts again."


def _approve(review: Review, action: Action) -> str:
    stage = review.state.stage
    assert stage is not None
    me = next(a for a in stage.assignees if a.user_id == action.actor_id)
    # The vote without its comment, which the timeline keeps (the state stays small).
    vote = Vote(action.actor_id, action.actor_name, review.now(), review.state.revision)
    stage.approvals.append(vote)
    _record(review, EventKind.APPROVAL, action, detail=f"{len(stage.approvals)} of {stage.required}")
    # Someone an escalation added closes the stage outright.
    if me.level > 0 or len(stage.approvals) >= stage.required:
        review.stage_approved(Decided(vote.user_id, vote.name, vote.at, action.comment.strip()))
        return f"Stage “{stage.name}” is approved."
    return f"Your approval is recorded ({len(stage.approvals)} of {stage.required})."


def _reject(review: Review, action: Action) -> str:
    review.finish(RequestStatus.REJECTED, _by(review, action), EventKind.REJECTED)
    return "The request is rejected."


def _request_changes(review: Review, action: Action) -> str:
    state = review.state
    state.status = RequestStatus.CHANGES_REQUESTED
    event = _record(review, EventKind.CHANGES_REQUESTED, action)
    review.notify(NotificationKind.CHANGES_REQUESTED, [state.requester_id], event)
    return "Changes are requested from the requester."


def _delegate(review: Review, action: Action) -> str:
    stage = review.state.stage
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
    if delegate.acting_for_id == delegate.user_id and review.patched(PATCH_HANDED_BACK):
        delegate.acting_for_id, delegate.acting_for_name = None, ""  # handed back: their own again
    stage.assignees[i] = delegate
    review.add_participants([delegate])
    event = _record(review, EventKind.DELEGATED, action, detail=f"to {delegate.name}")
    review.notify(NotificationKind.ASSIGNED, [delegate.user_id], event)
    return f"{delegate.name} now acts in your place."


def _extend(review: Review, action: Action) -> str:
    stage = review.state.stage
    assert stage is not None
    stage.deadline = max(stage.deadline, review.now()) + timedelta(seconds=action.extend_seconds)
    _record(review, EventKind.EXTENDED, action, detail=f"New deadline {when(stage.deadline)}")
    return f"The deadline is now {when(stage.deadline)}."


HANDLERS: dict[ActionKind, Handler] = {
    ActionKind.APPROVE: _approve,
    ActionKind.REJECT: _reject,
    ActionKind.REQUEST_CHANGES: _request_changes,
    ActionKind.COMMENT: _comment,
    ActionKind.DELEGATE: _delegate,
    ActionKind.EXTEND: _extend,
    ActionKind.WITHDRAW: _withdraw,
    ActionKind.RESUBMIT: _resubmit,
    ActionKind.CANCEL: _cancel,
}
