"""Accessibility: axe-core (vendored from the npm registry, for the tests only) finds no serious or
critical violation on any main page, on a desktop (light and dark) and on a phone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from approvals import services
from approvals.models import RequestType
from tests.browser.conftest import log_in, screenshot, submit
from tests.conftest import LiveServer, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.temporal_server]

AXE = Path(__file__).parent / "vendor" / "axe-core-4.14.1.min.js"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
SIZES = {"desktop": DESKTOP, "phone": PHONE, "desktop, dark": {**DESKTOP, "color_scheme": "dark"}}


def serious_violations(page: Any) -> list[str]:
    """What axe finds serious or critical on the page as it stands, one line each."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())  # through the DevTools protocol: the page's CSP does not apply
    found = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [
        f"{v['id']} ({v['impact']}): {v['help']}: " + "; ".join(n["target"][0] for n in v["nodes"][:5])
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize("size", SIZES)
def test_the_main_pages_have_no_serious_accessibility_violation(
    browser: Any,
    live_app: LiveServer,
    people: dict[str, User],
    purchase: RequestType,
    agent_type: RequestType,
    size: str,
) -> None:
    subscriber = services.subscriber_save(
        subscriber=None,
        url="https://erp.example.com/hooks",
        description="ERP",
        events=["request.submitted"],
        is_active=True,
        by=people["admin"],
    )
    request = submit(people, purchase, "Accessible chair")  # and its webhook delivery, in the log
    action = services.agent_action_submit(
        requester=people["requester"],
        request_type=agent_type,
        agent="support-bot",
        tool="payments.refund",
        arguments={"order": "A-1001", "amount": "25.00"},
        reason="Charged twice",
    )
    wait_until(lambda: action.participants.filter(pending=True).exists(), what="the action's reviewers")
    pages = {
        "reviewer1": ["/inbox/", "/inbox/reviews/", request.get_absolute_url(), action.get_absolute_url()],
        "requester": ["/", "/requests/new/", request.get_absolute_url(), "/settings/tokens/"],
        "admin": [
            "/dashboard/",
            "/mailbox/",
            "/budgets/",
            "/dashboard/campaigns/",
            "/dashboard/webhooks/",
            subscriber.get_absolute_url(),
        ],
    }
    problems = []
    for who, paths in pages.items():
        page = log_in(browser, live_app.url, people[who], **SIZES[size])
        for path in paths:
            page.goto(path)
            page.wait_for_load_state("networkidle")
            if path == action.get_absolute_url():  # its exact arguments, and the form to edit them
                page.get_by_text("Approve with edits").click()
            problems += [f"{path} as {who}: {line}" for line in serious_violations(page)]
        if who == "reviewer1" and size == "desktop, dark":
            screenshot(page, "dark-request")
    login = browser.new_context(base_url=live_app.url, **SIZES[size]).new_page()
    login.goto("/accounts/login/")
    problems += [f"login: {line}" for line in serious_violations(login)]
    assert problems == [], "\n".join(problems)
