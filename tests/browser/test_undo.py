"""Undo in the browser: a decision waits out its undo period, offered back by a toast, by its
row or page, by the `u` key and on an email link's confirmation page, and takes effect after."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User

from approvals import services
from approvals.models import RequestType
from tests.browser.conftest import log_in, open_row, screenshot, submit
from tests.browser.test_accessible import serious_violations
from tests.conftest import LiveServer
from workflows.types import ActionKind

pytestmark = [pytest.mark.browser, pytest.mark.temporal_server]

UNDO_SECONDS = 6


@pytest.fixture
def purchase(purchase: RequestType) -> RequestType:
    purchase.undo_seconds = UNDO_SECONDS
    purchase.save()
    return purchase


def test_a_decision_is_undone_from_its_toast_and_else_takes_effect_when_its_period_ends(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    request = submit(people, purchase, "Ergonomic chair")
    requester = log_in(browser, live_app.url, people["requester"])
    requester.goto(request.get_absolute_url())
    other = log_in(browser, live_app.url, people["reviewer2"])
    other.goto("/inbox/")
    reviewer = log_in(browser, live_app.url, people["reviewer1"])
    reviewer.goto("/inbox/")
    row = reviewer.locator(f"#request-{request.public_id}")
    open_row(row)
    row.get_by_label("Comment").fill("Looks fine")
    row.get_by_role("button", name="Approve").click()

    toast = reviewer.get_by_test_id("toast")
    expect(toast).to_contain_text("Approval of “Ergonomic chair” takes effect in")
    expect(row.get_by_test_id("held")).to_contain_text("Your approval takes effect in")
    # Others see it as it is: made, not in effect yet.
    expect(requester.get_by_test_id("held-note")).to_contain_text("approval made, taking effect in")
    expect(other.locator(f"#request-{request.public_id}").get_by_test_id("held-note")).to_contain_text(
        "reviewer1: approval made, taking effect in"
    )
    expect(requester.get_by_test_id("live-status")).to_have_text("In review")
    screenshot(reviewer, "undo-toast")
    assert serious_violations(reviewer) == []

    toast.get_by_role("button", name="Undo").click()
    expect(toast).to_have_count(0)
    expect(row).to_contain_text("Your approval is undone")
    expect(row.get_by_label("Comment")).to_have_value("Looks fine")  # what they wrote is back
    expect(requester.get_by_test_id("held-note")).to_have_count(0)

    # Undone from its row, the toast goes too.
    row.get_by_role("button", name="Approve").click()
    expect(toast).to_be_visible()
    row.get_by_test_id("held").get_by_role("button", name="Undo").click()
    expect(row).to_contain_text("Your approval is undone")
    expect(toast).to_have_count(0)

    row.get_by_role("button", name="Approve").click()
    expect(toast).to_be_visible()
    # The period ends: the decision takes effect, and the toast and the Undo go.
    expect(row.locator(".badge")).to_have_text("Approved", timeout=UNDO_SECONDS * 1000 + 15_000)
    expect(toast).to_have_count(0)
    expect(row.get_by_role("button", name="Undo")).to_have_count(0)
    expect(requester.get_by_test_id("live-status")).to_have_text("Approved")
    expect(requester.locator(".timeline")).to_contain_text("Looks fine")


def test_the_u_key_undoes_and_an_email_links_confirmation_page_offers_undo_too(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    request = submit(people, purchase, "Monitor arm")
    reviewer = log_in(browser, live_app.url, people["reviewer1"])
    reviewer.goto("/inbox/")
    row = reviewer.locator(f"#request-{request.public_id}")
    reviewer.keyboard.press("j")
    reviewer.keyboard.press("a")
    reviewer.keyboard.press("a")
    # The toast is in, and htmx has taken it up (it does once the swap settles, 20 ms later).
    expect(reviewer.locator(".toast:not(.htmx-added)")).to_be_visible()
    reviewer.keyboard.press("u")
    expect(row).to_contain_text("Your approval is undone")
    expect(row.get_by_role("button", name="Approve")).to_be_visible()

    link = services.email_link_make(user=people["reviewer2"], request=request, action=ActionKind.APPROVE)
    other = log_in(browser, live_app.url, people["reviewer2"])
    other.goto(urlsplit(link).path)
    other.get_by_role("button", name="Confirm: approve").click()
    status = other.get_by_test_id("decision-status")
    expect(status).to_contain_text("takes effect in", timeout=15_000)
    other.get_by_role("button", name="Undo").click()
    expect(other.get_by_text("Your approval is undone")).to_be_visible()
    expect(other.get_by_test_id("live-status")).to_have_text("In review")
