"""Selectors for requests: what a person may see, waits on, or asked for."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet

from approvals.exceptions import NotFound
from approvals.models import ApprovalRequest, Participant


def _with_related(qs: QuerySet[ApprovalRequest]) -> QuerySet[ApprovalRequest]:
    return qs.select_related("request_type", "requester", "decided_by")


def request_get_visible(*, user: User, public_id: Any) -> ApprovalRequest:
    """The request if this user may see it: its requester, anyone ever assigned to it, or staff."""
    qs = _with_related(ApprovalRequest.objects.filter(public_id=public_id))
    if not user.is_staff:
        qs = qs.filter(Q(requester=user) | Q(participants__user=user)).distinct()
    request = qs.first()
    if request is None:
        raise NotFound("There is no such request, or you may not see it.")
    return request


def request_list_for_requester(*, user: User) -> QuerySet[ApprovalRequest]:
    return _with_related(ApprovalRequest.objects.filter(requester=user)).order_by("-created_at")


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


def inbox_recent(*, user: User, limit: int = 20) -> list[ApprovalRequest]:
    """Requests this user was assigned to and no longer waits on, most recently assigned first."""
    request_ids = (
        Participant.objects.filter(user=user, pending=False)
        .order_by("-added_at")
        .values_list("request_id", flat=True)[:limit]
    )
    by_id = {r.pk: r for r in _with_related(ApprovalRequest.objects.filter(pk__in=list(request_ids)))}
    return [by_id[pk] for pk in request_ids if pk in by_id]


def reviewer_pending_count(*, user: User) -> int:
    return Participant.objects.filter(user=user, pending=True).count()


def waiting_for(*, request: ApprovalRequest) -> list[Participant]:
    return list(request.participants.filter(pending=True).select_related("user", "acting_for").order_by("pk"))


def user_is_pending(*, user: User, request: ApprovalRequest) -> bool:
    return request.participants.filter(user=user, pending=True).exists()
