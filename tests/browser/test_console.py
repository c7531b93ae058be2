"""A clean console: what every browser test is held to (conftest.Watch), and the inbox behaviours
that used to log errors or lose what the person had done."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from approvals import services
from approvals.models import RequestType
from tests.browser.conftest import WATCHES, csp_violations, expect_status, log_in, submit
from tests.conftest import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.temporal_server]


def test_the_watch_notes_console_errors_uncaught_errors_and_unexpected_answers(
    browser: Any, live_app: LiveServer, people: dict[str, User]
) -> None:
    page = log_in(browser, live_app.url, people["reviewer1"])
    watch = WATCHES[page]
    assert watch.problems == []

    page.evaluate("console.error('something broke')")
    with page.expect_event("pageerror"):
        page.evaluate("setTimeout(() => { throw new Error('thrown late') })")
    page.goto("/requests/00000000-0000-0000-0000-000000000000/")
    page.wait_for_timeout(200)
    assert any("something broke" in problem for problem in watch.problems)
    assert any("thrown late" in problem for problem in watch.problems)
    assert any(problem.startswith("answered 404: GET") for problem in watch.problems)

    # A status the test says it expects is no problem, nor the browser's own line about it.
    watch.problems.clear()
    expect_status(page, 404)
    page.goto("/requests/00000000-0000-0000-0000-000000000000/")
    page.wait_for_timeout(200)
    assert watch.problems == []


def test_search_and_the_requester_filter_apply_as_the_person_types(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    submit(people, purchase, "Standing desk")
    other = services.request_submit(requester=people["manager"], request_type=purchase, title="Desk lamp")
    reviewer = log_in(browser, live_app.url, people["reviewer1"])
    reviewer.goto("/inbox/")
    expect(reviewer.locator("tr[data-row]")).to_have_count(2, timeout=15_000)
    reviewer.evaluate("window.__noReload = true")

    reviewer.get_by_label("Search").press_sequentially("stand")
    expect(reviewer.locator("tr[data-row]")).to_have_count(1)
    expect(reviewer.locator("#inbox-rows")).to_contain_text("Standing desk")
    assert "q=stand" in reviewer.url

    reviewer.get_by_label("Search").fill("")
    expect(reviewer.locator("tr[data-row]")).to_have_count(2)
    # Its first use brings the requester suggestions into their list, not over the requests.
    reviewer.get_by_label("Requester").click()
    expect(reviewer.locator("#inbox-requesters option")).to_have_count(2)
    expect(reviewer.locator("tr[data-row]")).to_have_count(2)
    reviewer.get_by_label("Requester").press_sequentially(people["manager"].username)
    expect(reviewer.locator("tr[data-row]")).to_have_count(1)
    expect(reviewer.locator(f"#request-{other.public_id}")).to_contain_text("Desk lamp")
    assert reviewer.evaluate("window.__noReload") is True


def test_a_swap_copies_no_inline_style(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    submit(people, purchase, "Monitor arm")
    reviewer = log_in(browser, live_app.url, people["reviewer1"])
    reviewer.goto("/inbox/")
    expect(reviewer.locator("tr[data-row]")).to_have_count(1, timeout=15_000)
    # As a resized text box or the browser itself leave them: style set through the CSSOM, which
    # the policy allows; copying it as an attribute while settling a swap is what it refuses.
    for element in ("select-all", "bulk-comment"):
        reviewer.evaluate(f"document.getElementById('{element}').style.outline = '1px solid red'")
    reviewer.get_by_label("Sort").select_option(index=1)
    expect(reviewer.locator("#inbox-list[data-filters*=sort]")).to_have_count(1)
    reviewer.wait_for_timeout(300)
    assert csp_violations(reviewer) == []


def test_a_refused_bulk_action_keeps_the_selection_and_the_comment(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    for n in range(3):
        submit(people, purchase, f"Chair {n}")
    reviewer = log_in(browser, live_app.url, people["reviewer1"])
    reviewer.goto("/inbox/")
    expect(reviewer.locator("tr[data-row]")).to_have_count(3, timeout=15_000)
    boxes = reviewer.locator("input[data-select]")
    boxes.nth(0).check()
    boxes.nth(2).check()
    expect(reviewer.get_by_text("(2 selected)")).to_be_visible()

    expect_status(reviewer, 400)  # the refusal's answer
    reviewer.get_by_role("button", name="Reject selected").click()
    expect(reviewer.locator("#bulk-form [role=alert]")).to_contain_text("A comment is required")
    expect(boxes.nth(0)).to_be_checked()
    expect(boxes.nth(1)).not_to_be_checked()
    expect(boxes.nth(2)).to_be_checked()
    expect(reviewer.get_by_text("(2 selected)")).to_be_visible()
