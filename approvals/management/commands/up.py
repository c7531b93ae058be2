"""`manage.py up`: the whole app on the embedded default, in one command.

Starts the Temporal dev server (persistent SQLite under DATA_DIR), the worker and the ASGI
server, prints where they are, and stops them all, in order, on Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from approvals.client import DEV_SERVER_ARGS, DEV_SERVER_FILE_ARGS
from approvals.management.commands.seed_demo import DEMO_PASSWORD, DEMO_USERS


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _wait_for_port(host: str, port: int, process: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CommandError(f"{what} exited with code {process.returncode} while starting.")
        if _port_open(host, port):
            return
        time.sleep(0.2)
    raise CommandError(f"{what} did not open {host}:{port} within {timeout:.0f}s.")


class Command(BaseCommand):
    help = "Run the app on the embedded default: Temporal dev server, worker and web server together."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--temporal-port", type=int, default=7233)
        parser.add_argument("--temporal-ui-port", type=int, default=8233)

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = options["host"], options["port"]
        temporal_port, ui_port = options["temporal_port"], options["temporal_ui_port"]
        for what, p in (("The web server", port), ("Temporal", temporal_port), ("The Temporal UI", ui_port)):
            if _port_open(host, p):
                raise CommandError(
                    f"{what} port {host}:{p} is already in use; stop what uses it or pick another port."
                )
        temporal_cli = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
        if not Path(temporal_cli).exists():
            raise CommandError("The `temporal` CLI is missing; install the project again (pip install -e .).")

        call_command("migrate", interactive=False, verbosity=0)
        call_command("seed_demo", verbosity=0)

        env = {
            **os.environ,
            "DJANGO_DEBUG": "1" if settings.DEBUG else "0",
            "TEMPORAL_ADDRESS": f"{host}:{temporal_port}",
            "TEMPORAL_UI_URL": f"http://{host}:{ui_port}",
            "SITE_URL": f"http://{host}:{port}",
        }
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        commands = [
            (
                "Temporal",
                [
                    temporal_cli,
                    "server",
                    "start-dev",
                    "--db-filename",
                    str(settings.DATA_DIR / "temporal.sqlite"),
                    "--ip",
                    host,
                    "--port",
                    str(temporal_port),
                    "--ui-port",
                    str(ui_port),
                    "--log-level",
                    "warn",
                    *DEV_SERVER_ARGS,
                    *DEV_SERVER_FILE_ARGS,
                ],
                temporal_port,
            ),
            (
                "The web server",
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "approvals.asgi:application",
                    "--host",
                    host,
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                port,
            ),
        ]
        if settings.REDIS_URL:
            # Redis carries live updates between processes: the worker runs on its own.
            commands.insert(1, ("The worker", [*manage, "temporal_worker"], None))
        else:
            # The in-memory channel layer reaches only its own process: the worker runs in the web
            # server's, on its event loop (see approvals/asgi.py).
            env["TEMPORAL_WORKER_IN_WEB"] = "1"
        processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        stopping = False

        def stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            for what, command, wait_port in commands:
                # Own session: Ctrl-C reaches only us, and we stop the children in order.
                process = subprocess.Popen(command, env=env, cwd=settings.BASE_DIR, start_new_session=True)
                processes.append((what, process))
                if wait_port:
                    _wait_for_port(host, wait_port, process, what, timeout=60)
            self._print_banner(host, port, ui_port)
            while not stopping:
                for what, process in processes:
                    if process.poll() is not None:
                        raise CommandError(f"{what} stopped unexpectedly (exit code {process.returncode}).")
                time.sleep(0.5)
        finally:
            self.stdout.write("\nStopping...")
            for what, process in reversed(processes):
                if process.poll() is None:
                    process.send_signal(signal.SIGINT)
                    try:
                        process.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        self.stderr.write(f"{what} did not stop in 15s; killing it.")
                        process.kill()
                        process.wait()
            self.stdout.write("Stopped.")

    def _print_banner(self, host: str, port: int, ui_port: int) -> None:
        lines = [
            "",
            f"  App:          http://{host}:{port}/",
            f"  Temporal UI:  http://{host}:{ui_port}/",
            f"  Mail:         http://{host}:{port}/mailbox/ (staff), and files in {settings.EMAIL_FILE_PATH}",
            "",
            f"  Demo logins (password for all: {DEMO_PASSWORD}):",
            *[f"    {username:<10} {role}" for username, _, _, role in DEMO_USERS],
            "",
            "  Press Ctrl-C to stop everything.",
            "",
        ]
        self.stdout.write("\n".join(lines))
