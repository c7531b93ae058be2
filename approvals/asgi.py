"""ASGI entry point: Django over HTTP, live updates over websockets, the MCP server's streamable
HTTP at /mcp, and (in the embedded default) the Temporal worker on the same event loop, started
and stopped by the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from typing import Any

from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "approvals.settings")
django_asgi_app = get_asgi_application()


class LongPolls(ASGIHandler):
    """Django for the requests that wait (GET /api/v1/requests/<id>/wait): as its ASGI handler,
    but without a thread of each request's own. Django gives every request one (asgiref's
    ThreadSensitiveContext), and it would stay, idle, as long as the request waits; here what
    little synchronous work such a request has (its middleware's, its token's check) takes turns
    on one shared thread, and its looks at the database run in the shared pool."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.handle(scope, receive, send)


LONG_POLL = re.compile(r"^/api/v1/requests/[^/]+/wait/?$")
long_polls = LongPolls()

# After Django is set up:
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from approvals import mcp_server  # noqa: E402
from approvals.routing import websocket_urlpatterns  # noqa: E402
from approvals.websocket_origin import SameOriginValidator  # noqa: E402

logger = logging.getLogger(__name__)

router = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)


mcp_http: mcp_server.HttpEndpoint | None = None  # while the lifespan runs


async def lifespan(receive: Any, send: Any) -> None:
    from approvals.worker import serve

    global mcp_http
    stop = asyncio.Event()
    worker: asyncio.Task[None] | None = None
    async with contextlib.AsyncExitStack() as running:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                endpoint = mcp_server.HttpEndpoint()
                await running.enter_async_context(endpoint.run())
                mcp_http = endpoint
                if settings.TEMPORAL_WORKER_IN_WEB:
                    worker = asyncio.create_task(serve(stop))
                    logger.info("Temporal worker runs in the web process")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                mcp_http = None
                stop.set()
                if worker is not None:
                    await worker
                await send({"type": "lifespan.shutdown.complete"})
                return


async def serve_mcp(scope: dict[str, Any], receive: Any, send: Any) -> None:
    endpoint = mcp_http
    if endpoint is None:  # a server that runs no lifespan: nothing would keep the MCP sessions
        await router(scope, receive, send)  # Django's answer: 404
        return
    await endpoint(scope, receive, send)


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
    elif scope["type"] == "http" and LONG_POLL.match(scope["path"]):
        await long_polls(scope, receive, send)
    elif scope["type"] == "http" and scope["path"].rstrip("/") == mcp_server.PATH:
        await serve_mcp(scope, receive, send)
    else:
        await router(scope, receive, send)
