"""One Temporal client per process, usable from synchronous Django code.

Django views and services are synchronous; the Temporal client is asyncio. The client lives on
an event loop in a daemon thread, and `call()` runs a coroutine there and waits for it with a
deadline, so a slow or absent Temporal never hangs a web request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from django.conf import settings
from temporalio.client import Client
from temporalio.service import RPCError

T = TypeVar("T")

# What the app asks of a Temporal dev server (`manage.py up`, the tests): flag a workflow whose
# tasks fail twice in a row with the TemporalReportedProblems search attribute, so the staff
# dashboard can list it. A production server needs the same dynamic config value.
DEV_SERVER_ARGS = [
    "--dynamic-config-value",
    "system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute=2",
]


class TemporalUnreachable(Exception):
    """Temporal did not answer within the deadline, or refused the connection."""


# What "Temporal is not there right now" looks like, as opposed to a bug of ours: our deadline,
# an RPC failure, or the failed connect (which the SDK raises as RuntimeError).
UNREACHABLE: tuple[type[BaseException], ...] = (TemporalUnreachable, RPCError, RuntimeError, OSError)


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
                target[0], namespace=target[1], connect_timeout=settings.TEMPORAL_RPC_TIMEOUT
            )
            self._client_target = target
        return self._client

    def call(self, fn: Callable[[Client], Awaitable[T]], timeout: timedelta | None = None) -> T:
        """Run `fn(client)` on the client's loop; raise TemporalUnreachable past the deadline."""
        limit = (timeout or settings.TEMPORAL_RPC_TIMEOUT).total_seconds()

        async def run() -> T:
            return await fn(await self._connected())

        future = asyncio.run_coroutine_threadsafe(run(), self._event_loop())
        try:
            # Connect and call each have their own deadline; allow for both.
            return future.result(timeout=2 * limit + 1)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise TemporalUnreachable(
                f"Temporal at {settings.TEMPORAL_ADDRESS} did not answer in time"
            ) from exc

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


async def connect() -> Client:
    """A fresh client for code that already runs on an event loop (the worker process)."""
    return await Client.connect(settings.TEMPORAL_ADDRESS, namespace=settings.TEMPORAL_NAMESPACE)
