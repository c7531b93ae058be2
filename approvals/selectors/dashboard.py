"""Selectors for staff: the dashboard and the mailbox."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from approvals.models import (
    ApprovalRequest,
    Fulfilment,
    OutboundEmail,
    Participant,
    RequestEvent,
    StaffAction,
)
from approvals.selectors.campaigns import campaigns_shown
from workflows.types import FulfilmentStatus, RequestStatus


def mailbox(*, search: str = "", status: str = "") -> QuerySet[OutboundEmail]:
    """Every email, newest first; `search` in its address, subject, kind or text, and `status`."""
    emails = OutboundEmail.objects.order_by("-created_at", "-pk")
    if search:
        emails = emails.filter(
            Q(to__icontains=search)
            | Q(subject__icontains=search)
            | Q(kind__icontains=search)
            | Q(body_text__icontains=search)
        )
    if status:
        emails = emails.filter(status=status)
    return emails


def dashboard_summary(*, limit: int = 10) -> dict[str, Any]:
    """What staff see at a glance: counts per state, what is late or escalated, what failed."""
    now = timezone.now()
    counts = dict(ApprovalRequest.objects.values_list("status").annotate(n=Count("pk")).order_by())
    in_review = ApprovalRequest.objects.filter(status=RequestStatus.IN_REVIEW).select_related(
        "request_type", "requester"
    )
    overdue = in_review.filter(deadline__lt=now).order_by("deadline")
    escalated_ids = Participant.objects.filter(pending=True, level__gt=0).values("request_id")
    escalated = in_review.filter(pk__in=escalated_ids)
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
        "fulfilments_failed": fulfilments_failed(limit=limit),
        "campaigns": campaigns_shown(limit=limit),
    }


def fulfilments_failed(*, limit: int = 10) -> list[Fulfilment]:
    """The latest attempt of each request whose fulfilment failed: rolled back (staff may retry
    it), or rolling back still (an undo that keeps failing comes first)."""
    failed = (FulfilmentStatus.ROLLING_BACK.value, FulfilmentStatus.ROLLED_BACK.value)
    latest = Fulfilment.objects.filter(status__in=failed, request__fulfilment=models.F("status")).exclude(
        request__fulfilments__attempt__gt=models.F("attempt")
    )
    return list(
        latest.select_related("request__requester", "request__request_type").order_by(
            "-status", "-updated_at"
        )[:limit]
    )


def staff_actions_recent(*, limit: int = 10) -> list[StaffAction]:
    """The latest cancels and retries by staff, newest first."""
    return list(StaffAction.objects.select_related("request", "actor")[:limit])
