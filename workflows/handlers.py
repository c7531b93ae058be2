"""What each kind of action does to a request under review: one small handler per kind.

A handler runs only once `rules.problem` has found nothing against the action (the update's
validator or the signal handler asked, in the same workflow task), so it changes the state
without checking again. It returns the answer's message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta

from workflows import rules
from workflows.review import PATCH_HANDED_BACK, PATCH_UNDO, Review
from workflows.rules import NOUNS, at_second, when
from workflows.types import (
    HELD_KINDS,
    Action,
    ActionKind,
    ActionResult,
    Assignee,
    Content,
    Decided,
    EventKind,
    Held,
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
    held = _holds(review, action)
    message = _applied(review, action, _hold if held else HANDLERS[action.kind])
    settle_held(review)
    state = review.state
    result = ActionResult(
        status=state.status,
        message=message,
        stage=state.stage.name if state.stage else "",
        seq=state.seq,
        undo_until=state.held[-1].until if held else None,
    )
    review.remember(action.action_id, result)
    return result


def _applied(review: Review, action: Action, handler: Handler) -> str:
    before = len(review.events)
    message = handler(review, action)
    for entry in review.events[before:]:
        entry.action_id = action.action_id  # how the read model knows the action took effect
    review.changed = True
    return message


# --- Undo: a decision held for the request type's undo period ---------------------------------


def _holds(review: Review, action: Action) -> bool:
    """Whether this decision waits out an undo period before it takes effect."""
    return action.kind in HELD_KINDS and review.state.policy.undo_seconds > 0 and review.patched(PATCH_UNDO)


def _hold(review: Review, action: Action) -> str:
    """Hold the decision: nothing it does happens (no vote, no email, no next stage) until its
    period ends, when `take_effect` applies it, unless its maker undoes it first."""
    state, stage = review.state, review.state.stage
    assert stage is not None
    now = review.now()
    held = Held(action, now, now + timedelta(seconds=state.policy.undo_seconds), stage.version)
    state.held.append(held)
    # The comment goes with this event into the read model; the timeline shows it once the
    # decision takes effect.
    detail = f"{NOUNS[action.kind].capitalize()}, taking effect at {at_second(held.until)} unless undone"
    _record(review, EventKind.HELD, action, detail=detail)
    return rules.held_words(held)


def _undo(review: Review, action: Action) -> str:
    state = review.state
    held = rules.held_named(state, action.target_id)
    assert held is not None  # the rules found it
    state.held.remove(held)
    noun = NOUNS[held.action.kind]
    review.record(
        EventKind.UNDONE, actor_id=action.actor_id, actor_name=action.actor_name, detail=noun.capitalize()
    )
    # Sent again, the undone decision is not answered as held any more.
    review.remember(held.action.action_id, ActionResult(state.status, f"Your {noun} was undone."))
    return f"Your {noun} is undone: it never took effect, and nobody was emailed about it."


def take_effect(review: Review) -> None:
    """Apply the held decisions whose undo period has ended, in the order they were made, each
    weighed again by the rules; then let go of those that can no longer apply."""
    state = review.state
    now = review.now()
    while due := [h for h in state.held if h.until <= now]:
        held = due[0]
        state.held.remove(held)
        if why := _moot(review, held):
            _lapse(review, held, why)
        else:
            _applied(review, held.action, HANDLERS[held.action.kind])
    settle_held(review)


def settle_held(review: Review) -> None:
    """Let go of the held decisions that can no longer take effect (the request ended, changes
    were requested, their stage closed): each says why in the timeline, at once."""
    state = review.state
    for held in list(state.held):
        if why := _moot(review, held):
            state.held.remove(held)
            _lapse(review, held, why)


def _moot(review: Review, held: Held) -> str | None:
    state = review.state
    if state.status.is_final:
        return rules.closed(state)
    if state.stage is None or state.stage.version != held.stage_version:
        return "the stage it was made on has closed or started again."
    others = dataclasses.replace(state, held=[h for h in state.held if h is not held])
    return rules.problem(others, held.action)


def _lapse(review: Review, held: Held, why: str) -> None:
    """Let the held decision go, saying whose it was and why."""
    _let_go(review, held.action, held.made_at, why)


def drop(review: Review, action: Action, why: str) -> None:
    """A signalled action (an email link's, say) that the workflow will not take, because the
    request moved on before it came: let go as a held decision is, so that the read model no
    longer shows it as on its way, and its sender's page says it did not count, and why.

    Only while the request is open: once it ends, nothing sent is shown pending any more."""
    if not review.state.status.is_final:
        _let_go(review, action, review.now(), why)


def _let_go(review: Review, action: Action, made_at: datetime, why: str) -> None:
    """The action did not take effect, in the timeline, saying whose it was and why (it names no
    actor: nobody let it go, the request moved on)."""
    made = f"{action.actor_name}'s {NOUNS[action.kind]}, made at {at_second(made_at)}"
    event = review.record(
        EventKind.LAPSED,
        actor_id=action.actor_id,
        detail=f"{made}, did not take effect: {why[:1].lower()}{why[1:]}",
    )
    event.action_id = action.action_id  # the action it lets go of
    review.changed = True


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
    # An agent action keeps its tool, risk and version: only what a person wrote changes.
    state.content = dataclasses.replace(
        state.content, title=content.title.strip(), details=content.details, amount=content.amount
    )
    state.revision += 1
    state.status = RequestStatus.IN_REVIEW
    _record(review, EventKind.RESUBMITTED, action, detail=f"Revision {state.revision}")
    # The current stage starts again, unless the new content means it no longer applies.
    review.advance(after=stage.index - 1)
    return "Your request is resubmitted; review starts again."


def _approve(review: Review, action: Action) -> str:
    stage = review.state.stage
    assert stage is not None
    if action.content is not None:
        _edit_arguments(review, action, action.content)
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


def _edit_arguments(review: Review, action: Action, edited: Content) -> None:
    """Approved with edits: the edited arguments are the action's new version, under its own
    hash. Approvals of the earlier version in this stage no longer count: the others are asked
    again, of the version that would now run."""
    state, stage = review.state, review.state.stage
    assert stage is not None
    before = state.content.action_sha256
    state.content = dataclasses.replace(state.content, action_sha256=edited.action_sha256)
    state.revision += 1
    stage.approvals = []
    review.record(
        EventKind.ACTION_EDITED,
        actor_id=action.actor_id,
        actor_name=action.actor_name,
        detail=f"Revision {state.revision}: SHA-256 {before[:12]}… became {edited.action_sha256[:12]}…",
    )


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
    ActionKind.UNDO: _undo,
}
