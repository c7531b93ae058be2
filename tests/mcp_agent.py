"""An agent on the MCP server, as an agent framework runs one: the mcp SDK's own client, over
streamable HTTP (the web app's /mcp) or over stdio (`manage.py mcp`, a process of its own)."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
from django.db import connection
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[1]


@asynccontextmanager
async def over_http(base_url: str, token: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http:
        async with Client(streamable_http_client(f"{base_url}/mcp", http_client=http)) as client:
            yield client


def stdio_environment(settings: Any, token: str, **extra: str) -> dict[str, str]:
    """What `manage.py mcp` needs to act on this test's database and Temporal: the test database
    (SQLite's file or PostgreSQL's), the dev server and the test's task queue."""
    database = connection.settings_dict
    if database["ENGINE"].endswith("sqlite3"):
        url = f"sqlite:///{database['NAME']}"
    else:
        url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    environment = {
        "APPROVALS_API_TOKEN": token,
        "DATABASE_URL": url,
        "DB_POOL_SIZE": "0",
        "TEMPORAL_ADDRESS": settings.TEMPORAL_ADDRESS,
        "TEMPORAL_TASK_QUEUE": settings.TEMPORAL_TASK_QUEUE,
        "TEMPORAL_BULK_TASK_QUEUE": settings.TEMPORAL_BULK_TASK_QUEUE,
        "TEMPORAL_WEBHOOK_TASK_QUEUE": settings.TEMPORAL_WEBHOOK_TASK_QUEUE,
        "SITE_URL": settings.SITE_URL,
        "TEMPORAL_WORKER_IN_WEB": "0",
        **extra,
    }
    if redis := os.environ.get("REDIS_URL"):  # this test process's own database of Redis
        environment["REDIS_URL"] = redis
    return environment


@asynccontextmanager
async def over_stdio(environment: dict[str, str]) -> AsyncIterator[Client]:
    params = StdioServerParameters(
        command=sys.executable, args=["manage.py", "mcp"], env=environment, cwd=str(ROOT)
    )
    async with Client(params) as client:
        yield client


def structured(result: Any) -> dict[str, Any]:
    """A tool's answer as data; a tool error fails the test with its message."""
    assert not result.is_error, result.content
    data: dict[str, Any] = result.structured_content
    return data
