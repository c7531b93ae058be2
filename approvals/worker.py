"""The worker process: the Temporal workers, and beside them two loops that keep the read model
honest about Temporal. The outbox relay starts workflows for requests saved while Temporal was
away; the watch notes requests whose workflow stopped for good, so that everyone reads it.

Two task queues, a bulkhead: the interactive queue (requests, fulfilments, grants: what people
wait on) and the bulk queue (access-review campaigns, thousands of reviews at once). Each has its
own worker and its own activity executor, so a flood on one cannot starve the other; production
runs a pool of each (`manage.py temporal_worker --queue interactive|bulk`), the embedded default
both in one process. The bulk pool serves a third queue beside its own, the webhook deliveries'
(with its own executor too: a subscriber that is slow or down holds up neither people nor
campaigns), and runs the relay that starts each delivery recorded."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from temporalio.client import Client
from temporalio.worker import Worker

from approvals import client as temporal
from approvals import live, services
from approvals.activities import ACTIVITIES, BULK_ACTIVITIES, WEBHOOK_ACTIVITIES
from workflows.registry import BULK_WORKFLOWS, INTERACTIVE_WORKFLOWS, WEBHOOK_WORKFLOWS
from workflows.types import INTERACTIVE_TASK_QUEUE

logger = logging.getLogger(__name__)

SHUTDOWN_GRACE = timedelta(seconds=10)
QUEUES = ("interactive", "bulk")
ACTIVITY_THREADS = {"interactive": 8, "bulk": 8, "webhooks": 8}


def build_worker(
    client: Client,
    executor: concurrent.futures.ThreadPoolExecutor,
    task_queue: str = INTERACTIVE_TASK_QUEUE,
    activities: Sequence[Callable[..., Any]] = ACTIVITIES,
) -> Worker:
    """The interactive queue's worker."""
    return _worker(client, executor, task_queue, INTERACTIVE_WORKFLOWS, activities)


def build_bulk_worker(
    client: Client,
    executor: concurrent.futures.ThreadPoolExecutor,
    task_queue: str | None = None,
    activities: Sequence[Callable[..., Any]] = BULK_ACTIVITIES,
) -> Worker:
    """The bulk queue's worker: campaigns and their reviews, with activities of their own."""
    queue = task_queue or settings.TEMPORAL_BULK_TASK_QUEUE
    return _worker(client, executor, queue, BULK_WORKFLOWS, activities)


def build_webhook_worker(
    client: Client,
    executor: concurrent.futures.ThreadPoolExecutor,
    task_queue: str | None = None,
    activities: Sequence[Callable[..., Any]] = WEBHOOK_ACTIVITIES,
) -> Worker:
    """The webhook queue's worker: each delivery's workflow, and its attempts."""
    queue = task_queue or settings.TEMPORAL_WEBHOOK_TASK_QUEUE
    return _worker(client, executor, queue, WEBHOOK_WORKFLOWS, activities)


def _worker(
    client: Client,
    executor: concurrent.futures.ThreadPoolExecutor,
    task_queue: str,
    workflows: Sequence[type],
    activities: Sequence[Callable[..., Any]],
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflows,
        activities=activities,
        activity_executor=executor,
        max_concurrent_activities=executor._max_workers,
        sticky_queue_schedule_to_start_timeout=settings.TEMPORAL_STICKY_TIMEOUT,
        # On shutdown, activities under way finish rather than stop halfway (they take seconds;
        # a cancelled one would be retried by the next worker anyway, but a finished one is done).
        graceful_shutdown_timeout=SHUTDOWN_GRACE,
    )


def _round(service: Callable[[], Any]) -> Callable[[], Any]:
    """One round of a loop's service, in a thread, with fresh database connections."""

    def run() -> Any:
        close_old_connections()
        try:
            return service()
        finally:
            close_old_connections()

    return sync_to_async(run, thread_sensitive=False)


async def _every(stop: asyncio.Event, interval: float, what: str, round_: Callable[[], Any]) -> None:
    """Run `round_` every `interval` seconds until `stop` is set; a failed round is logged and
    the next one tries again."""
    while not stop.is_set():
        try:
            await round_()
        except Exception:
            logger.exception("%s round failed; retrying", what)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass


async def relay_outbox(stop: asyncio.Event, interval: float) -> None:
    """Start workflows for requests saved while Temporal was unreachable."""
    start_pending = _round(services.requests_start_pending)

    async def round_() -> None:
        if started := await start_pending():
            logger.info("Started %d workflow(s) from the outbox", started)

    await _every(stop, interval, "Outbox relay", round_)


async def relay_webhooks(stop: asyncio.Event, interval: float) -> None:
    """Start the delivery of each webhook event recorded (and each redelivery staff asked for)."""
    start_pending = _round(services.webhooks_start_pending)

    async def round_() -> None:
        if started := await start_pending():
            logger.info("Started %d webhook deliver%s", started, "y" if started == 1 else "ies")

    await _every(stop, interval, "Webhook relay", round_)


async def watch_stopped(stop: asyncio.Event, interval: float) -> None:
    """Note in the read model each request whose workflow stopped for good (and each whose
    workflow runs again), and tell its open pages."""
    note = _round(services.workflows_stopped_note)

    async def round_() -> None:
        for change in await note():
            await live.push(change)

    await _every(stop, interval, "Stopped-workflow watch", round_)


async def run_until_stopped(client: Client, stop: asyncio.Event, queues: Sequence[str] = QUEUES) -> None:
    """Run a worker for each of these queues (each with its own activity threads) until `stop`
    is set; beside the interactive one, the outbox relay and the stopped-workflow watch; with the
    bulk one, the webhook queue's worker and its relay."""
    with contextlib.ExitStack() as stack:

        def executor_for(queue: str) -> concurrent.futures.ThreadPoolExecutor:
            return stack.enter_context(
                concurrent.futures.ThreadPoolExecutor(
                    max_workers=ACTIVITY_THREADS[queue], thread_name_prefix=f"{queue}-activity"
                )
            )

        workers, loops = [], []
        for queue in queues:
            executor = executor_for(queue)
            if queue == "interactive":
                workers.append(build_worker(client, executor, settings.TEMPORAL_TASK_QUEUE))
                loops += [
                    asyncio.create_task(relay_outbox(stop, settings.OUTBOX_POLL_SECONDS)),
                    asyncio.create_task(watch_stopped(stop, settings.STOPPED_POLL_SECONDS)),
                ]
            else:
                workers += [
                    build_bulk_worker(client, executor),
                    build_webhook_worker(client, executor_for("webhooks")),
                ]
                loops.append(asyncio.create_task(relay_webhooks(stop, settings.WEBHOOK_POLL_SECONDS)))
        async with contextlib.AsyncExitStack() as running:
            for worker in workers:
                await running.enter_async_context(worker)
                logger.info("Worker polling task queue %s", worker.task_queue)
            await stop.wait()
        await asyncio.gather(*loops)


async def serve(stop: asyncio.Event, queues: Sequence[str] = QUEUES) -> None:
    """Connect to Temporal (waiting while it is away), then run the workers of these queues until
    `stop` is set."""
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
        await run_until_stopped(client, stop, queues)
