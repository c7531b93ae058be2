"""The pages people work in, in Chromium: escalation arriving live, bulk decisions, the keyboard,
the routing preview, the staff dashboard, and a phone-sized screen."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from temporalio.client import Client as TemporalClient

from approvals import services
from approvals.models import ApprovalRequest, EscalationLevel, RequestStatus, RequestType, Stage
from tests.browser.conftest import csp_violations, log_in, screenshot, submit
from tests.conftest import LiveServer, LoopThread, wait_until
from workflows.types import ActionKind

pytestmark = [pytest.mark.browser, pytest.mark.temporal_server]


def status(request: ApprovalRequest) -> str:
    return ApprovalRequest.objects.get(pk=request.pk).status


def test_an_escalation_after_a_short_deadline_appears_live_in_the_managers_inbox(
    browser: Any, live_app: LiveServer, people: dict[str, User]
) -> None:
    from playwright.sync_api import expect

    urgent = RequestType.objects.create(name="Urgent", slug="urgent")
    stage = Stage.objects.create(request_type=urgent, name="Review", deadline=timedelta(seconds=3))
    stage.approver_users.set([people["reviewer1"]])
    level = EscalationLevel.objects.create(stage=stage, order=1, after=timedelta(days=1))
    level.users.set([people["manager"]])

    manager = log_in(browser, live_app.url, people["manager"])
    manager.goto("/inbox/")
    expect(manager.get_by_text("Nothing to review.")).to_be_visible()
    manager.evaluate("window.__noReload = true")

    request = submit(people, urgent, "Server room door")
    row = manager.locator(f"#request-{request.public_id}")
    expect(row).to_contain_text("Server room door", timeout=20_000)
    expect(row).to_contain_text("Escalated to you")
    expect(row.get_by_role("button", name="Decide")).to_be_visible()
    assert manager.evaluate("window.__noReload") is True
    screenshot(manager, "inbox-escalated")


def test_bulk_approve_from_the_inbox(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    requests = [submit(people, purchase, f"Monitor {n}") for n in range(3)]
    reviewer = log_in(browser, live_app.url, people["reviewer1"])
    reviewer.goto("/inbox/")
    expect(reviewer.locator("tr[data-row]")).to_have_count(3)

    expect(reviewer.locator("#bulk-form")).to_be_hidden()  # nothing selected, nothing to do in bulk
    reviewer.get_by_label("Select every request on this page").check()
    expect(reviewer.get_by_text("(3 selected)")).to_be_visible()
    expect(reviewer.locator("#bulk-form")).to_be_visible()
    reviewer.get_by_label("One comment for all").fill("All within budget")
    reviewer.get_by_role("button", name="Approve selected").click()

    results = reviewer.locator("#bulk-results")
    expect(results).to_contain_text("3 of 3 done")
    expect(results).to_be_focused()
    screenshot(reviewer, "inbox-bulk-results")
    wait_until(lambda: all(status(r) == RequestStatus.APPROVED for r in requests), what="all approved")
    assert {r.decision_comment for r in ApprovalRequest.objects.all()} == {"All within budget"}
    expect(reviewer.get_by_text("Nothing to review.")).to_be_visible()


def test_keyboard_shortcuts_move_approve_and_reject(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    first = submit(people, purchase, "Headset")
    second = submit(people, purchase, "Webcam")
    reviewer = log_in(browser, live_app.url, people["reviewer2"])
    reviewer.goto("/inbox/?sort=oldest")
    keyboard = reviewer.keyboard

    keyboard.press("?")
    expect(reviewer.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
    keyboard.press("Escape")
    expect(reviewer.get_by_role("dialog")).to_be_hidden()

    keyboard.press("j")
    headset = reviewer.locator(f"#request-{first.public_id}")
    expect(headset).to_have_class("current")
    expect(headset).to_be_focused()
    keyboard.press("a")  # picks Approve; nothing is decided yet
    expect(reviewer.locator("#inbox-keys-said")).to_contain_text("Press a again to approve “Headset”")
    expect(headset.get_by_role("button", name="Approve")).to_have_attribute("data-armed", "approve")
    keyboard.press("Escape")  # lets it go
    expect(reviewer.locator("#inbox-keys-said")).to_be_empty()
    reviewer.wait_for_timeout(300)
    expect(headset.locator(".badge")).to_have_text("In review")
    assert status(first) == RequestStatus.IN_REVIEW
    keyboard.press("a")
    keyboard.press("a")
    expect(headset.locator(".badge")).to_have_text("Approved")
    expect(headset).to_be_focused()  # focus stays on the same request after its row is replaced

    keyboard.press("j")
    webcam = reviewer.locator(f"#request-{second.public_id}")
    expect(webcam).to_be_focused()
    keyboard.press("r")
    comment = webcam.get_by_role("textbox")
    expect(comment).to_be_focused()
    keyboard.type("We have enough webcams")
    keyboard.press("Enter")
    expect(webcam.locator(".badge")).to_have_text("Rejected")

    wait_until(lambda: status(first) == RequestStatus.APPROVED, what="headset approved")
    wait_until(lambda: status(second) == RequestStatus.REJECTED, what="webcam rejected")
    assert ApprovalRequest.objects.get(pk=second.pk).decision_comment == "We have enough webcams"

    keyboard.press("/")
    expect(reviewer.get_by_role("searchbox", name="Search")).to_be_focused()


def test_the_requester_sees_the_route_before_submitting_and_who_they_wait_for_after(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    requester = log_in(browser, live_app.url, people["requester"])
    requester.goto("/requests/new/")
    expect(requester.locator("#routing-preview")).to_contain_text("Choose a type of request")
    requester.get_by_label("Request type").select_option(label="Purchase")
    preview = requester.locator("#routing-preview")
    expect(preview).to_contain_text("reviewer1")
    expect(preview).to_contain_text("also manager")
    requester.get_by_label("Title").fill("Standing desk")
    requester.get_by_label("Amount").fill("640")
    screenshot(requester, "request-create")
    requester.get_by_role("button", name="Submit for approval").click()
    expect(requester.get_by_test_id("live-status")).to_have_text("In review")

    requester.goto("/")
    row = requester.locator("tr", has_text="Standing desk")
    expect(row).to_contain_text("reviewer1, reviewer2")
    screenshot(requester, "my-requests")


def test_the_staff_dashboard_counts_live_and_draws_its_charts(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    requests = [submit(people, purchase, f"Desk lamp {n}") for n in range(3)]
    admin = log_in(browser, live_app.url, people["admin"])
    admin.goto("/dashboard/")
    expect(admin.get_by_test_id("count-in_review")).to_have_text("3")
    admin.evaluate("window.__noReload = true")

    for request, kind, comment in [
        (requests[0], ActionKind.APPROVE, ""),
        (requests[1], ActionKind.APPROVE, ""),
        (requests[2], ActionKind.REJECT, "Too bright"),
    ]:
        request.refresh_from_db()
        services.request_act(request=request, actor=people["reviewer1"], kind=kind, comment=comment)
    # Workflows that need a person are asked of Temporal once the page is there.
    expect(admin.locator("#troubles")).to_contain_text("Every workflow is doing what it should.")
    expect(admin.get_by_test_id("count-approved")).to_have_text("2", timeout=15_000)
    expect(admin.get_by_test_id("count-rejected")).to_have_text("1")
    assert admin.evaluate("window.__noReload") is True

    # The figures for a period come on request: choosing one swaps them in, the URL follows.
    admin.get_by_label("Period").select_option(label="Last 7 days")
    admin.wait_for_url("**/dashboard/?days=7*")
    figures = admin.locator("#dashboard-figures")
    expect(figures).to_contain_text("(3 submitted, 3 decided)")
    throughput = admin.get_by_test_id("chart-throughput")
    expect(throughput).to_be_visible()
    expect(throughput.locator("rect.bar-submitted")).to_have_count(1)
    expect(throughput.locator("rect.bar-approved")).to_have_count(1)
    expect(throughput.locator("rect.bar-rejected")).to_have_count(1)
    times = admin.get_by_test_id("chart-decision-times")
    expect(times.locator("rect.bar-median")).to_have_count(1)
    box = throughput.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 100  # drawn, not collapsed
    expect(admin.get_by_test_id("times-by-type")).to_contain_text("Purchase")
    expect(admin.get_by_test_id("slowest-responders")).to_contain_text("reviewer1")
    screenshot(admin, "dashboard")
    assert csp_violations(admin) == []  # htmx, its websocket extension and the charts need no exception


def test_staff_cancel_a_request_in_trouble_from_the_dashboard(
    browser: Any,
    loop: LoopThread,
    dev_server_settings: TemporalClient,
    live_app: LiveServer,
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    from playwright.sync_api import expect

    stuck = submit(people, purchase, "Projector")
    handle = dev_server_settings.get_workflow_handle(stuck.workflow_id)
    loop.run(handle.terminate(reason="stuck after a bad deploy"))
    wait_until(lambda: services.workflows_in_trouble()[0], what="Temporal to list the stopped run")

    admin = log_in(browser, live_app.url, people["admin"])
    admin.goto("/dashboard/")
    trouble = admin.locator(f"#trouble-{stuck.public_id}")
    expect(trouble).to_contain_text("Its workflow stopped")
    expect(trouble).to_contain_text("Terminated: stuck after a bad deploy")
    run_id = loop.run(handle.describe()).run_id
    expect(trouble.get_by_role("link", name="Open in Temporal")).to_have_attribute(
        "href",
        f"{settings.TEMPORAL_UI_URL}/namespaces/default/workflows/{stuck.workflow_id}/{run_id}/history",
    )
    screenshot(admin, "dashboard-troubles")

    trouble.get_by_label("Why cancel “Projector”").fill("Bought elsewhere")
    trouble.get_by_role("button", name="Cancel the request").click()
    expect(admin.get_by_test_id("staff-notice")).to_contain_text("“Projector”: The request is cancelled.")
    expect(admin.locator("#troubles")).to_contain_text("Every workflow is doing what it should.")
    expect(admin.get_by_test_id("staff-actions")).to_contain_text(
        "admin: cancel Projector (“Bought elsewhere”)"
    )
    stuck.refresh_from_db()
    assert (stuck.status, stuck.decision_comment) == (RequestStatus.CANCELLED, "Bought elsewhere")


def test_pages_fit_a_phone_screen(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    request = submit(people, purchase, "Phone charger")
    phone = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
    for user, path, name in [
        (people["reviewer1"], "/inbox/", "phone-inbox"),
        (people["reviewer1"], request.get_absolute_url(), "phone-request"),
        (people["requester"], "/", "phone-my-requests"),
        (people["requester"], "/requests/new/", "phone-new-request"),
        (people["admin"], "/dashboard/", "phone-dashboard"),
        (people["admin"], "/mailbox/", "phone-mailbox"),
    ]:
        page = log_in(browser, live_app.url, user, **phone)
        page.goto(path)
        expect(page.locator("h1")).to_be_visible()
        if path == "/mailbox/":  # an email opened, its one-click links within the screen
            page.locator("details.mail summary").first.click()
            link = page.locator("details.mail a[href*='/email/']").first
            expect(link).to_be_visible()
            box = link.bounding_box()
            assert box is not None and box["x"] + box["width"] <= phone["viewport"]["width"]
        # On a phone the browser would widen its layout to fit a page too wide: measure against
        # the phone's own width, not the window's.
        overflow = page.evaluate("document.documentElement.scrollWidth") - phone["viewport"]["width"]
        assert overflow <= 0, f"{path} is {overflow}px wider than the phone"
        assert csp_violations(page) == [], path
        # A chart wider than the phone starts at today, its right end.
        left_unseen = (
            "Math.max(0, ...[...document.querySelectorAll('.chart')]"
            ".map(c => c.scrollWidth - c.clientWidth - c.scrollLeft))"
        )
        assert page.evaluate(left_unseen) <= 1, path
        screenshot(page, name)
        if path == "/inbox/":  # the list starts on the first screen; the filters but search wait
            row = page.locator(f"#request-{request.public_id}").bounding_box()
            assert row is not None and row["y"] + row["height"] <= phone["viewport"]["height"]
            page.get_by_role("button", name="More filters").click()
            expect(page.get_by_label("Requester")).to_be_visible()
