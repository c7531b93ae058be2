"""What staff read of webhooks: the subscribers with how their deliveries stand, and the log."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet

from approvals.models import WebhookAttempt, WebhookDelivery, WebhookSubscriber

Status = WebhookDelivery.Status
ATTEMPTS_SHOWN = 10  # of a delivery's latest round, newest first


def subscribers_shown() -> QuerySet[WebhookSubscriber]:
    """Every subscriber, with its deliveries counted by how they stand."""
    return WebhookSubscriber.objects.annotate(
        **{
            f"{status}_count": Count("deliveries", filter=Q(deliveries__status=status))
            for status in (Status.PENDING, Status.DELIVERING, Status.DELIVERED, Status.FAILING)
        }
    )


def deliveries_log(
    *, subscriber: WebhookSubscriber | None = None, status: str = ""
) -> QuerySet[WebhookDelivery]:
    """Deliveries, newest first, with their events, requests and latest attempts (one query
    each, however many rows a page shows)."""
    deliveries = WebhookDelivery.objects.select_related("event__request", "subscriber", "redelivered_by")
    if subscriber is not None:
        deliveries = deliveries.filter(subscriber=subscriber)
    if status in Status.values:
        deliveries = deliveries.filter(status=status)
    return deliveries.prefetch_related(
        Prefetch(
            "attempt_log",
            queryset=WebhookAttempt.objects.order_by("-round", "-number"),
            to_attr="attempts_shown",
        )
    )
