"""The integration API as a person meets it, in Chromium: a token made on the settings page and
shown once, the interactive docs under our Content-Security-Policy, and a decision sent through
the API showing live on the requester's open page."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from approvals.models import RequestType
from tests.browser.conftest import csp_violations, log_in, screenshot, submit
from tests.conftest import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.temporal_server]


def test_a_token_made_on_the_settings_page_decides_and_the_requester_sees_it_live(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    request = submit(people, purchase, "Ergonomic keyboard")
    requester = log_in(browser, live_app.url, people["requester"])
    requester.goto(request.get_absolute_url())
    requester.evaluate("window.__noReload = true")

    reviewer = log_in(browser, live_app.url, people["reviewer1"])
    reviewer.get_by_role("link", name="API tokens").click()
    reviewer.get_by_label("Name").fill("Procurement system")
    reviewer.get_by_label("Decide and comment").check()
    reviewer.get_by_role("button", name="Make token").click()
    expect(reviewer.get_by_test_id("new-token")).to_contain_text("shown only this once")
    token = reviewer.get_by_role("textbox", name="Token").input_value()
    assert token.startswith("apv_")
    screenshot(reviewer, "api-token")
    reviewer.reload()
    expect(reviewer.get_by_test_id("tokens")).to_contain_text("Procurement system")
    assert token not in reviewer.content()

    api = reviewer.context.request  # no cookie counts: only the bearer token
    bearer = {"Authorization": f"Bearer {token}"}
    inbox = api.get("/api/v1/inbox", headers=bearer).json()
    assert [i["request"]["title"] for i in inbox["results"]] == ["Ergonomic keyboard"]
    answer = api.post(
        f"/api/v1/requests/{request.public_id}/actions",
        data={"kind": "approve", "comment": "Fine by me"},
        headers={**bearer, "Idempotency-Key": "procurement-1"},
    )
    assert answer.status == 200, answer.text()
    assert answer.json()["outcome"] == "done" and answer.json()["request"]["status"] == "approved"

    expect(requester.locator(".outcome")).to_contain_text("Approved by reviewer1", timeout=15_000)
    expect(requester.locator(".timeline")).to_contain_text("Fine by me")
    assert requester.evaluate("window.__noReload") is True  # pushed live, not reloaded

    docs = log_in(browser, live_app.url, people["requester"])
    docs.goto("/api/v1/docs")
    expect(docs.get_by_text("Create a request")).to_be_visible(timeout=15_000)
    expect(docs.get_by_text("Decide or comment")).to_be_visible()
    assert csp_violations(docs) == []
    screenshot(docs, "api-docs")
