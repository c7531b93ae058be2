"""Selectors: reads for views, from the read model (never from Temporal)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When

from approvals.exceptions import NotFound
from approvals.models import OPEN_STATUSES, ApprovalRequest, OutboundEmail, Participant


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


def inbox_for_reviewer(*, user: User, limit: int = 100) -> list[ApprovalRequest]:
    """Requests waiting for this user first (soonest deadline first), then ones they were on."""
    qs = (
        _with_related(ApprovalRequest.objects.filter(participants__user=user).exclude(requester=user))
        .annotate(
            waiting=Case(
                When(
                    participants__user=user,
                    participants__pending=True,
                    status__in=OPEN_STATUSES,
                    then=Value(0),
                ),
                default=Value(1),
                output_field=IntegerField(),
            )
        )
        .order_by("waiting", "deadline", "-created_at")
    )
    return list(qs[:limit])


def reviewer_pending_count(*, user: User) -> int:
    return Participant.objects.filter(user=user, pending=True, request__status__in=OPEN_STATUSES).count()


def waiting_for(*, request: ApprovalRequest) -> list[Participant]:
    return list(request.participants.filter(pending=True).select_related("user", "acting_for").order_by("pk"))


def user_is_pending(*, user: User, request: ApprovalRequest) -> bool:
    return request.participants.filter(user=user, pending=True).exists()


def mailbox(*, limit: int = 200) -> QuerySet[OutboundEmail]:
    return OutboundEmail.objects.select_related("request").order_by("-created_at")[:limit]
