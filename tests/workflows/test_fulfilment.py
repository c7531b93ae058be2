"""The fulfilment saga on the time-skipping server, with the real activities, database and a real
purchase-order endpoint on loopback: an approved purchase reserves its budget and places its
order, or fails at a step and undoes what it did, last first, with the ledger balanced after."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from approvals.models import ApprovalRequest, CostCentre, Fulfilment, LedgerEntry, PurchaseOrder, RequestType
from approvals.selectors.budgets import balance
from approvals.selectors.dashboard import fulfilments_failed
from approvals.services import budget_allocate
from tests.conftest import Endpoint, LoopThread, RunningWorker, binary, make_request, wait_until
from tests.workflows import helpers
from tests.workflows.helpers import act, action, history, start
from workflows.types import (
    CANCEL_ORDER,
    PLACE_ORDER,
    RELEASE_BUDGET,
    RESERVE_BUDGET,
    ActionKind,
    EventKind,
    FulfilmentStatus,
    fulfilment_id_for,
)


@pytest.fixture
def time_skipping_env(loop: LoopThread, transactional_db: None) -> Iterator[WorkflowEnvironment]:
    """A time-skipping test server and worker of the test's own: the server stops skipping time
    for good once a workflow's child outlives it (as each fulfilment here does its approval; the
    test server's known limits with children, temporalio/sdk-java#1540 and #1618), so the
    session's server is kept out of it. Its workflows end with the test, before the database
    is flushed."""
    env = loop.run(
        WorkflowEnvironment.start_time_skipping(test_server_existing_path=binary("temporal-test-server"))
    )
    worker = RunningWorker(loop, env.client)
    try:
        with helpers.ending_started(loop):
            yield env
    finally:
        worker.stop()
        loop.run(env.shutdown())


STEPS = {RESERVE_BUDGET, RELEASE_BUDGET, PLACE_ORDER, CANCEL_ORDER}
FULFILMENT_EVENTS = [e.value for e in EventKind if e.value.startswith(("fulfil", "step_", "undo_", "rolled"))]


@pytest.fixture
def purchase(purchase: RequestType) -> RequestType:
    purchase.fulfilment = "purchase"
    purchase.save()
    return purchase


def approved(
    loop: LoopThread,
    env: WorkflowEnvironment,
    people: dict[str, User],
    purchase: RequestType,
    centre: CostCentre,
    wait: bool = True,
) -> tuple[ApprovalRequest, WorkflowHandle[Any, Any]]:
    """A purchase of 1,200 from `centre`, approved: its fulfilment's handle, once it has ended
    (with `wait`)."""
    request = make_request(people, purchase)
    request.cost_centre = centre
    request.save()
    act(loop, start(env, loop, request), action(ActionKind.APPROVE, people["reviewer1"], "Go ahead"))
    handle = env.client.get_workflow_handle(fulfilment_id_for(request.public_id, 1))
    helpers.STARTED.append(handle)
    if wait:
        ended(loop, request, handle)
    return request, handle


def ended(loop: LoopThread, request: ApprovalRequest, handle: WorkflowHandle[Any, Any]) -> None:
    def over() -> bool:
        request.refresh_from_db()
        return request.fulfilment in ("fulfilled", "rolled_back")

    wait_until(over, timeout=90, what="the fulfilment to end")
    helpers.wait_idle(loop, handle)  # and its workflow to complete


def steps_run(loop: LoopThread, handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The steps and compensations the saga scheduled, in order (each retry is one schedule)."""
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history(loop, handle)
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name in STEPS
    ]


def timeline(request: ApprovalRequest) -> list[tuple[str, str]]:
    return [
        (kind, detail)
        for kind, detail in request.events.order_by("seq").values_list("kind", "detail")
        if kind in FULFILMENT_EVENTS
    ]


def assert_balanced(centre: CostCentre, *, available: str, reserved: str) -> None:
    """Every account as expected, and the accounts together sum to nothing (double entry)."""
    b = {a: balance(cost_centre=centre, account=a) for a in LedgerEntry.Account.values}
    assert (b["available"], b["reserved"]) == (Decimal(available), Decimal(reserved))
    assert sum(b.values()) == 0


def sent(kind: str) -> list[tuple[str, list[str]]]:
    return [(m.subject, m.to) for m in mail.outbox if m.subject.startswith(kind)]


def test_an_approved_purchase_reserves_its_budget_places_its_order_and_ends_fulfilled(
    loop: LoopThread,
    time_skipping_env: WorkflowEnvironment,
    people: dict[str, User],
    purchase: RequestType,
    centre: CostCentre,
    settings: Any,
) -> None:
    settings.PURCHASE_ORDER_URL = ""
    request, handle = approved(loop, time_skipping_env, people, purchase, centre)

    assert loop.run(handle.result()) == FulfilmentStatus.FULFILLED
    assert (request.status, request.fulfilment) == ("approved", "fulfilled")
    assert steps_run(loop, handle) == [RESERVE_BUDGET, PLACE_ORDER]
    assert_balanced(centre, available="3800.00", reserved="1200.00")
    order = PurchaseOrder.objects.get(request=request)
    assert (order.amount, order.external, order.cancelled_at) == (Decimal("1200.00"), False, None)
    assert timeline(request) == [
        ("fulfilment_started", ""),
        ("step_done", "Reserve the budget: 1200.00 reserved from it"),
        ("step_done", f"Place the purchase order: order {order.number} placed"),
        ("fulfilled", ""),
    ]
    # Its events follow the request's own, numbered on.
    seqs = list(request.events.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(len(seqs)))
    fulfilment = Fulfilment.objects.get(request=request)
    assert [s["status"] for s in fulfilment.steps] == ["done", "done"]
    # The requester and the approver hear of it, once each.
    assert sorted(sent("Fulfilled")) == [
        ("Fulfilled: New laptop", ["requester@example.com"]),
        ("Fulfilled: New laptop", ["reviewer1@example.com"]),
    ]
    body = next(m.body for m in mail.outbox if m.subject.startswith("Fulfilled"))
    assert f"Place the purchase order: order {order.number} placed" in body


def test_a_budget_too_small_fails_the_first_step_for_good_and_nothing_is_left_reserved(
    loop: LoopThread,
    time_skipping_env: WorkflowEnvironment,
    people: dict[str, User],
    purchase: RequestType,
    settings: Any,
) -> None:
    settings.PURCHASE_ORDER_URL = ""
    centre = CostCentre.objects.create(code="ops", name="Operations")
    budget_allocate(cost_centre=centre, amount=Decimal("500"), by=people["admin"])

    request, handle = approved(loop, time_skipping_env, people, purchase, centre)

    assert (request.status, request.fulfilment) == ("approved", "rolled_back")
    # Its compensation was registered before it ran, and ran (finding nothing to give back);
    # the failure is not retried: retrying cannot make the budget bigger.
    assert steps_run(loop, handle) == [RESERVE_BUDGET, RELEASE_BUDGET]
    assert_balanced(centre, available="500.00", reserved="0.00")
    assert not PurchaseOrder.objects.exists()
    fulfilment = Fulfilment.objects.get(request=request)
    assert fulfilment.failed_step == "Reserve the budget"
    assert "ops" in fulfilment.reason and "500" in fulfilment.reason
    assert [s["status"] for s in fulfilment.steps] == ["failed", "waiting"]
    assert timeline(request) == [
        ("fulfilment_started", ""),
        ("step_failed", f"Reserve the budget: {fulfilment.reason}"),
        ("rolled_back", f"Reserve the budget: {fulfilment.reason}"),
    ]
    assert len(sent("Fulfilment failed — rolled back")) == 2
    assert fulfilments_failed() == [fulfilment]


def test_an_order_placed_with_its_answer_lost_then_refused_is_cancelled_and_the_budget_given_back(
    loop: LoopThread,
    time_skipping_env: WorkflowEnvironment,
    people: dict[str, User],
    purchase: RequestType,
    centre: CostCentre,
    endpoint: Endpoint,
) -> None:
    # The endpoint places the order and its answer is lost; asked again, it refuses (422).
    endpoint.plan["place"] = ["lose", 422]

    request, handle = approved(loop, time_skipping_env, people, purchase, centre)

    assert request.fulfilment == "rolled_back"
    # Last in, first out: the order is cancelled (the endpoint placed one, so it is), then the
    # reservation released.
    assert steps_run(loop, handle) == [RESERVE_BUDGET, PLACE_ORDER, CANCEL_ORDER, RELEASE_BUDGET]
    assert endpoint.calls() == ["place", "place", "cancel"]
    assert endpoint.received[-1][1:] == (f"{request.public_id}:fulfilment:1:order:cancel",) + (
        {"key": f"{request.public_id}:fulfilment:1:order"},
    )
    assert endpoint.orders and not endpoint.live_orders()
    assert_balanced(centre, available="5000.00", reserved="0.00")
    fulfilment = Fulfilment.objects.get(request=request)
    assert fulfilment.failed_step == "Place the purchase order"
    assert "refused it (422)" in fulfilment.reason
    assert [k for k, _ in timeline(request)] == [
        "fulfilment_started",
        "step_done",
        "step_failed",
        "step_undone",
        "step_undone",
        "rolled_back",
    ]
    assert timeline(request)[3][1].startswith("Place the purchase order: order EXT-1 cancelled")
    assert timeline(request)[4][1] == "Reserve the budget: 1200.00 given back to it"


def test_a_compensation_that_fails_twice_is_retried_until_it_succeeds(
    loop: LoopThread,
    time_skipping_env: WorkflowEnvironment,
    people: dict[str, User],
    purchase: RequestType,
    centre: CostCentre,
    endpoint: Endpoint,
) -> None:
    endpoint.plan["place"] = ["lose", 422]
    endpoint.plan["cancel"] = [503, 503]

    request, handle = approved(loop, time_skipping_env, people, purchase, centre)

    assert request.fulfilment == "rolled_back"
    assert endpoint.calls() == ["place", "place", "cancel", "cancel", "cancel"]
    assert not endpoint.live_orders()
    assert_balanced(centre, available="5000.00", reserved="0.00")
    # Within one round of attempts: no "keeps failing" on the record, and the note staff saw
    # while it failed is cleared.
    assert "undo_failing" not in [k for k, _ in timeline(request)]
    assert not request.activity_failures.filter(activity=CANCEL_ORDER).exists()


def test_a_compensation_that_keeps_failing_is_shown_and_tried_again_until_it_succeeds(
    loop: LoopThread,
    time_skipping_env: WorkflowEnvironment,
    people: dict[str, User],
    purchase: RequestType,
    centre: CostCentre,
    endpoint: Endpoint,
) -> None:
    endpoint.plan["place"] = ["lose", 422]
    endpoint.plan["cancel"] = [503] * 6  # a round of five attempts, and one more

    request, handle = approved(loop, time_skipping_env, people, purchase, centre, wait=False)
    wait_until(lambda: request.events.filter(kind="undo_failing").exists(), timeout=60, what="undo failing")

    # Meanwhile it is rolling back, and staff see which undo keeps failing, and why.
    request.refresh_from_db()
    assert request.fulfilment == "rolling_back"
    [shown] = fulfilments_failed()
    assert [s["label"] for s in shown.undo_failing] == ["Place the purchase order"]
    assert "failed (503)" in shown.undo_failing[0]["note"]
    helpers.sleep(loop, time_skipping_env, seconds=61)  # its pause before the next round
    ended(loop, request, handle)

    assert request.fulfilment == "rolled_back"
    assert endpoint.calls().count("cancel") == 7
    assert not endpoint.live_orders()
    assert_balanced(centre, available="5000.00", reserved="0.00")
    kinds = [k for k, _ in timeline(request)]
    assert kinds[kinds.index("step_failed") :] == [
        "step_failed",
        "undo_failing",
        "step_undone",
        "step_undone",
        "rolled_back",
    ]
    failing = dict(timeline(request))["undo_failing"]
    assert failing.startswith("Place the purchase order: The purchase-order endpoint failed (503)")
