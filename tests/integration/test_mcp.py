"""The MCP server's edges, driven by the mcp SDK's client against the app under uvicorn: who may
call it, what a bad call is told, an answer that is not known yet, and a call made twice."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from approvals.models import ApiToken, ApiTokenUse, ApprovalRequest, RequestType
from approvals.services import tokens
from tests.conftest import LiveServer, LoopThread
from tests.mcp_agent import over_http, structured

pytestmark = pytest.mark.temporal_server
REFUND = {"order": "A-1001", "amount": "25.00"}


def token_of(user: User, *scopes: str) -> str:
    _, plain = tokens.token_create(user=user, name="mcp", scopes=list(scopes or ("read", "create")))
    return plain


def test_mcp_over_http_needs_a_usable_token_and_its_scope(
    live_app: LiveServer, people: dict[str, User], agent_type: RequestType, loop: LoopThread
) -> None:
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    for headers in ({}, {"Authorization": "Bearer apv_nothing"}, {"Authorization": "Basic eDp5"}):
        refused = httpx.post(f"{live_app.url}/mcp", json=initialize, headers=headers, timeout=10)
        assert refused.status_code == 401, refused.text
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "API token" in refused.json()["error"]
    elsewhere = httpx.post(
        f"{live_app.url}/mcp", json=initialize, headers={"Host": "evil.example"}, timeout=10
    )
    assert elsewhere.status_code == 400

    read_only = token_of(people["requester"], "read")

    async def agent() -> Any:
        async with over_http(live_app.url, read_only) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            asked = await client.call_tool(
                "request_approval",
                {"action": "payments.refund", "arguments": REFUND, "reason": "Charged twice"},
            )
            return names, asked

    names, asked = loop.run(agent())
    assert names == {"request_approval", "approval_status", "verify_approval"}
    assert asked.is_error
    assert "may not create" in asked.content[0].text
    assert not ApprovalRequest.objects.exists()
    uses = ApiTokenUse.objects.filter(token__prefix=read_only[:12])
    assert uses.filter(path="/mcp request_approval", status=403).exists()


def test_mcp_says_what_is_wrong_answers_pending_when_undecided_and_asks_once_per_key(
    live_app: LiveServer, people: dict[str, User], agent_type: RequestType, loop: LoopThread, settings: Any
) -> None:
    settings.MCP_PROGRESS_SECONDS = 0.5
    plain = token_of(people["requester"])
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async def agent() -> Any:
        async with over_http(live_app.url, plain) as client:
            bad = await client.call_tool(
                "request_approval", {"action": "refund everything!", "arguments": {}, "reason": "x"}
            )
            risky = await client.call_tool(
                "request_approval",
                {"action": "payments.refund", "arguments": REFUND, "reason": "x", "risk": "extreme"},
            )
            ask = {
                "action": "payments.refund",
                "arguments": REFUND,
                "reason": "Charged twice",
                "idempotency_key": "order-A-1001",
                "wait_seconds": 2,
            }
            first = await client.call_tool("request_approval", ask, progress_callback=on_progress)
            again = await client.call_tool("request_approval", {**ask, "wait_seconds": 0})
            other = await client.call_tool(
                "request_approval", {**ask, "arguments": {**REFUND, "amount": "99.00"}}
            )
            request_id = structured(first)["request_id"]
            looked = await client.call_tool("approval_status", {"request_id": request_id})
            nobody = await client.call_tool(
                "approval_status", {"request_id": "00000000-0000-4000-8000-000000000000"}
            )
            forged = await client.call_tool(
                "verify_approval",
                {"approval_token": "apt_forged", "action": "payments.refund", "arguments": REFUND},
            )
            return bad, risky, first, again, other, looked, nobody, forged

    bad, risky, first, again, other, looked, nobody, forged = loop.run(agent())
    assert bad.is_error and "A tool's name is 1 to 100 letters" in bad.content[0].text
    assert risky.is_error and "A risk is one of" in risky.content[0].text

    pending = structured(first)
    assert pending["decision"] == "pending" and pending["status"] == "in_review"
    assert pending["approval_token"] is None
    assert pending["message"].startswith("Not decided yet")
    assert pending["arguments"] == REFUND and len(pending["sha256"]) == 64
    # Progress while it waited, every half second, naming who is asked.
    assert len(progress) >= 2
    assert all(total == 2 for _, total, _ in progress)
    assert [done for done, _, _ in progress] == sorted(done for done, _, _ in progress)
    assert any("reviewer1" in (message or "") for _, _, message in progress)

    assert structured(again)["request_id"] == pending["request_id"]  # the same key asks once
    assert ApprovalRequest.objects.count() == 1
    assert other.is_error and "idempotency_key was used for another action" in other.content[0].text
    assert structured(looked)["decision"] == "pending"
    assert nobody.is_error and "no such request" in nobody.content[0].text
    assert structured(forged)["valid"] is False and structured(forged)["code"] == "not_a_token"

    assert ApprovalRequest.objects.get().agent_name == "mcp"  # the client's own name, when none is given


def test_manage_py_mcp_refuses_to_start_without_a_usable_token(
    people: dict[str, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APPROVALS_API_TOKEN", raising=False)
    with pytest.raises(CommandError, match="Set APPROVALS_API_TOKEN"):
        call_command("mcp")
    plain = token_of(people["requester"])
    tokens.token_revoke(token_id=ApiToken.objects.get(prefix=plain[:12]).pk, by=people["requester"])
    monkeypatch.setenv("APPROVALS_API_TOKEN", plain)
    with pytest.raises(CommandError, match="is not usable"):
        call_command("mcp")
