from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from approvals.worker import QUEUES, serve


class Command(BaseCommand):
    help = (
        "Run the Temporal workers (workflows and activities) and the outbox relay until SIGINT/SIGTERM: "
        "both task queues, or the one --queue names (a pool of its own)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queue",
            choices=QUEUES,
            help="Serve only this pool's queues: interactive (requests, fulfilments, grants) or bulk "
            "(access-review campaigns, and the webhook deliveries). Both when left out.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        queues = (options["queue"],) if options["queue"] else QUEUES
        asyncio.run(self._main(queues))

    async def _main(self, queues: tuple[str, ...]) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(stop, queues)
