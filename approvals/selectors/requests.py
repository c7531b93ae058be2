"""Selectors for requests: what a person may see, waits on, or asked for."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from django.contrib.auth.models import User
from django.db.models import F, Prefetch, Q, QuerySet
from django.utils import timezone

from approvals.exceptions import NotFound
from approvals.models import OPEN_STATUSES, ApprovalRequest, Participant, RequestEvent, RequestType
from workflows.types import EventKind, RequestStatus


def _with_related(qs: QuerySet[ApprovalRequest]) -> QuerySet[ApprovalRequest]:
    return qs.select_related("request_type", "requester", "decided_by")


def requests_visible(*, user: User, public_ids: Iterable[Any]) -> QuerySet[ApprovalRequest]:
    """Those of these requests this user may see: as requester, as anyone ever assigned to them,
    or as staff."""
    qs = _with_related(ApprovalRequest.objects.filter(public_id__in=list(public_ids)))
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
    return with_waiting(_with_related(qs)).order_by("-created_at")


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


_INBOX_ORDER = {
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
        "request__request_type", "request__requester", "acting_for"
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


def inbox_recent(*, user: User, limit: int = 20) -> list[ApprovalRequest]:
    """Requests this user was assigned to and no longer waits on, most recently assigned first."""
    request_ids = (
        Participant.objects.filter(user=user, pending=False)
        .order_by("-added_at")
        .values_list("request_id", flat=True)[:limit]
    )
    by_id = {r.pk: r for r in _with_related(ApprovalRequest.objects.filter(pk__in=list(request_ids)))}
    return [by_id[pk] for pk in request_ids if pk in by_id]


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


def waiting_for(*, request: ApprovalRequest) -> list[Participant]:
    return list(request.participants.filter(pending=True).select_related("user", "acting_for").order_by("pk"))


DECISION_KINDS = frozenset({EventKind.APPROVAL, EventKind.REJECTED, EventKind.CHANGES_REQUESTED})


def request_timeline(*, request: ApprovalRequest) -> list[RequestEvent]:
    """Every event of the request, oldest first; each person's decision carries `seen`: the
    request's content exactly as it stood (its revision) when they decided."""
    revisions = {r.number: r for r in request.revisions.all()}
    events = list(request.events.all())
    for event in events:
        event.seen = revisions.get(event.revision) if event.kind in DECISION_KINDS else None
    return events


def request_abilities(
    *, user: User, request: ApprovalRequest, status: RequestStatus, pending_ids: set[int]
) -> dict[str, bool]:
    """What this person may do on the request now: only these actions are offered.

    (The workflow still has the last word on each action; this only decides what to show.)"""
    started = request.workflow_started_at is not None
    is_requester = user.pk == request.requester_id
    return {
        "may_decide": started
        and status == RequestStatus.IN_REVIEW
        and user.pk in pending_ids
        and not is_requester,
        "may_withdraw": started and is_requester and not status.is_final,
        "may_resubmit": started and is_requester and status == RequestStatus.CHANGES_REQUESTED,
        "may_comment": started
        and not status.is_final
        and (is_requester or request.participants.filter(user=user).exists()),
    }
