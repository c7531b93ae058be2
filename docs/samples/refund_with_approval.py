"""A Temporal workflow in another application that asks this app for a person's approval before
it acts, and waits for the decision durably.

The other application (a support system, say) refunds an order only once a person approved that
exact refund. Its workflow:

1. asks, through the API (`POST /api/v1/agent-actions`), with its own workflow id as the
   Idempotency-Key: a retried or replayed ask makes one request, never two;
2. waits in one heartbeating activity that long-polls `GET /api/v1/requests/{id}/wait`. The
   wait survives anything: if the worker dies, the activity's heartbeat times out, Temporal runs
   it again on another worker, and it waits on for the same request. Nothing is held while
   nobody decides (the wait costs this app no thread), and the workflow's history stays a
   handful of events however long the decision takes;
3. if approved, presents the approval token with the exact arguments to
   `POST /api/v1/agent-actions/verify` just before it acts, and acts only on `valid`: the token
   is accepted once, so a retried refund activity cannot refund twice. A reviewer may have
   approved with edits: it refunds what was approved, not what it asked.

Run its worker beside your own (`python refund_with_approval.py`, with APPROVALS_URL,
APPROVALS_API_TOKEN of an account allowed to read and create, and TEMPORAL_ADDRESS), then start
`RefundWithApproval` with a `Refund`. It needs only `temporalio` and `httpx`.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():  # used by the activities only, not re-imported
    import httpx

TASK_QUEUE = "refunds"
SETTLED = {"approved", "rejected", "expired", "withdrawn", "cancelled", "changes_requested"}


@dataclass
class Refund:
    order: str
    amount: str
    reason: str


@dataclass
class Asked:
    request_id: str
    url: str


@dataclass
class Decision:
    status: str
    decided_by: str
    comment: str
    arguments: dict[str, Any] = field(default_factory=dict)
    approval_token: str | None = None


@dataclass
class Outcome:
    refunded: bool
    amount: str
    message: str


# --- Activities: the only code that talks to the approvals app (or refunds anything) --------------


class Approvals:
    """The approvals app's API, as the activities call it."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url, self.token = base_url.rstrip("/"), token

    def _client(self, timeout: float = 30) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"{self.base_url}/api/v1",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=timeout,
        )

    @staticmethod
    def _check(response: httpx.Response) -> dict[str, Any]:
        if response.status_code in (400, 401, 403, 404, 422):  # asking again will not help
            raise ApplicationError(response.text, type=f"http-{response.status_code}", non_retryable=True)
        response.raise_for_status()  # 409, 429, 5xx: retried, with backoff
        data: dict[str, Any] = response.json()
        return data

    @activity.defn
    async def ask_for_approval(self, refund: Refund) -> Asked:
        key = activity.info().workflow_id  # the same for every attempt and every replay
        async with self._client() as api:
            made = await api.post(
                "/agent-actions",
                json={
                    "agent": "refund-workflow",
                    "tool": "payments.refund",
                    "arguments": {"order": refund.order, "amount": refund.amount},
                    "reason": refund.reason,
                    "risk": "high",
                },
                headers={"Idempotency-Key": f"refund:{key}"},
            )
        out = self._check(made)
        return Asked(request_id=out["id"], url=out["url"])

    @activity.defn
    async def wait_for_decision(self, asked: Asked) -> Decision:
        """Long-polls until the request is settled, heartbeating between polls; as long as it takes."""
        poll = int(os.environ.get("APPROVALS_POLL_SECONDS", "60"))
        async with self._client(timeout=poll + 30) as api:
            while True:
                activity.heartbeat(asked.request_id)
                out = self._check(
                    await api.get(f"/requests/{asked.request_id}/wait", params={"timeout": poll})
                )
                if out["status"] in SETTLED:
                    action = out.get("action") or {}
                    return Decision(
                        status=out["status"],
                        decided_by=out["decided_by"],
                        comment=out["decision_comment"],
                        arguments=action.get("arguments", {}),
                        approval_token=out.get("approval_token"),
                    )

    @activity.defn
    async def refund(self, decision: Decision) -> Outcome:
        """Verify the token for exactly these arguments, then refund, once."""
        async with self._client() as api:
            verdict = self._check(
                await api.post(
                    "/agent-actions/verify",
                    json={
                        "token": decision.approval_token,
                        "tool": "payments.refund",
                        "arguments": decision.arguments,
                    },
                )
            )
        if not verdict["valid"]:
            # "used": this activity refunded already, on an attempt whose answer was lost.
            if verdict["code"] == "used":
                return Outcome(True, decision.arguments["amount"], "Refunded (on an earlier attempt).")
            raise ApplicationError(verdict["message"], type=verdict["code"], non_retryable=True)
        # Here the real refund goes, with the order as its idempotency key at the payment provider.
        activity.logger.info(
            "Refunding %s of order %s", decision.arguments["amount"], decision.arguments["order"]
        )
        return Outcome(True, decision.arguments["amount"], f"Refunded, as approved by {decision.decided_by}.")


# --- The workflow: deterministic, no I/O -----------------------------------------------------------

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2, maximum_interval=timedelta(minutes=1)
)


@workflow.defn
class RefundWithApproval:
    @workflow.run
    async def run(self, refund: Refund) -> Outcome:
        asked = await workflow.execute_activity_method(
            Approvals.ask_for_approval,
            refund,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RETRY,
        )
        decision = await workflow.execute_activity_method(
            Approvals.wait_for_decision,
            asked,
            start_to_close_timeout=timedelta(days=30),  # a person decides, or the request expires
            heartbeat_timeout=timedelta(minutes=3),  # a dead worker's wait moves on within this
            retry_policy=RETRY,
        )
        if decision.status != "approved":
            return Outcome(
                False, "0", f"Not refunded: the request was {decision.status}. {decision.comment}".strip()
            )
        return await workflow.execute_activity_method(
            Approvals.refund, decision, start_to_close_timeout=timedelta(seconds=60), retry_policy=RETRY
        )


async def main() -> None:
    client = await Client.connect(os.environ.get("TEMPORAL_ADDRESS", "127.0.0.1:7233"))
    approvals = Approvals(os.environ["APPROVALS_URL"], os.environ["APPROVALS_API_TOKEN"])
    worker = Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[RefundWithApproval],
        activities=[approvals.ask_for_approval, approvals.wait_for_decision, approvals.refund],
    )
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
