"""Builds the worker, and runs it beside the outbox relay until told to stop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from temporalio.client import Client
from temporalio.worker import Worker

from workflows import activities
from workflows.approval import ApprovalWorkflow
from workflows.types import INTERACTIVE_TASK_QUEUE

logger = logging.getLogger(__name__)

SHUTDOWN_GRACE = timedelta(seconds=10)
ACTIVITIES = [activities.resolve_approvers, activities.project_state, activities.send_notification]


def build_worker(
    client: Client,
    executor: concurrent.futures.ThreadPoolExecutor,
    task_queue: str = INTERACTIVE_TASK_QUEUE,
    activities: Sequence[Callable[..., Any]] = ACTIVITIES,
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[ApprovalWorkflow],
        activities=activities,
        activity_executor=executor,
        max_concurrent_activities=executor._max_workers,
        # On shutdown, activities under way finish rather than stop halfway (they take seconds;
        # a cancelled one would be retried by the next worker anyway, but a finished one is done).
        graceful_shutdown_timeout=SHUTDOWN_GRACE,
    )


async def relay_outbox(stop: asyncio.Event, interval: float) -> None:
    """Start workflows for requests saved while Temporal was unreachable."""
    from django.db import close_old_connections

    from approvals import services

    def start_pending_round() -> int:
        close_old_connections()
        try:
            return services.requests_start_pending()
        finally:
            close_old_connections()

    start_pending = sync_to_async(start_pending_round, thread_sensitive=False)
    while not stop.is_set():
        try:
            started = await start_pending()
            if started:
                logger.info("Started %d workflow(s) from the outbox", started)
        except Exception:
            logger.exception("Outbox relay round failed; retrying")
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass


async def run_until_stopped(
    client: Client, stop: asyncio.Event, outbox_interval: float, task_queue: str
) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="activity") as executor:
        worker = build_worker(client, executor, task_queue)
        relay = asyncio.create_task(relay_outbox(stop, outbox_interval))
        async with worker:
            logger.info("Worker polling task queue %s", task_queue)
            await stop.wait()
        await relay


async def serve(stop: asyncio.Event) -> None:
    """Connect to Temporal (waiting while it is away), then run the worker until `stop` is set."""
    from django.conf import settings

    from workflows import client as temporal

    client = None
    while client is None and not stop.is_set():
        try:
            client = await temporal.connect()
        except RuntimeError as exc:
            logger.warning(
                "Temporal at %s is not reachable (%s); retrying in 2s", settings.TEMPORAL_ADDRESS, exc
            )
            try:
                await asyncio.wait_for(stop.wait(), timeout=2)
            except TimeoutError:
                pass
    if client is not None:
        await run_until_stopped(client, stop, settings.OUTBOX_POLL_SECONDS, settings.TEMPORAL_TASK_QUEUE)
