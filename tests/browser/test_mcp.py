"""An agent puts a person in the loop through the MCP server with no code of its own: over
streamable HTTP and over stdio (`manage.py mcp`), the mcp SDK's client asks, waits with
progress, a reviewer decides in the browser, and the agent gets its token and verifies it once."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from django.contrib.auth.models import User

from approvals.models import ApprovalRequest, RequestType
from approvals.services import tokens
from tests.browser.conftest import log_in, screenshot
from tests.conftest import LiveServer, LoopThread, wait_until
from tests.mcp_agent import over_http, over_stdio, stdio_environment, structured

pytestmark = [pytest.mark.browser, pytest.mark.temporal_server]
REFUND = {"order": "A-1001", "amount": "25.00"}
SMALLER = {"order": "A-1001", "amount": "20.00"}


def agent_story(
    connect: Callable[[], AbstractAsyncContextManager[Any]], heard: threading.Event, progress: list[str]
) -> Any:
    """The agent: ask, wait (telling `heard` once progress comes), then verify what it got."""

    async def story() -> dict[str, Any]:
        async with connect() as client:

            async def on_progress(done: float, total: float | None, message: str | None) -> None:
                progress.append(message or "")
                heard.set()

            asked = await client.call_tool(
                "request_approval",
                {
                    "action": "payments.refund",
                    "arguments": REFUND,
                    "reason": "The customer was charged twice",
                    "risk": "high",
                    "agent": "support-bot",
                    "wait_seconds": 120,
                },
                progress_callback=on_progress,
            )
            out = structured(asked)
            verify = {"approval_token": out["approval_token"], "action": "payments.refund"}
            proposed = await client.call_tool("verify_approval", {**verify, "arguments": REFUND})
            approved = await client.call_tool("verify_approval", {**verify, "arguments": out["arguments"]})
            again = await client.call_tool("verify_approval", {**verify, "arguments": out["arguments"]})
            status = await client.call_tool("approval_status", {"request_id": out["request_id"]})
            return {
                "out": out,
                "proposed": structured(proposed),
                "approved": structured(approved),
                "again": structured(again),
                "status": structured(status),
            }

    return story()


def waiting_request(user: User) -> ApprovalRequest:
    return wait_until(
        lambda: ApprovalRequest.objects.filter(requester=user, participants__pending=True).first(),
        timeout=30,
        what="the agent's request to reach its reviewers",
    )


@pytest.mark.parametrize("transport", ["http", "stdio"])
def test_an_agent_waits_over_mcp_while_a_reviewer_decides_in_the_browser_then_verifies_once(
    transport: str,
    browser: Any,
    live_app: LiveServer,
    people: dict[str, User],
    agent_type: RequestType,
    loop: LoopThread,
    settings: Any,
) -> None:
    from playwright.sync_api import expect

    settings.MCP_PROGRESS_SECONDS = 1
    _, plain = tokens.token_create(user=people["requester"], name="agent", scopes=["read", "create"])
    if transport == "http":
        connect: Callable[[], AbstractAsyncContextManager[Any]] = lambda: over_http(live_app.url, plain)  # noqa: E731
    else:
        # Its own process: without Redis it hears no push from the web's worker, so it looks again
        # each second.
        environment = stdio_environment(
            settings, plain, MCP_PROGRESS_SECONDS="1", AGENT_WAIT_RECHECK_SECONDS="1"
        )
        connect = lambda: over_stdio(environment)  # noqa: E731
    heard, progress = threading.Event(), []
    agent = asyncio.run_coroutine_threadsafe(agent_story(connect, heard, progress), loop.loop)

    request = waiting_request(people["requester"])
    assert heard.wait(60), "no progress while the agent waits"
    reviewer = log_in(browser, live_app.url, people["reviewer1"])
    reviewer.goto(request.get_absolute_url())
    action = reviewer.get_by_test_id("agent-action")
    expect(action.get_by_test_id("agent")).to_have_text("support-bot")
    expect(action.get_by_test_id("sha256")).to_have_text(request.action_sha256)
    assert json.loads(action.get_by_test_id("arguments").inner_text()) == REFUND
    actions = reviewer.locator("section[id^=actions-]")
    if transport == "http":
        actions.get_by_label("Comment").first.fill("Refund it")
        actions.get_by_role("button", name="Approve", exact=True).click()
    else:  # approve with edits: the token will hold for the reviewer's arguments only
        actions.get_by_text("Approve with edits").click()
        actions.get_by_label("Arguments").fill(json.dumps(SMALLER, indent=2))
        actions.locator("input[id^=edit-comment-]").fill("20 is what was charged twice")
        actions.get_by_role("button", name="Approve with these arguments").click()
    expect(reviewer.get_by_test_id("live-status")).to_have_text("Approved", timeout=30_000)
    screenshot(reviewer, f"agent-action-approved-{transport}")

    story = agent.result(timeout=90)
    out = story["out"]
    assert out["decision"] == "approved" and out["decided_by"] == "reviewer1"
    assert out["approval_token"] and out["approval_token_expires_at"]
    assert out["request_id"] == str(request.public_id)
    assert any("reviewer1" in message for message in progress)
    if transport == "http":
        assert out["comment"] == "Refund it" and out["arguments"] == REFUND and not out["edited"]
        assert story["proposed"]["valid"] is True  # the proposed arguments are the approved ones
        assert story["approved"]["code"] == "used"
    else:
        assert out["comment"] == "20 is what was charged twice"
        assert out["arguments"] == SMALLER and out["edited"]
        assert "with edits" in out["message"]
        assert story["proposed"]["code"] == "arguments_differ"
        assert story["approved"]["valid"] is True
    assert story["again"]["valid"] is False and story["again"]["code"] == "used"
    assert story["status"]["decision"] == "approved"
    reviewer.reload()
    expect(reviewer.get_by_test_id("token-used")).to_contain_text("Used at")
