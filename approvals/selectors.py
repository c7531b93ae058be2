"""Selectors: reads for views, from the read model (never from Temporal)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When

from approvals.exceptions import NotFound
from approvals.models import OPEN_STATUSES, ApprovalRequest, OutboundEmail


def _with_related(qs: QuerySet[ApprovalRequest]) -> QuerySet[ApprovalRequest]:
    return qs.select_related("request_type", "requester", "decided_by")


def request_get_visible(*, user: User, public_id: Any) -> ApprovalRequest:
    """The request if this user may see it: its requester, an approver of it, or staff."""
    qs = _with_related(ApprovalRequest.objects.filter(public_id=public_id))
    if not user.is_staff:
        qs = qs.filter(Q(requester=user) | Q(approvers__user=user)).distinct()
    request = qs.first()
    if request is None:
        raise NotFound("There is no such request, or you may not see it.")
    return request


def request_list_for_requester(*, user: User) -> QuerySet[ApprovalRequest]:
    return _with_related(ApprovalRequest.objects.filter(requester=user)).order_by("-created_at")


def inbox_for_reviewer(*, user: User, limit: int = 100) -> list[ApprovalRequest]:
    """Requests this user may decide, open ones first (soonest deadline first), then recent."""
    qs = (
        _with_related(ApprovalRequest.objects.filter(approvers__user=user).exclude(requester=user))
        .annotate(
            closed=Case(
                When(status__in=OPEN_STATUSES, then=Value(0)), default=Value(1), output_field=IntegerField()
            )
        )
        .order_by("closed", "deadline", "-created_at")
    )
    return list(qs[:limit])


def reviewer_pending_count(*, user: User) -> int:
    return (
        ApprovalRequest.objects.filter(approvers__user=user, status__in=OPEN_STATUSES)
        .exclude(requester=user)
        .count()
    )


def user_may_decide(*, user: User, request: ApprovalRequest) -> bool:
    return (
        request.is_open
        and request.workflow_started_at is not None
        and user.pk != request.requester_id
        and request.approvers.filter(user=user).exists()
    )


def mailbox(*, limit: int = 200) -> QuerySet[OutboundEmail]:
    return OutboundEmail.objects.select_related("request").order_by("-created_at")[:limit]
