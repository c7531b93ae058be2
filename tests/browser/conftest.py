"""Browser tests: Debian's Chromium driven by Playwright, against the app under uvicorn.

The app runs in a thread of the test process (so it sees the test database) with a real Temporal
dev server and the worker on its event loop. CI installs Chromium and sets REQUIRE_BROWSER=1, so
there a missing browser fails the run instead of skipping.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from approvals import services
from approvals.models import ApprovalRequest, RequestType
from tests.conftest import PASSWORD, wait_until

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

BROWSER_MISSING = not Path(CHROMIUM).exists()
if BROWSER_MISSING and os.environ.get("REQUIRE_BROWSER") == "1":
    raise RuntimeError(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if BROWSER_MISSING and item.path.parent == Path(__file__).parent:
            item.add_marker(pytest.mark.skip(reason=f"{CHROMIUM} is not installed (CI installs it)"))


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


class Watch:
    """What went wrong on one page, as its person would see it in the browser's console: console
    errors (CSP violations among them), uncaught page errors, failed requests and 4xx/5xx answers.
    Every browser test fails on any of them (`pytest_runtest_call` below) unless it said it
    expects that status (`expect_status`)."""

    def __init__(self, page: Any) -> None:
        self.problems: list[str] = []
        self.csp: list[str] = []
        self.expected: set[int] = set()
        self.expected_console: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught error: {error}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._answered)

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text:
            self.csp.append(message.text)
        if message.type != "error":
            return
        # Chromium also logs each 4xx/5xx answer; an expected one is no problem.
        if any(f"status of {status} " in message.text for status in self.expected):
            return
        if any(text in message.text for text in self.expected_console):
            return
        self.problems.append(f"console error: {message.text}")

    def _failed(self, request: Any) -> None:
        # A request cut short because the page moved on is not a fault.
        if request.failure != "net::ERR_ABORTED":
            self.problems.append(f"request failed: {request.method} {request.url}: {request.failure}")

    def _answered(self, response: Any) -> None:
        if response.status >= 400 and response.status not in self.expected:
            self.problems.append(f"answered {response.status}: {response.request.method} {response.url}")


WATCHES: dict[Any, Watch] = {}


def csp_violations(page: Any) -> list[str]:
    """What the browser refused on this page because of the Content-Security-Policy."""
    return WATCHES[page].csp


def expect_status(page: Any, *statuses: int) -> None:
    """This test expects answers with these statuses on this page (a refusal, a 404)."""
    WATCHES[page].expected.update(statuses)


def expect_console_errors(page: Any, *texts: str) -> None:
    """This test expects console errors with these texts on this page (the server it talks to
    going away, say)."""
    WATCHES[page].expected_console.extend(texts)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Fail a browser test on anything its pages logged as wrong (see Watch)."""
    WATCHES.clear()
    result = yield
    problems = [problem for watch in WATCHES.values() for problem in watch.problems]
    WATCHES.clear()
    if problems:
        pytest.fail("The browser saw problems:\n" + "\n".join(problems), pytrace=False)
    return result


def log_in(browser: Any, base_url: str, user: User, **context: Any) -> Any:
    page = browser.new_context(base_url=base_url, **context).new_page()
    WATCHES[page] = Watch(page)
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base_url + "/")
    return page


def open_row(row: Any) -> None:
    """Open an inbox row, as a person clicks "Decide": its decision controls show."""
    row.get_by_role("button", name="Decide").click()


def submit(
    people: dict[str, User], request_type: RequestType, title: str, amount: int = 100
) -> ApprovalRequest:
    """A request submitted by the requester, once its first stage has asked its approvers."""
    request = services.request_submit(
        requester=people["requester"], request_type=request_type, title=title, amount=amount
    )
    wait_until(lambda: request.participants.filter(pending=True).exists(), what=f"{title} assigned")
    request.refresh_from_db()
    return request


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
