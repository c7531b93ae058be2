"""Agents waiting for a decision, against the app under uvicorn: two hundred waits at once hold no
thread each and all hear the decision when it comes (pushed, not polled); and a worker that
restarts while an agent waits loses nothing."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import User
from temporalio.client import Client

from approvals.metrics import WAITING
from approvals.models import ApprovalRequest, RequestType
from approvals.services import tokens
from tests.conftest import LiveServer, LoopThread, RunningWorker, wait_until

pytestmark = pytest.mark.temporal_server
WAITERS = 200
REFUND = {"order": "A-1001", "amount": "25.00"}


def bearer(user: User, scopes: tuple[str, ...] = ("read", "create", "decide")) -> dict[str, str]:
    _, plain = tokens.token_create(user=user, name="agent", scopes=list(scopes))
    return {"Authorization": f"Bearer {plain}"}


def asked(url: str, agent: dict[str, str]) -> ApprovalRequest:
    made = httpx.post(
        f"{url}/api/v1/agent-actions",
        json={"agent": "support-bot", "tool": "payments.refund", "arguments": REFUND, "reason": "Twice"},
        headers=agent,
        timeout=30,
    )
    assert made.status_code == 201, made.text
    request = ApprovalRequest.objects.get(public_id=made.json()["id"])
    wait_until(lambda: request.participants.filter(pending=True).exists(), timeout=30, what="the reviewers")
    request.refresh_from_db()
    return request


def test_two_hundred_waits_hold_no_thread_each_and_all_hear_the_decision_at_once(
    live_app: LiveServer, people: dict[str, User], agent_type: RequestType, settings: Any
) -> None:
    # Nothing looks at the read model again for ten minutes: only the push can wake them.
    settings.AGENT_WAIT_RECHECK_SECONDS = 600
    agent, reviewer = bearer(people["requester"]), bearer(people["reviewer1"])
    request = asked(live_app.url, agent)
    wait_url = f"/api/v1/requests/{request.public_id}/wait"

    async def main() -> tuple[int, int, list[httpx.Response], float]:
        limits = httpx.Limits(max_connections=WAITERS + 20, max_keepalive_connections=WAITERS + 20)
        async with httpx.AsyncClient(base_url=live_app.url, limits=limits, timeout=120) as client:
            warm = await client.get(wait_url, params={"timeout": 0}, headers=agent)
            assert warm.json()["status"] == "in_review"
            threads_before = threading.active_count()
            waits = [
                asyncio.create_task(client.get(wait_url, params={"timeout": 90}, headers=agent))
                for _ in range(WAITERS)
            ]
            deadline = time.monotonic() + 60
            while WAITING._value.get() < WAITERS:  # every one of them is in, waiting
                assert time.monotonic() < deadline, f"only {WAITING._value.get()} waiting"
                await asyncio.sleep(0.2)
            await asyncio.sleep(1)
            threads_waiting = threading.active_count()
            assert not any(w.done() for w in waits)
            decided_at = time.monotonic()
            approved = await client.post(
                f"/api/v1/requests/{request.public_id}/actions", json={"kind": "approve"}, headers=reviewer
            )
            assert approved.status_code == 200, approved.text
            answers = await asyncio.gather(*waits)
            return threads_before, threads_waiting, answers, time.monotonic() - decided_at

    threads_before, threads_waiting, answers, took = asyncio.run(main())
    # The web's shared pool (a handful of threads) at most: not one thread per wait.
    assert threads_waiting - threads_before < 20, (threads_before, threads_waiting)
    assert [a.status_code for a in answers] == [200] * WAITERS
    assert {a.json()["status"] for a in answers} == {"approved"}
    assert len({a.json()["approval_token"] for a in answers}) == 1
    assert took < 20, took  # heard at once, long before any wait's timeout or look again
    assert WAITING._value.get() == 0


def test_a_worker_restarting_while_an_agent_waits_loses_nothing(
    transactional_db: None,
    loop: LoopThread,
    dev_server_settings: Client,
    settings: Any,
    people: dict[str, User],
    agent_type: RequestType,
) -> None:
    settings.AGENT_WAIT_RECHECK_SECONDS = 1  # the worker runs apart, on the test's own loop
    worker = RunningWorker(loop, dev_server_settings, task_queue=settings.TEMPORAL_TASK_QUEUE)
    server = LiveServer()
    try:
        agent, reviewer = bearer(people["requester"]), bearer(people["reviewer1"])
        request = asked(server.url, agent)
        waited: list[httpx.Response] = []
        waiting = threading.Thread(
            target=lambda: waited.append(
                httpx.get(
                    f"{server.url}/api/v1/requests/{request.public_id}/wait",
                    params={"timeout": 120},
                    headers=agent,
                    timeout=150,
                )
            )
        )
        waiting.start()
        wait_until(lambda: WAITING._value.get() == 1, what="the agent to wait")
        worker.stop()  # the worker goes away while the agent waits, and the reviewer decides
        key = {"Idempotency-Key": "approve-refund-A-1001", **reviewer}
        act = f"{server.url}/api/v1/requests/{request.public_id}/actions"
        first = httpx.post(act, json={"kind": "approve"}, headers=key, timeout=30)
        assert first.status_code in (200, 202), first.text
        worker = RunningWorker(loop, dev_server_settings, task_queue=settings.TEMPORAL_TASK_QUEUE)
        # Sent again with its key, as the API asks of a pending answer: it counts once.
        again = httpx.post(act, json={"kind": "approve"}, headers=key, timeout=30)
        assert again.status_code == 200 and again.json()["request"]["status"] == "approved", again.text
        waiting.join(60)
        assert not waiting.is_alive()
        [answer] = waited
        out = answer.json()
        assert out["status"] == "approved" and out["decided_by"] == "reviewer1"
        verified = httpx.post(
            f"{server.url}/api/v1/agent-actions/verify",
            json={"token": out["approval_token"], "tool": "payments.refund", "arguments": REFUND},
            headers=agent,
            timeout=30,
        )
        assert verified.json()["valid"] is True
        assert request.events.filter(kind="approval").count() == 1
    finally:
        server.stop()
        worker.stop()
