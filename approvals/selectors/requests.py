"""Selectors for requests: what a person may see, waits on, or asked for."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import F, Prefetch, Q, QuerySet
from django.utils import timezone

from approvals.exceptions import NotFound
from approvals.models import (
    OPEN_STATUSES,
    ApprovalRequest,
    Delegation,
    EscalationLevel,
    Participant,
    PendingAction,
    RequestEvent,
    RequestType,
    Stage,
)
from workflows import codec, rules
from workflows.types import EventKind, Held, Policy, RequestState


def _with_related(qs: QuerySet[ApprovalRequest]) -> QuerySet[ApprovalRequest]:
    """With what a request's page and the rules read (its workflow state among them)."""
    return qs.select_related("request_type", "requester", "decided_by", "workflow_snapshot")


def requests_visible(*, user: User, public_ids: Iterable[Any]) -> QuerySet[ApprovalRequest]:
    """Those of these requests this user may see: as requester, as anyone ever assigned to them,
    or as staff."""
    ids = []
    for public_id in public_ids:
        try:
            ids.append(uuid.UUID(str(public_id)))
        except ValueError:
            continue  # not an id of ours: nothing to see
    qs = _with_related(ApprovalRequest.objects.filter(public_id__in=ids))
    if not user.is_staff:
        qs = qs.filter(Q(requester=user) | Q(participants__user=user)).distinct()
    return qs


def request_get_visible(*, user: User, public_id: Any) -> ApprovalRequest:
    """The request if this user may see it (see `requests_visible`)."""
    request = requests_visible(user=user, public_ids=[public_id]).first()
    if request is None:
        raise NotFound("There is no such request, or you may not see it.")
    return request


def with_waiting(qs: QuerySet[ApprovalRequest]) -> QuerySet[ApprovalRequest]:
    """Attach `waiting` to each request: the people it waits for now (one query per page)."""
    pending = Participant.objects.filter(pending=True).select_related("user", "acting_for").order_by("pk")
    return qs.prefetch_related(Prefetch("participants", queryset=pending, to_attr="waiting"))


def request_list_for_requester(*, user: User, state: str = "") -> QuerySet[ApprovalRequest]:
    """What this user asked for, newest first; `state` "open" or "closed" narrows it."""
    qs = ApprovalRequest.objects.filter(requester=user)
    if state == "open":
        qs = qs.filter(status__in=OPEN_STATUSES)
    elif state == "closed":
        qs = qs.exclude(status__in=OPEN_STATUSES)
    return with_waiting(qs.select_related("request_type", "requester", "decided_by")).order_by("-created_at")


def inbox_waiting(*, user: User) -> QuerySet[Participant]:
    """This user's places on requests waiting for their decision, soonest deadline first.

    `pending` is only ever set while a request is in review (the projection clears it) and
    carries the request's deadline, so one index answers both the count and each page.
    """
    return (
        Participant.objects.filter(user=user, pending=True)
        .select_related("request__request_type", "request__requester")
        .order_by("deadline", "request_id")
    )


class InboxState(StrEnum):
    WAITING = "waiting"
    OVERDUE = "overdue"
    ESCALATED = "escalated"
    DONE = "done"
    ALL = "all"

    @property
    def label(self) -> str:
        return {
            "waiting": "Waiting for me",
            "overdue": "Overdue",
            "escalated": "Escalated to me",
            "done": "No longer waiting for me",
            "all": "Everything I was asked",
        }[self.value]


class InboxSort(StrEnum):
    DEADLINE = "deadline"
    NEWEST = "newest"
    OLDEST = "oldest"
    AMOUNT = "amount"

    @property
    def label(self) -> str:
        return {
            "deadline": "Deadline, soonest first",
            "newest": "Newest first",
            "oldest": "Oldest first",
            "amount": "Amount, largest first",
        }[self.value]


_INBOX_ORDER: dict[InboxSort, list[Any]] = {
    InboxSort.DEADLINE: ["deadline", "request_id"],
    InboxSort.NEWEST: ["-request__created_at", "-request_id"],
    InboxSort.OLDEST: ["request__created_at", "request_id"],
    InboxSort.AMOUNT: [F("request__amount").desc(nulls_last=True), "request_id"],
}


def inbox_items(
    *,
    user: User,
    state: InboxState = InboxState.WAITING,
    sort: InboxSort = InboxSort.DEADLINE,
    search: str = "",
    request_type: RequestType | None = None,
    requester: str = "",
) -> QuerySet[Participant]:
    """The requests this user was asked to decide, filtered; what waits for them comes first."""
    qs = Participant.objects.filter(user=user).select_related(
        "request__request_type", "request__requester", "request__workflow_snapshot", "acting_for"
    )
    if state == InboxState.WAITING:
        qs = qs.filter(pending=True)
    elif state == InboxState.OVERDUE:
        qs = qs.filter(pending=True, deadline__lt=timezone.now())
    elif state == InboxState.ESCALATED:
        qs = qs.filter(pending=True, level__gt=0)
    elif state == InboxState.DONE:
        qs = qs.filter(pending=False)
    if request_type is not None:
        qs = qs.filter(request__request_type=request_type)
    if requester:
        qs = qs.filter(request__requester__username__iexact=requester)
    if search:
        qs = qs.filter(
            Q(request__title__icontains=search)
            | Q(request__details__icontains=search)
            | Q(request__requester__username__icontains=search)
        )
    order = list(_INBOX_ORDER[sort])
    if state in (InboxState.DONE, InboxState.ALL) and sort == InboxSort.DEADLINE:
        # Decided items have no deadline of their own: most recently assigned first.
        order = ["-added_at", "-request_id"]
    if state == InboxState.ALL:
        order.insert(0, "-pending")
    return qs.order_by(*order)


def inbox_recent(*, user: User, limit: int = 20) -> list[Participant]:
    """This user's places on requests they were assigned to and no longer wait on, most
    recently assigned first."""
    return list(
        Participant.objects.filter(user=user, pending=False)
        .select_related("request__request_type", "request__requester", "acting_for")
        .order_by("-added_at", "-request_id")[:limit]
    )


def inbox_requesters(*, user: User, limit: int = 200) -> list[str]:
    """Usernames of the people whose requests wait for this user: suggestions for the filter."""
    return list(
        User.objects.filter(requests__participants__user=user, requests__participants__pending=True)
        .order_by("username")
        .values_list("username", flat=True)
        .distinct()[:limit]
    )


def reviewer_pending_count(*, user: User) -> int:
    return Participant.objects.filter(user=user, pending=True).count()


DECISION_KINDS = frozenset({EventKind.APPROVAL, EventKind.REJECTED, EventKind.CHANGES_REQUESTED})


def request_timeline(*, request: ApprovalRequest) -> list[RequestEvent]:
    """Every event of the request, oldest first; each person's decision carries `seen`: the
    request's content exactly as it stood (its revision) when they decided."""
    revisions = {r.number: r for r in request.revisions.all()}
    events = list(request.events.all())
    for event in events:
        event.seen = revisions.get(event.revision) if event.kind in DECISION_KINDS else None
    return events


def display_name(user: User) -> str:
    return user.get_full_name() or user.get_username()


class _Decoded:
    """Workflow states decoded from the read model, by request (its random public id) and
    version: a version's state never changes, and every page and every push would otherwise
    decode it again for every request it shows (about 30 µs each with workflows.codec)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.lock = threading.Lock()
        self.states: OrderedDict[tuple[uuid.UUID, int], RequestState] = OrderedDict()

    def get(self, key: tuple[uuid.UUID, int], decode: Callable[[], RequestState]) -> RequestState:
        with self.lock:
            if (state := self.states.get(key)) is not None:
                self.states.move_to_end(key)
                return state
        state = decode()
        with self.lock:
            self.states[key] = state
            while len(self.states) > self.size:
                self.states.popitem(last=False)
        return state


_decoded = _Decoded(size=2000)


def request_state(*, request: ApprovalRequest, to_change: bool = False) -> RequestState:
    """The request as the workflow last projected it: what the rules weigh and the pages show.
    Before its first projection, the request as submitted (status "submitted", nobody assigned).
    The policy and the content come from the request's own columns, which the same projection
    writes.

    The state is shared by everyone who reads this version of the request: only with
    `to_change` is it a copy of one's own, to change (as a staff cancel does)."""
    try:
        snapshot = request.workflow_snapshot
    except ObjectDoesNotExist:
        snapshot = None

    def decode() -> RequestState:
        policy = codec.decode(Policy, request.policy) if request.policy else Policy("", [])
        content = request.content()
        if snapshot is None:
            return RequestState(
                request_id=str(request.public_id),
                requester_id=request.requester_id,
                requester_name=display_name(request.requester),
                policy=policy,
                content=content,
            )
        state = codec.decode(RequestState, snapshot.state)
        state.policy, state.content = policy, content
        return state

    if to_change or snapshot is None:
        return decode()
    return _decoded.get((request.public_id, request.version), decode)


def pending_actions(*, user: User, requests: Iterable[ApprovalRequest]) -> dict[int, list[PendingAction]]:
    """This person's actions on these requests that the workflow has not confirmed yet, by
    request id (oldest first)."""
    found: dict[int, list[PendingAction]] = {}
    for sent in PendingAction.objects.filter(actor=user, request__in=list(requests)):
        found.setdefault(sent.request_id, []).append(sent)
    return found


class Decision(StrEnum):
    """Where one decision stands, as the read model knows it."""

    SENT = "sent"  # sent, not picked up by the workflow yet
    HELD = "held"  # in its undo period
    DONE = "done"  # taken effect
    LAPSED = "lapsed"  # the request moved on before it could take effect
    UNDONE = "undone"
    UNKNOWN = "unknown"  # not seen at all (Temporal never had it, or it was refused)


def decision_status(*, request: ApprovalRequest, action_id: str) -> tuple[Decision, Held | None]:
    """Where this decision stands, and its hold while it is held."""
    held = rules.held_named(request_state(request=request), action_id)
    if held is not None:
        return Decision.HELD, held
    if PendingAction.objects.filter(request=request, action_id=action_id).exists():
        return Decision.SENT, None
    kinds = set(
        RequestEvent.objects.filter(request=request, action_id=action_id).values_list("kind", flat=True)
    )
    if kinds - {EventKind.HELD, EventKind.LAPSED}:
        return Decision.DONE, None
    if EventKind.LAPSED in kinds:
        return Decision.LAPSED, None
    # Held once, and neither in effect nor let go (a projection brings both at once): undone.
    return (Decision.UNDONE if kinds else Decision.UNKNOWN), None


def held_comment(*, request: ApprovalRequest, action_id: str) -> str:
    """The comment a held decision was made with: the event that held it keeps it."""
    events = RequestEvent.objects.filter(request=request, action_id=action_id, kind=EventKind.HELD)
    return events.values_list("comment", flat=True).first() or ""


def reviewers() -> QuerySet[User]:
    """Who reviews requests here: the active people an active request type's policy may ask (its
    stages' and escalation levels' users and groups), and those standing in for someone out of
    office. A stage is delegated only to one of them: an account that only runs the system
    (staff, say) or someone who never reviews is not offered, and is refused."""
    stages = Stage.objects.filter(request_type__is_active=True)
    levels = EscalationLevel.objects.filter(stage__request_type__is_active=True)
    asked = (
        Q(pk__in=stages.values("approver_users"))
        | Q(groups__in=stages.values("approver_groups"))
        | Q(pk__in=levels.values("users"))
        | Q(groups__in=levels.values("groups"))
        | Q(pk__in=Delegation.objects.values("delegate"))
    )
    return User.objects.filter(is_active=True).filter(asked).distinct()


def delegate_choices(*, state: RequestState) -> QuerySet[User]:
    """Whom the current stage may be delegated to: reviewers, and by the workflow's rules never
    the requester, nor those already on the stage, nor (where the policy asks for distinct
    approvers) anyone who approved an earlier stage."""
    return reviewers().exclude(pk__in=rules.not_delegable(state)).order_by("username")


def request_abilities(
    *, user: User, request: ApprovalRequest, state: RequestState | None = None
) -> rules.Abilities:
    """What this person may do on the request now, by the workflow's own rules over the state
    it last projected: only these actions are offered (the workflow still has the last word)."""
    return rules.abilities(
        state or request_state(request=request),
        user.pk,
        as_staff=user.is_staff,
        started=request.workflow_started_at is not None,
        stopped=request.workflow_stopped,
    )
