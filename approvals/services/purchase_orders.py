"""Purchase orders: placed once per key, at PURCHASE_ORDER_URL when it is set (with that key as
its Idempotency-Key, so that the endpoint too places it once however often it is asked) or in the
app's own table; cancelled the same way, as the order's compensation.

Each call has a deadline (PURCHASE_ORDER_TIMEOUT) and makes one attempt (services.partners):
what the endpoint refuses as it is is OrderRefused, anything else OrderEndpointUnavailable.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals.exceptions import OrderEndpointUnavailable, OrderRefused
from approvals.models import ApprovalRequest, PurchaseOrder
from approvals.services.partners import partner_post


def purchase_order_place(*, request: ApprovalRequest, amount: Decimal, key: str) -> PurchaseOrder:
    """The request's order, placed once per `key` (asked again, the order already placed)."""
    if (placed := PurchaseOrder.objects.filter(key=key).first()) is not None:
        return placed
    url = settings.PURCHASE_ORDER_URL
    if url:
        answer = _post(
            url,
            key,
            {
                "request": str(request.public_id),
                "title": request.title,
                "amount": str(amount),
                "requester": request.requester.get_username(),
            },
        )
        number = answer.get("number")
        if not isinstance(number, str) or not number:
            raise OrderEndpointUnavailable("The purchase-order endpoint answered without an order number.")
    else:
        number = f"PO-{request.pk:06d}-{PurchaseOrder.objects.filter(request=request).count() + 1}"
    try:
        with transaction.atomic():
            return PurchaseOrder.objects.create(
                key=key, request=request, number=number, amount=amount, external=bool(url)
            )
    except IntegrityError:  # placed meanwhile under the same key (the endpoint answered it once)
        return PurchaseOrder.objects.get(key=key)


def purchase_order_cancel(*, key: str) -> PurchaseOrder | None:
    """Cancel the order placed under `key` (its compensation), once; None when none was placed."""
    order = PurchaseOrder.objects.filter(key=key).first()
    if order is None or order.cancelled_at is not None:
        return order
    if order.external:
        _post(f"{settings.PURCHASE_ORDER_URL}/{order.number}/cancel", f"{key}:cancel", {})
    PurchaseOrder.objects.filter(pk=order.pk, cancelled_at=None).update(cancelled_at=timezone.now())
    order.refresh_from_db()
    return order


def purchase_order_cancel_unrecorded(*, key: str) -> str | None:
    """Cancel, at the endpoint, an order it may have placed under `key` without our hearing of it
    (its answer was lost, and the step gave up): the number of the order it cancelled, or None
    when it placed none. Nothing to do without an endpoint, whose orders are placed here."""
    if not settings.PURCHASE_ORDER_URL or PurchaseOrder.objects.filter(key=key).exists():
        return None
    answer = _post(f"{settings.PURCHASE_ORDER_URL}/cancel", f"{key}:cancel", {"key": key}, none_is=404)
    number = answer.get("number")
    return number if isinstance(number, str) and number else None


def _post(url: str, key: str, body: dict[str, Any], none_is: int | None = None) -> dict[str, Any]:
    return partner_post(
        url=url,
        key=key,
        body=body,
        timeout=settings.PURCHASE_ORDER_TIMEOUT,
        what="The purchase-order endpoint",
        refused=OrderRefused,
        unavailable=OrderEndpointUnavailable,
        none_is=none_is,
    )
