"""Selectors: reads for views, from the read model (never from Temporal)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from approvals.exceptions import NotFound
from approvals.models import ApprovalRequest, OutboundEmail, Participant, RequestEvent
from workflows.types import RequestStatus


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


def mailbox(*, limit: int = 200) -> QuerySet[OutboundEmail]:
    return OutboundEmail.objects.select_related("request").order_by("-created_at")[:limit]


def dashboard_summary(*, limit: int = 10) -> dict[str, Any]:
    """What staff see at a glance: counts per state, what is late or escalated, what failed."""
    now = timezone.now()
    counts = dict(ApprovalRequest.objects.values_list("status").annotate(n=Count("pk")).order_by())
    in_review = _with_related(ApprovalRequest.objects.filter(status=RequestStatus.IN_REVIEW))
    overdue = in_review.filter(deadline__lt=now).order_by("deadline")
    escalated = in_review.filter(participants__pending=True, participants__level__gt=0).distinct()
    failed = OutboundEmail.objects.filter(status=OutboundEmail.Status.FAILED)
    return {
        "counts": [(s.label, s.value, counts.get(s.value, 0)) for s in RequestStatus],
        "overdue_count": overdue.count(),
        "overdue": list(overdue[:limit]),
        "escalated_count": escalated.count(),
        "escalated": list(escalated.order_by("deadline")[:limit]),
        "failed_email_count": failed.count(),
        "failed_emails": list(failed.select_related("request").order_by("-created_at")[:limit]),
        "not_started": ApprovalRequest.objects.filter(workflow_started_at__isnull=True).count(),
        "recent_events": list(
            RequestEvent.objects.select_related("request").order_by("-occurred_at", "-pk")[:limit]
        ),
    }
