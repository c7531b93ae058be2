"""Is Temporal there: for the web's readiness check."""

from __future__ import annotations

from temporalio.client import Client

from approvals.client.connection import Unreachable, call, timeout


def ping() -> None:
    """Return if Temporal's frontend answers that it serves workflows; else raise a TemporalError."""

    async def check(client: Client) -> bool:
        return await client.service_client.check_health(timeout=timeout())

    if not call(check):
        raise Unreachable("Temporal answers, but does not serve workflows yet")
