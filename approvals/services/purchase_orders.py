"""Purchase orders: placed once per key, at PURCHASE_ORDER_URL when it is set (with that key as
its Idempotency-Key, so that the endpoint too places it once however often it is asked) or in the
app's own table; cancelled the same way, as the order's compensation.

Each call has a deadline (PURCHASE_ORDER_TIMEOUT) and makes one attempt: the activity that calls
it retries with backoff. What the endpoint refuses as it is (a 4xx other than 408 and 429) is
OrderRefused, which retrying cannot help; anything else that goes wrong is
OrderEndpointUnavailable, worth another try.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals.exceptions import OrderEndpointUnavailable, OrderRefused
from approvals.models import ApprovalRequest, PurchaseOrder

RETRYABLE_STATUSES = frozenset({408, 429})


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


def _post(url: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
    """One POST, its JSON answer; the errors as above."""
    call = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Idempotency-Key": key, "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(call, timeout=settings.PURCHASE_ORDER_TIMEOUT) as response:
            text = response.read().decode() or "{}"
    except urllib.error.HTTPError as exc:
        said = exc.read().decode(errors="replace")[:300]
        if 400 <= exc.code < 500 and exc.code not in RETRYABLE_STATUSES:
            raise OrderRefused(f"The purchase-order endpoint refused it ({exc.code}): {said}") from exc
        raise OrderEndpointUnavailable(f"The purchase-order endpoint failed ({exc.code}): {said}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise OrderEndpointUnavailable(f"The purchase-order endpoint did not answer: {exc}") from exc
    try:
        answer = json.loads(text)
    except ValueError as exc:
        raise OrderEndpointUnavailable(
            "The purchase-order endpoint answered with something not JSON."
        ) from exc
    if not isinstance(answer, dict):
        raise OrderEndpointUnavailable("The purchase-order endpoint answered with something not an object.")
    return answer
