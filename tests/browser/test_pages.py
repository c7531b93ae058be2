"""Pages a person reaches by a wrong turn: each says where they are and what they may do."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from approvals.models import RequestType
from tests.browser.conftest import (
    expect_console_errors,
    expect_status,
    log_in,
    open_row,
    screenshot,
    submit,
)
from tests.conftest import LiveServer, make_request

pytestmark = [pytest.mark.browser, pytest.mark.temporal_server]


def test_staff_pages_tell_a_logged_in_person_who_is_not_staff_so(
    browser: Any, live_app: LiveServer, people: dict[str, User]
) -> None:
    from playwright.sync_api import expect

    requester = log_in(browser, live_app.url, people["requester"])
    expect_status(requester, 403)
    for path in ("/dashboard/", "/mailbox/"):
        requester.goto(path)
        expect(requester.get_by_role("heading", name="For staff only")).to_be_visible()
        expect(requester.get_by_text("requester is not staff")).to_be_visible()
        expect(requester.get_by_label("Password")).to_have_count(0)
        expect(requester.get_by_role("navigation", name="Main")).to_contain_text("Inbox")


def test_a_request_someone_may_not_see_is_a_plain_not_found_page(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType, settings: Any
) -> None:
    from playwright.sync_api import expect

    settings.DEBUG = True  # as `manage.py up` runs
    request = submit(people, purchase, "Private matter")
    outsider = log_in(browser, live_app.url, people["outsider"])
    expect_status(outsider, 404)
    outsider.goto(request.get_absolute_url())
    expect(outsider.get_by_role("heading", name="Not found")).to_be_visible()
    expect(outsider.get_by_text("Private matter")).to_have_count(0)
    expect(outsider.get_by_text("URLconf")).to_have_count(0)


def test_after_a_decision_no_empty_card_is_left_and_the_submitted_banner_goes(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    requester = log_in(browser, live_app.url, people["requester"])
    requester.goto("/requests/new/")
    requester.get_by_label("Request type").select_option(label="Purchase")
    requester.get_by_label("Title").fill("Headset")
    requester.get_by_role("button", name="Submit for approval").click()
    banner = requester.get_by_text("submitted and waiting for review")
    expect(banner).to_be_visible()
    expect(requester.get_by_test_id("live-status")).to_have_text("In review", timeout=15_000)

    reviewer = log_in(browser, live_app.url, people["reviewer1"])
    reviewer.goto(requester.url)
    actions = reviewer.locator("section[id^=actions-]")
    actions.get_by_role("button", name="Approve").click()
    expect(actions).to_contain_text("is approved.")
    expect(reviewer.get_by_test_id("live-status")).to_have_text("Approved")
    # Whatever the section keeps is inside a card with something in it, or there is no card.
    reviewer.reload()
    box = actions.bounding_box()
    assert box is None or box["height"] < 2 or actions.inner_text().strip(), "an empty card"

    # The requester's page, told live: the banner no longer says it waits for review.
    expect(requester.get_by_test_id("live-status")).to_have_text("Approved", timeout=15_000)
    expect(banner).to_have_count(0)
    box = requester.locator("section[id^=actions-]").bounding_box()
    assert box is None or box["height"] < 2, "an empty card on the requester's page"


def test_a_button_is_busy_from_the_click_to_the_answer(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    request = submit(people, purchase, "Whiteboard")
    reviewer = log_in(browser, live_app.url, people["reviewer1"])
    reviewer.goto(request.get_absolute_url())
    held: list[Any] = []
    reviewer.route("**/act/", lambda route: held.append(route))  # held until the test lets it go
    comment = reviewer.locator(f"#comment-form-{request.public_id}")
    comment.get_by_label("Add a comment").fill("Which size?")
    button = comment.get_by_role("button", name="Comment")
    button.click()
    expect(button).to_be_disabled()
    expect(button).to_have_attribute("aria-busy", "true")
    assert len(held) == 1
    held[0].continue_()
    expect(reviewer.locator(".timeline")).to_contain_text("Which size?")
    expect(button).to_be_enabled()
    expect(button).not_to_have_attribute("aria-busy", "true")


def test_a_page_says_when_it_is_offline_and_catches_up_when_back(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    reviewer = log_in(browser, live_app.url, people["reviewer1"])
    reviewer.goto("/inbox/")
    expect(reviewer.get_by_text("Nothing to review.")).to_be_visible()
    reviewer.evaluate("window.__noReload = true")
    offline = reviewer.locator("#live-offline")
    expect(offline).to_be_hidden()

    # The web restarts (its sockets close with 1012); meanwhile a request reaches this reviewer.
    # While it is away, the browser logs each failed attempt to reconnect, and htmx the error.
    expect_console_errors(reviewer, "WebSocket connection to", "[object Event]")
    live_app.stop()
    expect(offline).to_be_visible()
    expect(offline).to_contain_text("Offline: reconnecting")
    missed = make_request(people, purchase, started=True, title="Sent while you were away")
    live_app.start()

    expect(offline).to_be_hidden(timeout=15_000)
    expect(reviewer.locator(f"#request-{missed.public_id}")).to_contain_text("Sent while you were away")
    assert reviewer.evaluate("window.__noReload") is True


def test_the_counts_stay_right_and_a_decided_row_says_it_left_the_list(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    from approvals import services
    from workflows.types import ActionKind

    mine, theirs = submit(people, purchase, "Projector"), submit(people, purchase, "Screen")
    reviewer = log_in(browser, live_app.url, people["reviewer1"])
    reviewer.goto("/inbox/")
    count = reviewer.get_by_test_id("inbox-count")
    expect(count).to_have_text("(2)")
    # The navigation's count too, on every page: the home page's shows it twice.
    nav = reviewer.get_by_test_id("nav-waiting")
    expect(nav).to_have_text("(2 waiting)")
    home = log_in(browser, live_app.url, people["reviewer1"])
    expect(home.get_by_test_id("nav-waiting")).to_have_text("(2 waiting)")
    expect(home.locator("#home-waiting")).to_have_text("2 requests waiting for your review")

    # The reviewer's own decision: the row stays in place, says it left the list, and counts no more.
    row = reviewer.locator(f"#request-{mine.public_id}")
    open_row(row)
    row.get_by_role("button", name="Approve").click()
    expect(row.get_by_test_id("gone")).to_have_text("No longer in “Waiting for me”")
    expect(count).to_have_text("(1)")
    expect(nav).to_have_text("(1 waiting)")
    expect(home.locator("#home-waiting")).to_have_text("1 request waiting for your review")

    # Someone else's decision reaches the page live, with the same effect.
    theirs.refresh_from_db()
    services.request_act(request=theirs, actor=people["reviewer2"], kind=ActionKind.APPROVE)
    other = reviewer.locator(f"#request-{theirs.public_id}")
    expect(other.get_by_test_id("gone")).to_be_visible(timeout=15_000)
    expect(count).to_have_text("")
    expect(nav).to_have_text("")
    expect(home.locator("#home-waiting")).to_be_hidden()
    expect(reviewer.locator("tr[data-row]:not(.gone) button[value=approve]")).to_have_count(0)
    # A new request counts at once, on a page about something else.
    home.goto(mine.get_absolute_url())
    submit(people, purchase, "Cable tray")
    expect(home.get_by_test_id("nav-waiting")).to_have_text("(1 waiting)", timeout=15_000)


def test_new_requests_wait_behind_a_banner_instead_of_moving_the_rows_being_read(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    reading = submit(people, purchase, "Desk")
    reviewer = log_in(browser, live_app.url, people["reviewer1"])
    reviewer.goto("/inbox/")
    rows = reviewer.locator("#inbox-rows tr[data-row]")
    expect(rows).to_have_count(1)
    banner = reviewer.locator("#inbox-new")
    expect(banner).to_be_hidden()

    first, second = submit(people, purchase, "Lamp"), submit(people, purchase, "Rug")
    expect(banner).to_have_text("2 new requests: show", timeout=15_000)
    expect(rows).to_have_count(1)  # nothing moved under the reader
    expect(rows.first).to_have_id(f"request-{reading.public_id}")
    expect(reviewer.get_by_test_id("inbox-count")).to_have_text("(3)")

    banner.click()
    expect(banner).to_be_hidden()
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_have_id(f"request-{second.public_id}")
    expect(rows.nth(1)).to_have_id(f"request-{first.public_id}")


def test_on_a_phone_the_navigation_is_a_menu_with_every_link_on_screen(
    browser: Any, live_app: LiveServer, people: dict[str, User]
) -> None:
    from playwright.sync_api import expect

    phone = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
    admin = log_in(browser, live_app.url, people["admin"], **phone)
    admin.goto("/inbox/")
    nav = admin.get_by_role("navigation", name="Main")
    menu = admin.get_by_role("button", name="Menu")
    expect(nav).to_be_hidden()
    expect(menu).to_have_attribute("aria-expanded", "false")

    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    for name in ("My requests", "New request", "Inbox", "Dashboard", "Mailbox", "Admin"):
        link = nav.get_by_role("link", name=name, exact=True)
        expect(link).to_be_visible()
        box = link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, name
    expect(nav.get_by_role("link", name="Inbox", exact=True)).to_have_attribute("aria-current", "page")
    screenshot(admin, "phone-menu")
    nav.get_by_role("link", name="Dashboard", exact=True).click()
    expect(admin.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()
    expect(nav).to_be_hidden()  # a new page starts with the menu closed

    # On a desktop the navigation is always there, and there is no menu button.
    desktop = log_in(browser, live_app.url, people["admin"])
    expect(desktop.get_by_role("navigation", name="Main")).to_be_visible()
    expect(desktop.get_by_role("button", name="Menu")).to_be_hidden()


def test_the_inbox_filters_show_their_choices_whole_on_a_laptop(
    browser: Any, live_app: LiveServer, people: dict[str, User]
) -> None:
    reviewer = log_in(browser, live_app.url, people["reviewer1"], viewport={"width": 1280, "height": 800})
    reviewer.goto("/inbox/")
    # Each select at least as wide as its longest choice needs (a hidden copy of the text, measured).
    cut = reviewer.evaluate(
        """() => [...document.querySelectorAll('#inbox-filters select')].filter(select => {
            const probe = document.createElement('span');
            probe.style.font = getComputedStyle(select).font;
            probe.style.position = 'absolute';
            probe.style.visibility = 'hidden';
            document.body.append(probe);
            const width = (option) => ((probe.textContent = option.text), probe.offsetWidth);
            const widest = Math.max(...[...select.options].map(width));
            probe.remove();
            return select.clientWidth < widest + 24;
        }).map(select => select.name)"""
    )
    assert cut == []


def test_submit_review_and_decide_with_the_keyboard_alone(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    from approvals.models import ApprovalRequest

    def tab_to(page: Any, locator: Any, limit: int = 40) -> None:
        """Press Tab until `locator` has the focus, as a keyboard user would."""
        for _ in range(limit):
            if locator.evaluate("element => element === document.activeElement"):
                return
            page.keyboard.press("Tab")
        raise AssertionError(f"Tab never reached {locator}")

    requester = log_in(browser, live_app.url, people["requester"])
    keys = requester.keyboard
    tab_to(requester, requester.get_by_role("link", name="New request").first)
    keys.press("Enter")
    tab_to(requester, requester.get_by_label("Request type"))
    keys.press("ArrowDown")  # the first type: Purchase
    tab_to(requester, requester.get_by_label("Title"))
    keys.type("Keyboard tray")
    tab_to(requester, requester.get_by_role("button", name="Submit for approval"))
    keys.press("Enter")
    expect(requester.get_by_test_id("live-status")).to_have_text("In review", timeout=15_000)
    request = ApprovalRequest.objects.get(title="Keyboard tray")

    reviewer = log_in(browser, live_app.url, people["reviewer1"])
    tab_to(reviewer, reviewer.get_by_role("link", name="Inbox"))
    reviewer.keyboard.press("Enter")
    row = reviewer.locator(f"#request-{request.public_id}")
    expect(row).to_be_visible()
    reviewer.keyboard.press("j")
    expect(row).to_be_focused()
    reviewer.keyboard.press("a")
    reviewer.keyboard.press("a")
    expect(row.locator(".badge")).to_have_text("Approved")
    expect(requester.get_by_test_id("live-status")).to_have_text("Approved", timeout=15_000)
