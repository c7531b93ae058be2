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
    WebhookDelivery,
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


def dashboard_counts() -> dict[str, Any]:
    """The dashboard's counts: per state, what is late or escalated, what failed to send (emails,
    and webhook deliveries that gave up), what waits to start (the staff dashboard and the
    metrics' gauges alike)."""
    counts = dict(ApprovalRequest.objects.values_list("status").annotate(n=Count("pk")).order_by())
    return {
        "counts": [(s.label, s.value, counts.get(s.value, 0)) for s in RequestStatus],
        "overdue_count": _overdue().count(),
        "escalated_count": _escalated().count(),
        "failed_email_count": _failed_emails().count(),
        "not_started": ApprovalRequest.objects.filter(workflow_started_at__isnull=True).count(),
        "failing_webhook_count": WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.FAILING
        ).count(),
    }


def _in_review() -> QuerySet[ApprovalRequest]:
    return ApprovalRequest.objects.filter(status=RequestStatus.IN_REVIEW).select_related(
        "request_type", "requester"
    )


def _overdue() -> QuerySet[ApprovalRequest]:
    return _in_review().filter(deadline__lt=timezone.now()).order_by("deadline")


def _escalated() -> QuerySet[ApprovalRequest]:
    escalated_ids = Participant.objects.filter(pending=True, level__gt=0).values("request_id")
    return _in_review().filter(pk__in=escalated_ids)


def _failed_emails() -> QuerySet[OutboundEmail]:
    return OutboundEmail.objects.filter(status=OutboundEmail.Status.FAILED)


def dashboard_summary(*, limit: int = 10) -> dict[str, Any]:
    """What staff see at a glance: counts per state, what is late or escalated, what failed."""
    return {
        **dashboard_counts(),
        "overdue": list(_overdue()[:limit]),
        "escalated": list(_escalated().order_by("deadline")[:limit]),
        "failed_emails": list(_failed_emails().select_related("request").order_by("-created_at")[:limit]),
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
