"""Fulfilment in the browser: a purchase approved, fulfilled and on the budgets page; one whose
order endpoint refuses it, shown rolled back, and retried by staff from the dashboard; an access
request granted, on "My access", extended by the resource's approver, revoked, and exported."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from approvals.models import AccessGrant, CostCentre, RequestType, Resource, StaffAction
from tests.browser.conftest import expect_console_errors, expect_status, log_in, screenshot
from tests.browser.test_accessible import serious_violations
from tests.conftest import Endpoint, LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.temporal_server]


@pytest.fixture
def purchase(purchase: RequestType) -> RequestType:
    purchase.fulfilment = "purchase"
    purchase.save()
    return purchase


def ask_and_approve(browser: Any, live_app: LiveServer, people: dict[str, User], title: str) -> Any:
    """The requester asks for a purchase through the form; reviewer1 approves it on its page.
    Returns the requester's page of the request."""
    from playwright.sync_api import expect

    requester = log_in(browser, live_app.url, people["requester"])
    requester.goto("/requests/new/")
    requester.get_by_label("Request type").select_option(label="Purchase")
    requester.get_by_label("Title").fill(title)
    requester.get_by_label("Amount").fill("1200")
    expect_status(requester, 400)
    expect_console_errors(requester, "status of 400")
    requester.get_by_role("button", name="Submit").click()
    # Without a cost centre a purchase is refused, and says why.
    expect(requester.locator(".field.invalid")).to_contain_text("needs the cost centre that pays for it")
    requester.get_by_label("Cost centre").select_option(label="it · IT")
    requester.get_by_role("button", name="Submit").click()
    expect(requester.get_by_test_id("cost-centre")).to_have_text("it · IT")
    expect(requester.get_by_test_id("live-status")).to_have_text("In review")

    reviewer = log_in(browser, live_app.url, people["reviewer1"])
    reviewer.goto(requester.url)
    reviewer.get_by_role("button", name="Approve").click()
    return requester


def test_an_approved_purchase_is_fulfilled_live_and_its_reservation_is_on_the_budgets_page(
    browser: Any,
    live_app: LiveServer,
    people: dict[str, User],
    purchase: RequestType,
    centre: CostCentre,
    settings: Any,
) -> None:
    from playwright.sync_api import expect

    settings.PURCHASE_ORDER_URL = ""
    requester = ask_and_approve(browser, live_app, people, "Docking station")

    # Pushed live to the requester's open page: every step, then the outcome.
    expect(requester.get_by_test_id("live-status")).to_have_text("Fulfilled", timeout=20_000)
    expect(requester.get_by_test_id("step-reserve")).to_contain_text("1200.00 reserved from it")
    expect(requester.get_by_test_id("step-order")).to_contain_text("placed")
    expect(requester.locator(".timeline")).to_contain_text("Fulfilled")
    screenshot(requester, "request-fulfilled")
    assert serious_violations(requester) == []

    staff = log_in(browser, live_app.url, people["admin"])
    staff.goto("/budgets/")
    expect(staff.locator("#budget-it")).to_contain_text("1200.00")
    expect(staff.get_by_test_id("ledger")).to_contain_text("Reserved for “Docking station”")


def test_a_purchase_whose_order_is_refused_is_rolled_back_and_staff_retry_it(
    browser: Any,
    live_app: LiveServer,
    people: dict[str, User],
    purchase: RequestType,
    centre: CostCentre,
    endpoint: Endpoint,
) -> None:
    from playwright.sync_api import expect

    endpoint.plan["place"] = [422]
    requester = ask_and_approve(browser, live_app, people, "Monitor arm")

    expect(requester.get_by_test_id("live-status")).to_have_text(
        "Fulfilment failed — rolled back", timeout=20_000
    )
    failure = requester.get_by_test_id("fulfilment-failure")
    expect(failure).to_contain_text("Failed at Place the purchase order")
    expect(failure).to_contain_text("refused it (422)")
    expect(requester.get_by_test_id("step-reserve")).to_contain_text("undone")
    screenshot(requester, "request-rolled-back")

    staff = log_in(browser, live_app.url, people["admin"])
    staff.goto("/budgets/")
    expect(staff.get_by_test_id("ledger")).to_contain_text("Reservation released")
    staff.goto("/dashboard/")
    shown = staff.get_by_test_id("fulfilment-failed")
    expect(shown).to_contain_text("Monitor arm")
    expect(shown).to_contain_text("Failed at Place the purchase order")
    screenshot(staff, "dashboard-fulfilment-failed")
    assert serious_violations(staff) == []

    # The endpoint takes orders again: staff retry, saying why; the requester sees attempt 2 live.
    shown.get_by_label("What was fixed").fill("Supplier account reopened")
    shown.get_by_role("button", name="Retry fulfilment").click()
    expect(staff.get_by_test_id("fulfil-notice")).to_contain_text("Fulfilment attempt 2 started.")
    expect(requester.get_by_test_id("live-status")).to_have_text("Fulfilled", timeout=20_000)
    expect(requester.get_by_test_id("fulfilment")).to_contain_text("attempt 2")
    # The staff member's dashboard, redrawn live meanwhile, still says what their retry did, and
    # no longer lists the fulfilment as failed.
    expect(staff.get_by_test_id("fulfil-notice")).to_contain_text("Fulfilment attempt 2 started.")
    expect(staff.get_by_test_id("fulfilment-failed")).to_have_count(0)
    retry = StaffAction.objects.get(kind=StaffAction.Kind.FULFIL)
    assert (retry.actor, retry.ok, retry.reason) == (people["admin"], True, "Supplier account reopened")
    assert len(endpoint.live_orders()) == 1


def test_an_access_request_is_granted_extended_shown_on_my_access_and_revoked(
    browser: Any, live_app: LiveServer, people: dict[str, User], access: RequestType, payroll: Resource
) -> None:
    from playwright.sync_api import expect

    requester = log_in(browser, live_app.url, people["requester"])
    requester.goto("/requests/new/")
    requester.get_by_label("Request type").select_option(label="Access")
    # The form asks what an access request needs, and not what a purchase does.
    expect(requester.get_by_label("Cost centre")).to_be_hidden()
    requester.get_by_label("Title").fill("Payroll for the audit")
    requester.get_by_label("Resource").select_option(label="Payroll (roles: read, write; up to 90 days)")
    requester.get_by_label("Role").fill("read")
    requester.get_by_label("Period (days)").fill("30")
    requester.get_by_role("button", name="Submit").click()
    expect(requester.get_by_test_id("access-asked")).to_have_text("Payroll as read, for 30 days")

    reviewer = log_in(browser, live_app.url, people["reviewer1"])
    reviewer.goto(requester.url)
    reviewer.get_by_role("button", name="Approve").click()
    expect(requester.get_by_test_id("live-status")).to_have_text("Fulfilled", timeout=20_000)
    # Drawn by a live push (with no CSRF token of its own): its form still works.
    granted = requester.get_by_test_id("grant")
    expect(granted).to_contain_text("Access granted")
    granted.get_by_label("More days").fill("10")
    granted.get_by_label("Why you need it").fill("Audit runs late")
    granted.get_by_role("button", name="Ask for more time").click()
    expect(requester.locator(".message")).to_contain_text("sent to the resource's approvers")

    requester.goto("/access/")
    card = requester.locator(".card", has_text="Payroll · read")
    expect(card.get_by_test_id("grant-status")).to_have_text("Active")
    expect(card.get_by_test_id("extension-pending")).to_contain_text("10 days: “Audit runs late”")
    screenshot(requester, "my-access")
    assert serious_violations(requester) == []

    manager = log_in(browser, live_app.url, people["manager"])
    manager.goto("/access/")
    waiting = manager.get_by_test_id(f"extension-{AccessGrant.objects.get().request.public_id}")
    expect(waiting).to_contain_text("requester asks for 10 more days of read on Payroll")
    waiting.get_by_role("button", name="Approve extension").click()
    expect(manager.locator(".message")).to_contain_text("The extension is approved.")

    # Pushed to the holder's open "My access": no reload.
    expect(card).to_contain_text("Extended1 time")
    expect(card.get_by_test_id("extension-pending")).to_have_count(0)
    card.get_by_label("Why end it now").fill("Audit done early")
    card.get_by_role("button", name="Revoke now").click()
    expect(requester.locator(".message")).to_contain_text("The access is revoked.")
    expect(card.get_by_test_id("grant-status")).to_have_text("Revoked")
    expect(card.get_by_test_id("grant-until")).to_contain_text("by requester: “Audit done early”")

    staff = log_in(browser, live_app.url, people["admin"])
    staff.goto("/access/all/?status=revoked")
    expect(staff.get_by_test_id("grants")).to_contain_text("Payroll")
    export = staff.request.get(live_app.url + "/access/all.csv?resource=payroll")
    assert export.status == 200
    assert "requester,requester@example.com,Payroll,read,Revoked" in export.text()
    assert serious_violations(staff) == []
