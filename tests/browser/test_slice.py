"""The vertical slice in a real browser: Debian's Chromium driven by Playwright.

Two people in two browser contexts against the app served by uvicorn, a real Temporal dev
server and the worker. CI installs Chromium and sets REQUIRE_BROWSER=1, so there a missing
browser fails the run instead of skipping.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from django.contrib.auth.models import User

from approvals.models import ApprovalRequest, RequestStatus, RequestType
from tests.conftest import PASSWORD, free_port, wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = Path(
    os.environ.get("SCREENSHOT_DIR", Path(__file__).resolve().parents[2] / "data" / "screenshots")
)

if not Path(CHROMIUM).exists():
    if os.environ.get("REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)")
    pytest.skip(f"{CHROMIUM} is not installed (CI installs it)", allow_module_level=True)

pytestmark = [pytest.mark.browser, pytest.mark.temporal_server]


class LiveServer:
    """The ASGI app under uvicorn in a thread of the test process, so it sees the test database."""

    def __init__(self) -> None:
        from approvals.asgi import application

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            application, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="live-server", daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started, what="uvicorn to start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def live_app(use_dev_server: Any, settings: Any) -> Iterator[LiveServer]:
    settings.TEMPORAL_WORKER_IN_WEB = True
    settings.TEMPORAL_TASK_QUEUE = f"browser-{uuid.uuid4()}"  # served by this server's worker only
    server = LiveServer()
    settings.SITE_URL = server.url
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread; the ORM calls the tests make
    # here are still plain synchronous calls (pytest-django documents this setting for it).
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


def log_in(browser: Any, base_url: str, user: User) -> Any:
    page = browser.new_context(base_url=base_url).new_page()
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base_url + "/")
    return page


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def test_submit_then_approve_in_the_inbox_then_requester_sees_it_without_reload(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    reviewer = log_in(browser, live_app.url, people["reviewer1"])
    reviewer.get_by_role("link", name="Inbox").click()
    expect(reviewer.get_by_text("Nothing to review.")).to_be_visible()
    requester = log_in(browser, live_app.url, people["requester"])
    # Mark both pages: a full reload would lose the mark.
    for page in (reviewer, requester):
        page.evaluate("window.__noReload = true")

    requester.get_by_role("link", name="New request").first.click()
    # A bad submission shows the field's error and starts nothing.
    requester.get_by_role("button", name="Submit for approval").click()
    expect(requester.locator("#id_title-error")).to_have_text("This field is required.")
    assert ApprovalRequest.objects.count() == 0

    requester.get_by_label("Request type").select_option(label="Purchase")
    requester.get_by_label("Title").fill("Ergonomic keyboard")
    requester.get_by_label("Amount").fill("129.90")
    requester.get_by_role("button", name="Submit for approval").click()
    expect(requester.get_by_text("submitted and waiting for review")).to_be_visible()
    request = ApprovalRequest.objects.get()
    expect(requester.get_by_test_id("live-status")).to_have_text("In review")
    requester.evaluate("window.__noReload = true")  # the submission itself loaded this page
    screenshot(requester, "request-detail")

    # The new request appears in the reviewer's open inbox, live.
    row = reviewer.locator(f"#request-{request.public_id}")
    expect(row).to_contain_text("Ergonomic keyboard", timeout=15_000)
    expect(row.get_by_role("button", name="Approve")).to_be_visible()
    assert reviewer.evaluate("window.__noReload") is True
    screenshot(reviewer, "inbox")

    row.get_by_label("Comment", exact=False).fill("Good for your wrists")
    row.get_by_role("button", name="Approve").click()
    # The answer to the POST says "Stage “Review” is approved."; the live push that may follow
    # it says who approved. Either way the row shows the outcome.
    expect(row.locator(".badge")).to_have_text("Approved")
    assert reviewer.evaluate("window.__noReload") is True

    wait_until(
        lambda: ApprovalRequest.objects.get(pk=request.pk).status == RequestStatus.APPROVED, what="approved"
    )
    expect(requester.locator(".outcome")).to_contain_text("Approved by reviewer1", timeout=15_000)
    expect(requester.locator(".outcome")).to_contain_text("Good for your wrists")
    assert requester.evaluate("window.__noReload") is True
    screenshot(requester, "request-approved")


def test_reviewer_is_told_why_a_rejection_without_comment_is_refused(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    from approvals import services

    request = services.request_submit(
        requester=people["requester"], request_type=purchase, title="Team offsite"
    )
    reviewer = log_in(browser, live_app.url, people["reviewer2"])
    reviewer.goto(request.get_absolute_url())
    box = reviewer.locator(f"#actions-{request.public_id}")
    box.get_by_role("button", name="Reject").click()
    expect(box.locator(f"#action-error-{request.public_id}")).to_have_text(
        "A comment is required to reject or to request changes."
    )
    box.get_by_label("Comment", exact=False).first.fill("Budget is frozen")
    box.get_by_role("button", name="Reject").click()
    expect(box).to_contain_text("The request is rejected.")
    wait_until(
        lambda: ApprovalRequest.objects.get(pk=request.pk).status == RequestStatus.REJECTED, what="rejected"
    )
