"""Is this web process ready to serve: its database, Temporal and the channel layer reachable."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection

from approvals import client as temporal


@dataclass(frozen=True)
class Check:
    ok: bool
    ms: float
    error: str = ""


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _channel_layer() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("No channel layer is configured")
    # Leaving a group one never joined reaches the layer's store (Redis) and leaves nothing there.
    async_to_sync(layer.group_discard)("readyz", f"readyz.{uuid.uuid4().hex}")


CHECKS: dict[str, Callable[[], None]] = {
    "database": _database,
    "temporal": temporal.ping,
    "channel_layer": _channel_layer,
}


def readiness() -> dict[str, Check]:
    """Each dependency's check, timed; one that fails says why."""
    results = {}
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            check()
        except Exception as exc:  # noqa: BLE001 (any failure means not ready, and is shown)
            results[name] = Check(False, _ms(started), f"{type(exc).__name__}: {exc}"[:300])
        else:
            results[name] = Check(True, _ms(started))
    return results


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
