"""Who may do what to a request, when, and with what: every rule, message and limit, in one place.

Pure functions over the request's state (`RequestState`). The workflow holds that state and
projects a snapshot of it into the read model, so every caller asks the same questions of the
same facts:
- the workflow's update validator and its signal handler (`problem`);
- the web's check before it calls Temporal (`refusal`, which also says how to tell it);
- the forms (`input_problems`, by field) and the buttons a person is offered (`abilities`).

An update is validated when it arrives and never on replay, so the rules for updates may change
freely. A signal is weighed again on replay: a change that would refuse a signal accepted before
(or accept one refused before) must go behind `workflow.patched` in the signal's path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from workflows.types import (
    HELD_KINDS,
    Action,
    ActionKind,
    CampaignPlan,
    CampaignProgress,
    Content,
    GrantAction,
    GrantActionKind,
    GrantState,
    GrantStatus,
    Held,
    RequestState,
    RequestStatus,
    ReviewDecision,
    ReviewInput,
)

MAX_COMMENT = 4000
MAX_TITLE = 200
MAX_DETAILS = 10_000
MAX_NAME = 150  # a person's name as an action carries it (the read model keeps as many)
MAX_ACTION_ID = 100  # printable ASCII: the web sends UUIDs
MAX_UNDO_SECONDS = 300  # a request type's undo period at most
# Decisions held on one request at once, at most (each may carry a long comment: what the
# workflow holds stays bounded).
MAX_HELD = 20
MIN_EXTENSION = timedelta(minutes=1)
MAX_EXTENSION = timedelta(days=30)

REQUESTER_KINDS = frozenset({ActionKind.WITHDRAW, ActionKind.RESUBMIT})
APPROVER_KINDS = frozenset(
    {
        ActionKind.APPROVE,
        ActionKind.REJECT,
        ActionKind.REQUEST_CHANGES,
        ActionKind.DELEGATE,
        ActionKind.EXTEND,
    }
)
# Each kind of action as a sentence names it ("your approval was sent").
NOUNS = {
    ActionKind.APPROVE: "approval",
    ActionKind.REJECT: "rejection",
    ActionKind.REQUEST_CHANGES: "request for changes",
    ActionKind.COMMENT: "comment",
    ActionKind.DELEGATE: "delegation",
    ActionKind.EXTEND: "request for more time",
    ActionKind.WITHDRAW: "withdrawal",
    ActionKind.RESUBMIT: "resubmission",
    ActionKind.CANCEL: "cancellation",
    ActionKind.UNDO: "undo",
}
COMMENT_REQUIRED = {
    ActionKind.REJECT: "A comment is required to reject or to request changes.",
    ActionKind.REQUEST_CHANGES: "A comment is required to reject or to request changes.",
    ActionKind.COMMENT: "Write a comment first.",
    ActionKind.CANCEL: "Say why the request is cancelled: the requester will read it.",
}
NOT_STARTED = "Review has not started yet: the workflow service is catching up. Try again shortly."
WHO = "{who}"  # in a reason that names the person concerned
DISTINCT_APPROVERS = "this request's policy needs a different person for each stage."


class Why(StrEnum):
    """How a refusal is told."""

    FORBIDDEN = "forbidden"  # never this person's to do (403, and put on record)
    NOT_NOW = "not_now"  # not in the request's present state (409)
    INVALID = "invalid"  # what was sent does not do (400)


@dataclass(frozen=True)
class Refusal:
    why: Why
    message: str


@dataclass(frozen=True)
class Abilities:
    """What one person may do on a request now: only these actions are offered."""

    decide: bool = False  # approve, reject, request changes, delegate, ask for more time
    comment: bool = False
    withdraw: bool = False
    resubmit: bool = False


def when(at: datetime) -> str:
    """A moment as people read it in answers: to the minute, in UTC."""
    return at.strftime("%Y-%m-%d %H:%M UTC")


def at_second(at: datetime) -> str:
    """A moment a few seconds away, as an undo period's end is told: to the second, in UTC."""
    return at.strftime("%H:%M:%S UTC")


def held_by(state: RequestState, actor_id: int) -> Held | None:
    """This person's decision waiting out its undo period on the request, if any."""
    return next((h for h in state.held if h.action.actor_id == actor_id), None)


def held_named(state: RequestState, action_id: str) -> Held | None:
    """The decision held under this action id, if it is still held."""
    return next((h for h in state.held if h.action.action_id == action_id), None)


def held_words(held: Held) -> str:
    """A held decision as its maker is told of it: "Your approval takes effect at …"."""
    return f"Your {NOUNS[held.action.kind]} takes effect at {at_second(held.until)} unless you undo it."


def closed(state: RequestState) -> str:
    """What anyone trying to act on a request that has ended is told."""
    decided = state.decided
    by = f" by {decided.by_name} at {when(decided.at)}" if decided else ""
    return f"This request is already {state.status.label.lower()}{by}."


def stopped_message(why: str) -> str:
    return (
        f"This request's workflow has stopped ({why}), so nothing can be recorded until staff "
        "retry or cancel it; they see it on their dashboard."
    )


def problem(state: RequestState, action: Action) -> str | None:
    """Why the workflow may not apply this action now, in words for the person who tried."""
    refused = refusal(state, action)
    return refused.message if refused else None


def refusal(
    state: RequestState, action: Action, *, started: bool = True, stopped: str = ""
) -> Refusal | None:
    """Why this action may not happen now (None when it may), and how to tell it.

    `started`: the workflow runs (a request still in the outbox has no workflow yet);
    `stopped`: why its workflow stopped for good, when it did. Both are the read model's to know."""
    if bad := malformed(action):
        return Refusal(Why.INVALID, bad)
    if bad := _too_long(action):
        return Refusal(Why.INVALID, bad)
    if action.kind == ActionKind.UNDO:
        return _undo_refusal(state, action)
    if action.kind in HELD_KINDS and state.policy.undo_seconds and len(state.held) >= MAX_HELD:
        return Refusal(
            Why.NOT_NOW, "Many decisions on this request are about to take effect; try again in a minute."
        )
    if refused := standing(
        state, action.kind, action.actor_id, as_staff=action.as_staff, started=started, stopped=stopped
    ):
        return refused
    if bad := _missing(action) or _bad_delegate(state, action):
        return Refusal(Why.INVALID, bad)
    return _version_refusal(state, action)


ACTION_CHANGED = "The action was edited since you looked at it: read its arguments again, then decide."
NOT_AN_AGENT_ACTION = "Only an agent action can be approved with edits."


def _version_refusal(state: RequestState, action: Action) -> Refusal | None:
    """An agent action's approval is bound to the version the approver saw (its hash); one with
    edits names the new version, which may change the arguments only."""
    current = state.content
    if action.kind != ActionKind.APPROVE:
        return None
    if not current.action_sha256:
        if action.content is not None or action.action_sha256:
            return Refusal(Why.INVALID, NOT_AN_AGENT_ACTION)
        return None
    if action.action_sha256 != current.action_sha256:
        return Refusal(Why.NOT_NOW, ACTION_CHANGED)
    edited = action.content
    if edited is None:
        return None
    if (edited.title, edited.details, edited.tool, edited.risk) != (
        current.title,
        current.details,
        current.tool,
        current.risk,
    ):
        return Refusal(Why.INVALID, "Approving with edits changes the arguments only.")
    if not edited.action_sha256 or edited.action_sha256 == current.action_sha256:
        return Refusal(Why.INVALID, "These are the arguments as they stand: approve them without edits.")
    return None


TOO_LATE_TO_UNDO = (
    "Too late to undo: the decision has taken effect (or was undone already, or the request "
    "moved on without it)."
)


def _undo_refusal(state: RequestState, action: Action) -> Refusal | None:
    """Only a held decision can be undone, and only by the person who made it."""
    if bad := _missing(action):
        return Refusal(Why.INVALID, bad)
    held = held_named(state, action.target_id)
    if held is None:
        return Refusal(Why.NOT_NOW, TOO_LATE_TO_UNDO)
    if held.action.actor_id != action.actor_id:
        return Refusal(Why.FORBIDDEN, "Only the person who made a decision can undo it.")
    return None


def input_problems(action: Action) -> dict[str, str]:
    """What is wrong with what a person sent, by form field ("comment", "delegate",
    "extend_by", "title"), before anything about the request is known."""
    problems: dict[str, str] = {}
    if len(action.comment) > MAX_COMMENT:
        problems["comment"] = _comment_limit()
    elif action.kind in COMMENT_REQUIRED and not action.comment.strip():
        problems["comment"] = COMMENT_REQUIRED[action.kind]
    if action.kind == ActionKind.DELEGATE and action.delegate_id is None:
        problems["delegate"] = "Choose someone to delegate to."
    if action.kind == ActionKind.UNDO and not action.target_id:
        problems["target"] = "Say which decision to undo."
    if action.kind == ActionKind.EXTEND and not _extension_ok(action.extend_seconds):
        problems["extend_by"] = _extension_range()
    if action.kind == ActionKind.RESUBMIT:
        problems.update(content_problems(action.content or Content("")))
    return problems


def content_problems(content: Content) -> dict[str, str]:
    """What is wrong with a request's content, by field ("title", "details"): on submission and
    on resubmission alike."""
    problems: dict[str, str] = {}
    if len(content.title) > MAX_TITLE:
        problems["title"] = _title_limit()
    elif not content.title.strip():
        problems["title"] = "A request needs a title."
    if len(content.details) > MAX_DETAILS:
        problems["details"] = f"Details are limited to {MAX_DETAILS} characters."
    return problems


def abilities(
    state: RequestState, actor_id: int, *, as_staff: bool = False, started: bool = True, stopped: str = ""
) -> Abilities:
    def may(kind: ActionKind) -> bool:
        return standing(state, kind, actor_id, as_staff=as_staff, started=started, stopped=stopped) is None

    return Abilities(
        decide=may(ActionKind.APPROVE),
        comment=may(ActionKind.COMMENT),
        withdraw=may(ActionKind.WITHDRAW),
        resubmit=may(ActionKind.RESUBMIT),
    )


def standing(
    state: RequestState,
    kind: ActionKind,
    actor_id: int,
    *,
    as_staff: bool = False,
    started: bool = True,
    stopped: str = "",
) -> Refusal | None:
    """Whether this person may take this kind of action on the request as it stands, whatever
    they send with it: first whether it is theirs to do at all, then whether it fits now."""
    is_requester = actor_id == state.requester_id
    is_participant = actor_id in state.participant_ids
    if kind == ActionKind.CANCEL and not as_staff:
        return Refusal(Why.FORBIDDEN, "Only staff can cancel a request.")
    if kind in REQUESTER_KINDS and not is_requester:
        verb = "withdraw" if kind == ActionKind.WITHDRAW else "resubmit"
        return Refusal(Why.FORBIDDEN, f"Only the requester can {verb} the request.")
    if kind in APPROVER_KINDS:
        if is_requester:
            return Refusal(Why.FORBIDDEN, "You cannot decide on your own request.")
        if not is_participant and state.participant_ids:
            return Refusal(Why.FORBIDDEN, "You are not an approver of this request, so you cannot decide it.")
    if kind == ActionKind.COMMENT and not (is_requester or is_participant):
        return Refusal(Why.FORBIDDEN, "Only the requester and the request's approvers can comment.")
    if state.status.is_final:
        return Refusal(Why.NOT_NOW, closed(state))
    if not started:
        return Refusal(Why.NOT_NOW, NOT_STARTED)
    if stopped:
        return Refusal(Why.NOT_NOW, stopped_message(stopped))
    if kind == ActionKind.RESUBMIT and state.status != RequestStatus.CHANGES_REQUESTED:
        return Refusal(Why.NOT_NOW, "The request can be resubmitted only after changes were requested.")
    if kind in APPROVER_KINDS:
        return _approver_now(state, actor_id)
    return None


def _approver_now(state: RequestState, actor_id: int) -> Refusal | None:
    """Whether an approver may decide on the current stage now."""
    if state.status == RequestStatus.CHANGES_REQUESTED:
        return Refusal(
            Why.NOT_NOW, "Changes were requested; the requester has to resubmit before anyone decides."
        )
    stage = state.stage
    if stage is None or not stage.assigned:
        return Refusal(Why.NOT_NOW, "Approvers are being assigned; try again in a moment.")
    if held := held_by(state, actor_id):
        return Refusal(Why.NOT_NOW, f"{held_words(held)} To decide otherwise, undo it first.")
    voted = next((v for v in stage.approvals if v.user_id == actor_id), None)
    if voted:
        return Refusal(Why.NOT_NOW, f"You already approved stage “{stage.name}” at {when(voted.at)}.")
    if approved := earlier_approvers(state).get(actor_id):
        return Refusal(Why.FORBIDDEN, f"You approved stage “{approved}”, and {DISTINCT_APPROVERS}")
    if actor_id in {a.user_id for a in stage.assignees}:
        return None
    for earlier in reversed(state.closed_stages):
        if actor_id in earlier.assignee_ids:
            message = (
                f"Stage “{earlier.name}” was already approved by {earlier.by_name} at {when(earlier.at)}."
            )
            return Refusal(Why.NOT_NOW, message)
    return Refusal(Why.NOT_NOW, "You are not an approver of this stage.")


def _too_long(action: Action) -> str | None:
    if len(action.comment) > MAX_COMMENT:
        return _comment_limit()
    if action.content is not None and (
        len(action.content.title) > MAX_TITLE or len(action.content.details) > MAX_DETAILS
    ):
        return next(iter(content_problems(action.content).values()))
    return None


def _missing(action: Action) -> str | None:
    """What the action needs and lacks; the first of `input_problems`."""
    problems = input_problems(action)
    return next(iter(problems.values()), None)


def _bad_delegate(state: RequestState, action: Action) -> str | None:
    if action.kind != ActionKind.DELEGATE or action.delegate_id is None:
        return None
    why = not_delegable(state).get(action.delegate_id)
    return why.replace(WHO, action.delegate_name or "That person") if why else None


def earlier_approvers(state: RequestState) -> dict[int, str]:
    """Who may not take the current stage because they approved an earlier one, with the name
    of that stage: nobody, unless the policy asks for distinct approvers."""
    if not state.policy.distinct_approvers:
        return {}
    return {user_id: closed.name for closed in state.closed_stages for user_id in closed.approver_ids}


def not_delegable(state: RequestState) -> dict[int, str]:
    """Everyone the current stage may not be delegated to, each with why (`WHO` stands for
    their name): the delegate list leaves them out, and the rules refuse them."""
    refused = {
        user_id: f"{WHO} approved stage “{stage}”, and {DISTINCT_APPROVERS}"
        for user_id, stage in earlier_approvers(state).items()
    }
    for assignee in state.stage.assignees if state.stage else []:
        refused[assignee.user_id] = f"{WHO} is already an approver of this stage."
    refused[state.requester_id] = "The requester cannot approve their own request."
    return refused


def _extension_ok(seconds: int) -> bool:
    return MIN_EXTENSION.total_seconds() <= seconds <= MAX_EXTENSION.total_seconds()


def _extension_range() -> str:
    return f"Ask for between one minute and {MAX_EXTENSION.days} days more."


def _comment_limit() -> str:
    return f"Comments are limited to {MAX_COMMENT} characters."


def _title_limit() -> str:
    return f"Titles are limited to {MAX_TITLE} characters."


def _is_int(value: object) -> bool:
    return type(value) is int  # exactly: not a bool (an int to Python), nor a float


def _is_sha256(text: object) -> bool:
    """Empty, or a SHA-256 as lowercase hex."""
    return isinstance(text, str) and (
        text == "" or (len(text) == 64 and all(c in "0123456789abcdef" for c in text))
    )


def _plain_id(text: str) -> bool:
    return len(text) <= MAX_ACTION_ID and text.isascii() and text.isprintable()


def _keepable(text: str) -> bool:
    """Text a database can keep: no NUL, and valid Unicode (no lone surrogate, which JSON can
    carry and UTF-8 cannot)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_action(payload: object) -> Action | str:
    """The action a signal's or an update's payload carries, read from its JSON as it is; or
    why it carries none.

    The SDK's own conversion would turn 2.5 or true into a person's id (2, 1) before any check
    could see it, so the workflow takes its payloads as plain JSON, and each field goes into the
    action untouched (missing ones at their defaults, unknown ones ignored: a newer sender may
    add some) for `malformed` to check its exact type; then the rules weigh it."""
    if not isinstance(payload, dict):
        return "This is not an action."
    raw: Any = payload  # each value as JSON has it, whatever its type
    kind, content = raw.get("kind"), raw.get("content")
    if isinstance(content, dict):
        given: Any = content
        content = Content(
            given.get("title"),
            given.get("details", ""),
            given.get("amount"),
            tool=given.get("tool", ""),
            risk=given.get("risk", ""),
            action_sha256=given.get("action_sha256", ""),
        )
    action = Action(
        kind=ActionKind(kind) if isinstance(kind, str) and kind in set(ActionKind) else kind,
        actor_id=raw.get("actor_id"),
        actor_name=raw.get("actor_name", ""),
        comment=raw.get("comment", ""),
        action_id=raw.get("action_id", ""),
        delegate_id=raw.get("delegate_id"),
        delegate_name=raw.get("delegate_name", ""),
        extend_seconds=raw.get("extend_seconds", 0),
        content=content,
        as_staff=raw.get("as_staff", False),
        target_id=raw.get("target_id", ""),
        action_sha256=raw.get("action_sha256", ""),
    )
    return malformed(action) or action


def malformed(action: object) -> str | None:
    """Why a payload sent as an action is not one that can be weighed; None when it is.

    Signals and updates reach the workflow from whoever can talk to Temporal, and a handler
    that raises on a bad payload fails the workflow task on every replay, as an activity fails
    on text no database keeps: the request would be stuck for good. So the shape is checked
    before anything else reads it."""
    if not isinstance(action, Action):
        return "This is not an action."
    if not isinstance(action.kind, ActionKind):
        return "Unknown kind of action."
    if not _is_int(action.actor_id) or not _is_int(action.extend_seconds):
        return "The action names no valid person."
    if action.delegate_id is not None and not _is_int(action.delegate_id):
        return "The action names no valid person to delegate to."
    texts = (action.actor_name, action.comment, action.action_id, action.delegate_name, action.target_id)
    if not all(isinstance(text, str) for text in texts) or not all(
        _plain_id(text) for text in (action.action_id, action.target_id)
    ):
        return "The action is not well formed."
    if max(len(action.actor_name), len(action.delegate_name)) > MAX_NAME:
        return "The action is not well formed (a name that long is no person's)."
    if not isinstance(action.as_staff, bool) or not _is_sha256(action.action_sha256):
        return "The action is not well formed."
    if not all(_keepable(text) for text in texts):
        return "The action holds characters that cannot be kept (NUL, or invalid Unicode)."
    return _malformed_content(action.content)


def _malformed_content(content: object) -> str | None:
    if content is None:
        return None
    if (
        not isinstance(content, Content)
        or not all(
            isinstance(text, str) for text in (content.title, content.details, content.tool, content.risk)
        )
        or not _is_sha256(content.action_sha256)
        or len(content.tool) > MAX_NAME
        or len(content.risk) > MAX_NAME
    ):
        return "The request's new content is not well formed."
    if not all(_keepable(text) for text in (content.title, content.details, content.tool, content.risk)):
        return "The request's new content holds characters that cannot be kept (NUL, or invalid Unicode)."
    if content.amount is not None:
        try:
            if not isinstance(content.amount, str) or not Decimal(content.amount).is_finite():
                raise InvalidOperation
        except InvalidOperation:
            return "The amount is not a number."
    return None


# --- Access grants ------------------------------------------------------------------------

# The holder hears before the access ends, this long before.
GRANT_REMINDERS = (timedelta(days=3), timedelta(days=1))
# An extension nobody decides is refused after this (or when the access ends, if sooner).
EXTENSION_DECISION_WITHIN = timedelta(days=3)
MAX_GRANT_DAYS = 365
MAX_RECENT_GRANT_ACTIONS = 50
GRANT_ENDED = "This access has ended already."
GRANT_LOADING = "The access is still being set up; try again in a moment."
BEING_REVOKED = "The access is being revoked already."
NO_EXTENSION = "No extension is waiting for a decision."


def grant_problem(state: GrantState, action: GrantAction, now: datetime) -> str | None:
    """Why this action on the access cannot be taken now, or None."""
    if not 0 < len(action.action_id) <= MAX_ACTION_ID or len(action.reason) > MAX_COMMENT:
        return "The action is malformed; reload the page and try again."
    if state.status != GrantStatus.ACTIVE or now >= state.info.ends_at:
        return GRANT_ENDED
    holder = action.actor_id == state.info.holder_id
    if action.kind == GrantActionKind.REVOKE:
        if not (holder or action.as_staff):
            return "Only the holder or staff can revoke this access."
        if not action.reason.strip():
            return "Say why the access ends early."
        return None
    if action.kind == GrantActionKind.EXTEND:
        if not holder:
            return "Only the holder can ask for more time."
        if state.extension is not None:
            return "An extension is already waiting for a decision."
        if not 1 <= action.days <= min(state.info.max_days, MAX_GRANT_DAYS):
            return f"Ask for 1 to {min(state.info.max_days, MAX_GRANT_DAYS)} more days."
        if not action.reason.strip():
            return "Say why you need more time: the approvers weigh it."
        if not state.info.approver_ids:
            return "Nobody approves extensions of this resource; ask an admin."
        return None
    # APPROVE or REFUSE an extension
    if state.extension is None:
        return NO_EXTENSION
    if action.actor_id not in state.info.approver_ids or holder:
        return "Only an approver of this resource can decide on the extension."
    return None


def reminders_due(state: GrantState, now: datetime) -> list[timedelta]:
    """The reminders due now for the access's current end, not yet sent (only those that fall
    after it was granted or last extended)."""
    ends = state.info.ends_at
    return [
        before
        for before in GRANT_REMINDERS
        if reminder_key(ends, before) not in state.reminded
        and (state.since is None or ends - before > state.since)
        and ends - before <= now < ends
    ]


def reminder_key(ends: datetime, before: timedelta) -> str:
    return f"{ends.isoformat()}:{int(before.total_seconds())}"


def grant_next_wake(state: GrantState) -> datetime:
    """When the grant's timer must next wake: its end, a reminder, or an extension's deadline."""
    ends = state.info.ends_at
    wakes = [ends]
    wakes += [
        ends - before
        for before in GRANT_REMINDERS
        if reminder_key(ends, before) not in state.reminded
        and (state.since is None or ends - before > state.since)
    ]
    if state.extension is not None:
        wakes.append(state.extension.deadline)
    return min(wakes)


# --- Access-review campaigns --------------------------------------------------------------

REVIEW_CLOSED = "This review is closed already."
CAMPAIGN_CANCELLED = "The campaign was cancelled: this review is closed, and the access stays as it is."
REVIEW_NOT_YOURS = "Only the reviewer of this access (or their manager, once escalated) can decide it."


def review_problem(review: ReviewInput, decision: ReviewDecision, now: datetime) -> str | None:
    """Why this decision on a review cannot be taken now, or None."""
    if not 0 < len(decision.action_id) <= MAX_ACTION_ID or len(decision.comment) > MAX_COMMENT:
        return "The decision is malformed; reload the page and try again."
    if now >= review.deadline:
        return "The campaign's deadline has passed: its end rule decides this access."
    escalated = review.escalate_at is not None and now >= review.escalate_at
    manager = escalated and review.manager_id is not None and decision.actor_id == review.manager_id
    if not (decision.as_staff or decision.actor_id == review.reviewer_id or manager):
        return REVIEW_NOT_YOURS
    if not decision.keep and not decision.comment.strip():
        return "Say why the access is revoked: its holder is told."
    return None


def campaign_next_wake(plan: CampaignPlan, progress: CampaignProgress) -> datetime | None:
    """When the campaign must next wake by itself: a reminder, the escalation, or None (the
    reviews end themselves at the deadline, and report)."""
    wakes = []
    if (reminder := next_reminder(plan, progress)) is not None:
        wakes.append(reminder)
    if (escalation := escalation_at(plan)) is not None and not progress.escalated:
        wakes.append(escalation)
    return min(wakes) if wakes else None


def next_reminder(plan: CampaignPlan, progress: CampaignProgress) -> datetime | None:
    """When the next reminder digest is due: the cadence after the last digest (the first is
    the assignment's), if that falls before the deadline; or None."""
    if not plan.remind_every or progress.digested_at is None:
        return None
    at = progress.digested_at + timedelta(seconds=plan.remind_every)
    return at if at < plan.deadline else None


def escalation_at(plan: CampaignPlan) -> datetime | None:
    if not plan.escalate_after:
        return None
    at = plan.opened_at + timedelta(seconds=plan.escalate_after)
    return at if at < plan.deadline else None
