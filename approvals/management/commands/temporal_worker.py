from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from workflows import client as temporal
from workflows.worker import run_until_stopped


class Command(BaseCommand):
    help = "Run the Temporal worker (workflows and activities) and the outbox relay until SIGINT/SIGTERM."

    def handle(self, *args: Any, **options: Any) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        client = None
        while client is None and not stop.is_set():
            try:
                client = await temporal.connect()
            except RuntimeError as exc:
                self.stderr.write(
                    f"Temporal at {settings.TEMPORAL_ADDRESS} is not reachable ({exc}); retrying in 2s"
                )
                try:
                    await asyncio.wait_for(stop.wait(), timeout=2)
                except TimeoutError:
                    pass
        if client is None:
            return
        started = time.monotonic()
        await run_until_stopped(client, stop, settings.OUTBOX_POLL_SECONDS)
        self.stdout.write(f"Worker stopped after {time.monotonic() - started:.0f}s")
