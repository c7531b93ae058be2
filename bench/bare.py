"""Bare Temporal, the benchmark's twin of the app: a trivial workflow that takes one validated
Update, as a request takes one decision, and ends; it waits on a timer meanwhile, as a request
waits on its deadline.

    python bench/bare.py ADDRESS TASK_QUEUE      # a worker for it, in a process of its own
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker


@workflow.defn
class BareDecision:
    def __init__(self) -> None:
        self.decided: dict[str, Any] | None = None

    @workflow.run
    async def run(self, deadline_seconds: int) -> str:
        try:
            await workflow.wait_condition(
                lambda: self.decided is not None, timeout=timedelta(seconds=deadline_seconds)
            )
        except TimeoutError:
            return "expired"
        return "decided"

    @workflow.update
    async def decide(self, payload: dict[str, Any]) -> str:
        self.decided = payload
        return "Recorded."

    @decide.validator
    def _validate(self, payload: dict[str, Any]) -> None:
        if not isinstance(payload, dict) or self.decided is not None:
            raise ValueError("Already decided, or not a decision.")


async def serve(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    async with Worker(client, task_queue=task_queue, workflows=[BareDecision]):
        await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(serve(sys.argv[1], sys.argv[2]))
    except KeyboardInterrupt:
        pass
