"""Purchase orders, placed and cancelled once per key: in the app's own table, or at a real HTTP
endpoint on loopback that records what it gets, fails on demand and keeps its idempotency keys."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User

from approvals.exceptions import OrderEndpointUnavailable, OrderRefused
from approvals.models import PurchaseOrder, RequestType
from approvals.services.purchase_orders import purchase_order_cancel, purchase_order_place
from tests.conftest import Endpoint, make_request


def test_without_an_endpoint_the_order_is_kept_here_once_and_cancelled_once(
    people: dict[str, User], purchase: RequestType, settings: Any
) -> None:
    settings.PURCHASE_ORDER_URL = ""
    request = make_request(people, purchase)
    order = purchase_order_place(request=request, amount=Decimal("1200"), key="r:order")
    assert purchase_order_place(request=request, amount=Decimal("1200"), key="r:order") == order
    assert (order.number, order.external) == (f"PO-{request.pk:06d}-1", False)
    cancelled = purchase_order_cancel(key="r:order")
    assert cancelled is not None and cancelled.cancelled_at is not None
    assert purchase_order_cancel(key="r:order") == cancelled  # once
    assert purchase_order_cancel(key="never:order") is None


def test_at_the_endpoint_a_retried_order_is_placed_once_and_its_cancel_goes_there(
    people: dict[str, User], purchase: RequestType, endpoint: Endpoint
) -> None:
    request = make_request(people, purchase)
    endpoint.fail_next = [503]
    with pytest.raises(OrderEndpointUnavailable, match="failed \\(503\\)"):
        purchase_order_place(request=request, amount=Decimal("1200"), key="r:order")
    # The retry (as the activity's retry policy makes it) places it, under the same key.
    order = purchase_order_place(request=request, amount=Decimal("1200"), key="r:order")
    assert (order.number, order.external) == ("EXT-1", True)
    assert purchase_order_place(request=request, amount=Decimal("1200"), key="r:order") == order
    assert [(path, key) for path, key, _ in endpoint.received] == [("/orders", "r:order")] * 2
    assert endpoint.received[-1][2] == {
        "request": str(request.public_id),
        "title": "New laptop",
        "amount": "1200",
        "requester": "requester",
    }
    assert PurchaseOrder.objects.count() == 1 and len(endpoint.orders) == 1

    purchase_order_cancel(key="r:order")
    assert endpoint.received[-1][:2] == ("/orders/EXT-1/cancel", "r:order:cancel")
    assert endpoint.cancelled == {"EXT-1"}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, OrderRefused),
        (422, OrderRefused),
        (408, OrderEndpointUnavailable),
        (429, OrderEndpointUnavailable),
        (500, OrderEndpointUnavailable),
    ],
)
def test_what_the_endpoint_refuses_fails_fast_and_what_it_fails_is_worth_a_retry(
    people: dict[str, User], purchase: RequestType, endpoint: Endpoint, status: int, error: type[Exception]
) -> None:
    request = make_request(people, purchase)
    endpoint.fail_next = [status]
    with pytest.raises(error, match=f"\\({status}\\)"):
        purchase_order_place(request=request, amount=Decimal("10"), key="k")
    assert not PurchaseOrder.objects.exists()


def test_an_endpoint_that_does_not_answer_is_worth_a_retry(
    people: dict[str, User], purchase: RequestType, settings: Any
) -> None:
    settings.PURCHASE_ORDER_URL = "http://127.0.0.1:9/orders"  # discard: nobody listens
    with pytest.raises(OrderEndpointUnavailable, match="did not answer"):
        purchase_order_place(request=make_request(people, purchase), amount=Decimal("10"), key="k")
