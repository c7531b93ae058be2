"""Staff's webhooks: register subscribers and change them; the delivery log, and redelivery."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from approvals import services
from approvals.exceptions import ActionRefused, NotFound
from approvals.forms import WebhookSubscriberForm
from approvals.models import WebhookDelivery, WebhookSubscriber
from approvals.selectors import webhooks as selectors
from approvals.services.webhooks import redelivery_refused
from approvals.views.common import HtmxHttpRequest, form_errors, log_refused, staff_only

PER_PAGE = 50


def _status(request: HtmxHttpRequest) -> str:
    status = request.GET.get("status", "")
    return status if status in WebhookDelivery.Status.values else ""


def _log_context(request: HtmxHttpRequest, subscriber: WebhookSubscriber | None) -> dict[str, object]:
    status = _status(request)
    log = selectors.deliveries_log(subscriber=subscriber, status=status)
    page = Paginator(log, PER_PAGE).get_page(request.GET.get("page"))
    for delivery in page:
        delivery.refused = redelivery_refused(delivery)  # type: ignore[attr-defined]
    return {
        "page": page,
        "status": status,
        "statuses": WebhookDelivery.Status.choices,
        "attempts_shown": selectors.ATTEMPTS_SHOWN,
        "retry_hours": settings.WEBHOOK_RETRY_HOURS,
    }


@require_http_methods(["GET", "POST"])
@staff_only
def webhooks(request: HtmxHttpRequest) -> HttpResponse:
    """Register a subscriber; every subscriber, and the latest deliveries to any of them."""
    form = WebhookSubscriberForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            subscriber = services.subscriber_save(subscriber=None, by=request.user, **form.cleaned_data)
            messages.success(
                request, f"{subscriber.url} is registered. Give its receiver the signing secret below."
            )
            return redirect(subscriber)
        messages.error(request, form_errors(form))
        status = 400
    context = {"form": form, "subscribers": selectors.subscribers_shown(), **_log_context(request, None)}
    return render(request, "approvals/webhooks.html", context, status=status)


@require_http_methods(["GET", "POST"])
@staff_only
def webhook_detail(request: HtmxHttpRequest, subscriber_id: int) -> HttpResponse:
    """One subscriber: change it; its signing secret; its deliveries."""
    subscriber = get_object_or_404(WebhookSubscriber, pk=subscriber_id)
    initial = {
        "url": subscriber.url,
        "description": subscriber.description,
        "events": subscriber.events,
        "is_active": subscriber.is_active,
    }
    form = WebhookSubscriberForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            services.subscriber_save(subscriber=subscriber, by=request.user, **form.cleaned_data)
            messages.success(request, f"{subscriber.url} is saved.")
            return redirect(subscriber)
        messages.error(request, form_errors(form))
        status = 400
    context = {"form": form, "subscriber": subscriber, **_log_context(request, subscriber)}
    return render(request, "approvals/webhook_detail.html", context, status=status)


@require_POST
@staff_only
def webhook_redeliver(request: HtmxHttpRequest, delivery_id: int) -> HttpResponse:
    """Send the delivery again from its first attempt (the same event id: receivers that have it
    drop it)."""
    try:
        delivery = services.webhook_redeliver(delivery_id=delivery_id, by=request.user)
    except NotFound as exc:
        log_refused(request, f"webhook delivery {delivery_id}: none")
        raise Http404(str(exc)) from exc
    except ActionRefused as exc:
        messages.error(request, str(exc))
        delivery = WebhookDelivery.objects.select_related("subscriber").get(pk=delivery_id)
    else:
        messages.success(
            request,
            f"{delivery.event.get_type_display()} {delivery.event.event_id} "
            f"goes to {delivery.subscriber} again.",
        )
    return redirect(delivery.subscriber)
