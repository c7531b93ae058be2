"""docs/samples/refund_with_approval.py, run as its README says: a Temporal workflow of another
application asks this app for approval through the API and waits for it durably. Its worker is
stopped while it waits and another takes over; a reviewer approves with edits; the workflow
refunds what was approved, once, with the token verified; a rejection refunds nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from approvals.models import ApprovalRequest, RequestType
from approvals.services import tokens
from tests.api.conftest import api_for
from tests.conftest import LiveServer, LoopThread, as_user, wait_until

pytestmark = pytest.mark.temporal_server
SAMPLES = Path(__file__).resolve().parents[2] / "docs" / "samples"


@pytest.fixture
def sample(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(SAMPLES))  # the workflow sandbox imports it by its name too
    monkeypatch.setenv("APPROVALS_POLL_SECONDS", "2")
    import refund_with_approval

    return refund_with_approval


class SampleWorker:
    """The other application's worker, on the test's loop and a task queue of its own."""

    def __init__(self, loop: LoopThread, client: Client, sample: Any, approvals: Any, queue: str) -> None:
        self.loop = loop

        async def make() -> Worker:
            return Worker(
                client,
                task_queue=queue,
                workflows=[sample.RefundWithApproval],
                activities=[approvals.ask_for_approval, approvals.wait_for_decision, approvals.refund],
                graceful_shutdown_timeout=timedelta(seconds=1),
            )

        self.worker = loop.run(make())
        self.task = asyncio.run_coroutine_threadsafe(self.worker.run(), loop.loop)

    def stop(self) -> None:
        self.loop.run(self.worker.shutdown())
        self.task.result(30)


def test_a_temporal_workflow_elsewhere_waits_durably_for_the_approval_and_acts_once_on_it(
    live_app: LiveServer,
    people: dict[str, User],
    agent_type: RequestType,
    loop: LoopThread,
    dev_server_settings: Client,
    sample: Any,
) -> None:
    _, plain = tokens.token_create(user=people["requester"], name="refunds", scopes=["read", "create"])
    approvals = sample.Approvals(live_app.url, plain)
    queue = f"refunds-{uuid.uuid4()}"
    client = dev_server_settings
    first = SampleWorker(loop, client, sample, approvals, queue)
    workflow_id = f"refund-A-1001-{uuid.uuid4()}"
    refund = sample.Refund(order="A-1001", amount="25.00", reason="Charged twice")
    handle: WorkflowHandle[Any, Any] = loop.run(
        client.start_workflow(sample.RefundWithApproval.run, refund, id=workflow_id, task_queue=queue)
    )
    request = wait_until(
        lambda: ApprovalRequest.objects.filter(
            requester=people["requester"], participants__pending=True
        ).first(),
        timeout=30,
        what="the workflow's request to reach its reviewers",
    )
    assert request.tool == "payments.refund" and request.agent_name == "refund-workflow"

    # Its worker goes away while it waits, and another takes the wait over.
    first.stop()
    second = SampleWorker(loop, client, sample, approvals, queue)
    try:
        edited = {"order": "A-1001", "amount": "20.00"}
        approved = as_user(people["reviewer1"]).post(  # approved with edits, on the request's page
            reverse("request_act", args=[request.public_id]),
            {
                "action_id": str(uuid.uuid4()),
                "kind": "approve",
                "action_sha256": request.action_sha256,
                "arguments": json.dumps(edited),
                "comment": "20 was charged twice",
            },
            HTTP_HX_REQUEST="true",
        )
        assert approved.status_code == 200, approved.content
        outcome = loop.run(handle.result(), timeout=60)
        assert outcome.refunded and outcome.amount == "20.00"
        assert outcome.message == "Refunded, as approved by reviewer1."
        assert ApprovalRequest.objects.filter(requester=people["requester"]).count() == 1  # asked once
        request.refresh_from_db()
        assert request.token_use.used_at  # the token was spent, once

        # A rejected one refunds nothing.
        other = loop.run(
            client.start_workflow(
                sample.RefundWithApproval.run,
                sample.Refund(order="A-1002", amount="900.00", reason="Says it never arrived"),
                id=f"refund-A-1002-{uuid.uuid4()}",
                task_queue=queue,
            )
        )
        rejected = wait_until(
            lambda: ApprovalRequest.objects.filter(
                requester=people["requester"], participants__pending=True
            ).first(),
            timeout=30,
            what="the second request",
        )
        api_for(people["reviewer1"]).post(
            f"/requests/{rejected.public_id}/actions", {"kind": "reject", "comment": "Delivered"}
        )
        outcome = loop.run(other.result(), timeout=60)
        assert not outcome.refunded and outcome.message == "Not refunded: the request was rejected. Delivered"
    finally:
        second.stop()
    history = loop.run(handle.fetch_history())
    assert len(history.events) < 40  # however long the wait, a handful of events
    started = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED]
    attempts = [e.activity_task_started_event_attributes.attempt for e in started]
    assert max(attempts) >= 2  # the wait was taken over by the second worker
