"""Agent actions end to end on the dev server: an agent asks through the API, waits without
polling, gets a token for its exact arguments and presents it once; reviewers approve as they
read it, or with edits; policies trust an agent or ask two people; silence means no."""

from __future__ import annotations

import concurrent.futures
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse
from temporalio.client import Client as TemporalClient

from approvals.models import ApprovalRequest, RequestEvent, RequestType, Stage, WebhookSubscriber
from approvals.services import agents, subscriber_save
from tests.api.conftest import Api, api_for, problem
from tests.conftest import RunningWorker, WebhookListener, as_user, wait_until
from workflows import rules

pytestmark = pytest.mark.temporal_server

REFUND = {"order": "A-1001", "amount": "25.00"}


@pytest.fixture(autouse=True)
def hear_soon(settings: Any) -> None:
    """The worker here runs on the test's own event loop, which the in-memory channel layer does
    not reach from the web's: waits look again each second (with Redis, as in CI and production,
    the push itself wakes them)."""
    settings.AGENT_WAIT_RECHECK_SECONDS = 1


def ask(agent: Api, **fields: Any) -> dict[str, Any]:
    body = {"agent": "support-bot", "tool": "payments.refund", "arguments": REFUND, "reason": "Charged twice"}
    made = agent.post("/agent-actions", {**body, **fields})
    assert made.status_code == 201, made.content
    out: dict[str, Any] = made.json()
    return out


def assigned(public_id: str) -> ApprovalRequest:
    request = ApprovalRequest.objects.get(public_id=public_id)
    wait_until(lambda: request.participants.filter(pending=True).exists(), what="the stage's approvers")
    request.refresh_from_db()
    return request


def test_an_agent_asks_waits_and_acts_once_with_a_token_for_its_exact_arguments(
    use_dev_server: TemporalClient,
    webhook_worker: RunningWorker,
    listener: WebhookListener,
    people: dict[str, User],
    agent_type: RequestType,
) -> None:
    subscriber = subscriber_save(
        subscriber=None,
        url=listener.url,
        description="The agent's framework",
        events=[WebhookSubscriber.Event.DECIDED],
        is_active=True,
        by=people["admin"],
    )
    agent = api_for(people["requester"])
    asked = ask(agent, risk="high")
    request = assigned(asked["id"])
    sha = asked["action"]["sha256"]

    started = time.monotonic()
    timed_out = agent.get(f"/requests/{request.public_id}/wait", timeout=1)
    assert timed_out.status_code == 200 and timed_out.json()["status"] == "in_review"
    assert 1 <= time.monotonic() - started < 5
    assert timed_out.json()["approval_token"] is None
    problem(agent.get(f"/requests/{request.public_id}/wait", timeout=1, timout=2), 422, "unknown_parameter")
    problem(
        api_for(people["outsider"]).get(f"/requests/{request.public_id}/wait", timeout=1), 404, "not_found"
    )

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(agent.get, f"/requests/{request.public_id}/wait", timeout=60)
        time.sleep(1)
        assert not waiting.done()
        reviewer = api_for(people["reviewer1"])
        stale = reviewer.post(
            f"/requests/{request.public_id}/actions", {"kind": "approve", "action_sha256": "f" * 64}
        )
        assert problem(stale, 409, "refused")["detail"] == rules.ACTION_CHANGED
        decided_at = time.monotonic()
        approved = reviewer.post(
            f"/requests/{request.public_id}/actions",
            {"kind": "approve", "comment": "Refund it", "action_sha256": sha},
        )
        assert approved.status_code == 200, approved.content
        answer = waiting.result(timeout=30)
    assert time.monotonic() - decided_at < 10  # at once, not at the wait's timeout
    out = answer.json()
    assert out["status"] == "approved" and out["decision_comment"] == "Refund it"
    token = out["approval_token"]
    assert token and out["approval_token_expires_at"]

    tool = api_for(people["manager"], ["read"])  # the tool it calls checks, with a token of its own
    other = tool.post(
        "/agent-actions/verify",
        {"token": token, "tool": "payments.refund", "arguments": {**REFUND, "amount": "2500.00"}},
    )
    assert other.json()["valid"] is False and other.json()["code"] == "arguments_differ"
    yes = tool.post("/agent-actions/verify", {"token": token, "tool": "payments.refund", "arguments": REFUND})
    assert yes.json() == {
        "valid": True,
        "code": "approved",
        "message": "Approved: go ahead, once.",
        "request": str(request.public_id),
        "sha256": sha,
    }
    again = tool.post(
        "/agent-actions/verify", {"token": token, "tool": "payments.refund", "arguments": REFUND}
    )
    assert again.json()["valid"] is False and again.json()["code"] == "used"

    # The decision went out as a webhook too, naming the exact action (never its token).
    wait_until(lambda: listener.ids(), timeout=30, what="the decision's webhook")
    [event] = listener.events(subscriber.secret)
    assert event["type"] == "request.decided"
    assert event["data"]["request"]["status"] == "approved"
    assert event["data"]["request"]["action"] == {
        "agent": "support-bot",
        "tool": "payments.refund",
        "risk": "high",
        "sha256": sha,
    }
    assert token not in json.dumps(event)


def test_a_reviewer_approves_with_edits_in_the_browser_and_the_token_holds_for_those_only(
    use_dev_server: TemporalClient, people: dict[str, User], agent_type: RequestType
) -> None:
    agent = api_for(people["requester"])
    asked = ask(agent)
    request = assigned(asked["id"])
    smaller = {"order": "A-1001", "amount": "20.00"}
    browser = as_user(people["reviewer2"])
    answer = browser.post(
        reverse("request_act", args=[request.public_id]),
        {
            "action_id": "0d7c8a52-0b55-4bb1-9d6c-5a1c25a2d7c1",
            "kind": "approve",
            "action_sha256": asked["action"]["sha256"],
            "arguments": json.dumps(smaller, indent=2),
            "comment": "20 is what was charged twice",
        },
        HTTP_HX_REQUEST="true",
    )
    assert answer.status_code == 200, answer.content
    out = agent.get(f"/requests/{request.public_id}/wait", timeout=10).json()
    assert out["status"] == "approved" and out["revision"] == 2
    assert out["action"]["arguments"] == smaller
    assert [(v["revision"], v["proposed_by"]) for v in out["action"]["versions"]] == [
        (1, ""),
        (2, "reviewer2"),
    ]
    edited = RequestEvent.objects.get(request=request, kind="action_edited")
    assert edited.actor == people["reviewer2"] and edited.revision == 2
    assert out["action"]["sha256"][:12] in edited.detail

    token = out["approval_token"]
    as_asked = agent.post(
        "/agent-actions/verify", {"token": token, "tool": "payments.refund", "arguments": REFUND}
    )
    assert as_asked.json()["code"] == "arguments_differ"
    as_edited = agent.post(
        "/agent-actions/verify", {"token": token, "tool": "payments.refund", "arguments": smaller}
    )
    assert as_edited.json()["valid"] is True


def test_a_trusted_agent_s_low_risk_action_passes_by_itself_and_a_destructive_one_needs_two(
    use_dev_server: TemporalClient, people: dict[str, User], agent_type: RequestType
) -> None:
    Group.objects.get(name="Trusted agents").user_set.add(people["requester"])
    agent = api_for(people["requester"])
    low = ask(agent, tool="email.send", arguments={"to": "a@example.com"}, risk="low")
    out = agent.get(f"/requests/{low['id']}/wait", timeout=20).json()
    assert out["status"] == "approved" and out["decided_by"] == "policy"
    assert out["decision_comment"].startswith("Approved automatically: the policy trusts requester")
    assert out["approval_token"]
    request = ApprovalRequest.objects.get(public_id=low["id"])
    assert not request.participants.exists()  # nobody was asked
    audit = RequestEvent.objects.get(request=request, kind="stage_approved")
    assert audit.stage == "Low risk" and "trusts requester" in audit.detail

    drop = ask(agent, tool="db.drop_table", arguments={"table": "sessions"}, risk="high")
    request = assigned(drop["id"])
    sha = drop["action"]["sha256"]
    api_for(people["reviewer1"]).post(
        f"/requests/{drop['id']}/actions", {"kind": "approve", "action_sha256": sha}
    )
    wait_until(
        lambda: ApprovalRequest.objects.get(pk=request.pk).stage_name == "Two people", what="the second stage"
    )
    assigned(drop["id"])
    first = api_for(people["reviewer1"]).post(f"/requests/{drop['id']}/actions", {"kind": "approve"})
    assert first.json()["message"] == "Your approval is recorded (1 of 2)."
    assert agent.get(f"/requests/{drop['id']}/wait", timeout=0).json()["approval_token"] is None
    second = api_for(people["manager"]).post(f"/requests/{drop['id']}/actions", {"kind": "approve"})
    assert second.json()["request"]["status"] == "approved"


def test_an_unanswered_action_expires_and_expiry_means_no(
    use_dev_server: TemporalClient, people: dict[str, User], agent_type: RequestType
) -> None:
    Stage.objects.filter(request_type=agent_type, name="Review").update(deadline=timedelta(seconds=2))
    agent = api_for(people["requester"])
    asked = ask(agent)
    out = agent.get(f"/requests/{asked['id']}/wait", timeout=30).json()
    assert out["status"] == "expired" and out["approval_token"] is None
    assert agents.approval_token(ApprovalRequest.objects.get(public_id=asked["id"])) is None
