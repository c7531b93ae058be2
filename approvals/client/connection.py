"""The client thread and what a call to Temporal can end in.

Django's views and services are synchronous and the Temporal client is asyncio: the client lives
on an event loop in a daemon thread, and each call runs there and waits with a deadline, so a
slow or absent Temporal never hangs a web request. Temporal's errors come out as ours.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
import threading
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.converter import DataConverter
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode

from workflows import codec

T = TypeVar("T")

# What the app asks of a Temporal dev server (`manage.py up`, the tests): flag a workflow whose
# tasks fail twice in a row with the TemporalReportedProblems search attribute, so the staff
# dashboard can list it. A production server needs the same dynamic config value.
DEV_SERVER_ARGS = [
    "--dynamic-config-value",
    "system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute=2",
]
# And for a dev server that keeps its SQLite file (`manage.py up`, the benchmark): a write-ahead
# log, synced at checkpoints, so that each workflow task commits without rewriting a journal.
DEV_SERVER_FILE_ARGS = ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]


# Temporal's default data converter, reading our messages with workflows.codec (the same JSON).
DATA_CONVERTER = dataclasses.replace(DataConverter.default, payload_converter_class=codec.PayloadConverter)


class TemporalError(Exception):
    """Base class of what a call to Temporal can end in, other than its answer."""


class Unreachable(TemporalError):
    """Temporal did not answer within the deadline, or refused the connection."""


class TimedOut(Unreachable):
    """The call reached Temporal and its deadline passed with no answer: what it asked for may
    have been done (a signal kept, say) or not."""


class NoWorkflow(TemporalError):
    """No such workflow runs (it never started, or it has closed)."""


class TasksFailing(TemporalError):
    """The workflow cannot take messages now: its workflow tasks keep failing."""


class Rejected(TemporalError):
    """Temporal refused what was sent as it is (too large, malformed): sending it again cannot help."""


class Refused(TemporalError):
    """The workflow refused the action; the message says why, for the person who tried."""


class Unanswered(TemporalError):
    """An update was sent and no answer came in time. `accepted`: the workflow took it (so it is
    recorded, and only the answer is late); otherwise it is not known whether it will be."""

    def __init__(self, accepted: bool) -> None:
        super().__init__("accepted, no answer yet" if accepted else "no answer yet")
        self.accepted = accepted


def translated(exc: RPCError) -> TemporalError:
    """What an RPC failure means for the caller."""
    if exc.status == RPCStatusCode.NOT_FOUND:
        return NoWorkflow(str(exc))
    if exc.status == RPCStatusCode.FAILED_PRECONDITION:
        return TasksFailing(str(exc))
    if exc.status == RPCStatusCode.INVALID_ARGUMENT:  # e.g. "Blob data size exceeds limit"
        return Rejected(str(exc))
    if exc.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
        return TimedOut(str(exc))
    return Unreachable(str(exc))


class _ClientThread:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Client | None = None
        self._client_target: tuple[str, str] | None = None

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="temporal-client", daemon=True).start()
                self._loop = loop
            return self._loop

    async def _connected(self) -> Client:
        target = (settings.TEMPORAL_ADDRESS, settings.TEMPORAL_NAMESPACE)
        if self._client is None or self._client_target != target:
            self._client = await Client.connect(
                target[0],
                namespace=target[1],
                connect_timeout=settings.TEMPORAL_RPC_TIMEOUT,
                data_converter=DATA_CONVERTER,
            )
            self._client_target = target
        return self._client

    def call(self, fn: Callable[[Client], Awaitable[T]], calls: int = 1) -> T:
        """Run `fn(client)` on the client's loop; Temporal's errors come out as ours. `calls`:
        how many calls `fn` makes in a row, each with its own deadline."""
        limit = settings.TEMPORAL_RPC_TIMEOUT.total_seconds()

        async def run() -> T:
            return await fn(await self._connected())

        future = asyncio.run_coroutine_threadsafe(run(), self._event_loop())
        try:
            # Connecting and each call have their own deadline; allow for all of them.
            return future.result(timeout=(calls + 1) * limit + 1)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise Unreachable(f"Temporal at {settings.TEMPORAL_ADDRESS} did not answer in time") from exc
        except RPCError as exc:
            raise translated(exc) from exc
        except (RuntimeError, OSError) as exc:  # the SDK raises a failed connect as RuntimeError
            raise Unreachable(str(exc)) from exc

    def reset(self) -> None:
        """Forget the client and loop (after fork, or when tests point at another server)."""
        with self._lock:
            self._loop = None
            self._client = None
            self._client_target = None


_client_thread = _ClientThread()
os.register_at_fork(after_in_child=_client_thread.reset)
call = _client_thread.call
reset = _client_thread.reset


def timeout() -> timedelta:
    """How long each call to Temporal may take (settings.TEMPORAL_RPC_TIMEOUT)."""
    return settings.TEMPORAL_RPC_TIMEOUT


def start_once(workflow: Any, arg: Any, *, id: str, task_queue: str) -> bool:
    """Start the workflow under this id, which no second workflow ever gets (REJECT_DUPLICATE,
    closed ones included); False when one was started under it already."""

    async def start(client: Client) -> bool:
        try:
            await client.start_workflow(
                workflow,
                arg,
                id=id,
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                rpc_timeout=timeout(),
            )
        except WorkflowAlreadyStartedError:
            return False
        return True

    return call(start)


async def connect() -> Client:
    """A client of its own, for code that already runs on an event loop (the worker). With
    TEMPORAL_METRICS_ADDRESS set, the SDK's own metrics (its runtime telemetry: task slots,
    polls, latencies, failures) are served for Prometheus at http://<that address>/metrics."""
    return await Client.connect(
        settings.TEMPORAL_ADDRESS,
        namespace=settings.TEMPORAL_NAMESPACE,
        data_converter=DATA_CONVERTER,
        runtime=metrics_runtime(),
    )


_runtimes: dict[str, Runtime] = {}


def metrics_runtime() -> Runtime | None:
    """The process's SDK runtime that serves its metrics, made once per address; None without one."""
    address = settings.TEMPORAL_METRICS_ADDRESS
    if not address:
        return None
    if address not in _runtimes:
        _runtimes[address] = Runtime(
            telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address))
        )
    return _runtimes[address]
