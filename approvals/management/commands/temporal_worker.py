from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.core.management.base import BaseCommand

from approvals.worker import serve


class Command(BaseCommand):
    help = "Run the Temporal worker (workflows and activities) and the outbox relay until SIGINT/SIGTERM."

    def handle(self, *args: Any, **options: Any) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(stop)
