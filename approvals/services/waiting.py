"""Waiting for a request's decision without polling: the caller's coroutine sleeps on the channel
layer, where every change of a request is pushed (approvals.live), and looks at the read model
only when something changed, and once in a while in case a push was lost (pushes are best
effort). No thread is held while it waits: an agent can wait minutes, and hundreds at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connections

from approvals import live, selectors
from approvals.metrics import WAITING
from approvals.models import ApprovalRequest
from workflows.types import RequestStatus

logger = logging.getLogger(__name__)


def is_settled(request: ApprovalRequest) -> bool:
    """The request has an answer its requester acts on: a final status, or changes requested."""
    return not request.is_open or request.status == RequestStatus.CHANGES_REQUESTED


T = TypeVar("T")


def pooled(function: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """`function` (which reads the database), awaitable, run in the loop's shared thread pool: not
    on a thread of the request's own, which would stay with it while it waits. The connection
    goes back when it returns."""

    def run(*args: Any, **kwargs: Any) -> T:
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    return sync_to_async(run, thread_sensitive=False)


@pooled
def look(user: User, public_id: Any) -> ApprovalRequest:
    return selectors.request_get_visible(user=user, public_id=public_id)


async def request_wait(*, user: User, public_id: Any, timeout: float) -> ApprovalRequest:
    """The request once it is settled, or as it stands when `timeout` seconds have passed.
    NotFound if the user may not see it. With the channel layer down, it only looks again now
    and then: a wait is never refused for that."""
    request = await look(user, public_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0.0, timeout)
    if is_settled(request) or timeout <= 0:
        return request
    groups = [live.user_group(user.pk)] + ([live.STAFF_GROUP] if user.is_staff else [])
    WAITING.inc()
    layer, channel = await _listen(get_channel_layer(), groups)
    try:
        if layer is not None:
            request = await look(user, public_id)  # what changed before it listened
        while not is_settled(request) and (left := deadline - loop.time()) > 0:
            wait = min(left, settings.AGENT_WAIT_RECHECK_SECONDS)
            if layer is not None:
                try:
                    await asyncio.wait_for(_heard(layer, channel, str(request.public_id)), wait)
                except TimeoutError:
                    pass
                except Exception:  # the layer went away: look again in a while all the same
                    logger.warning("Not hearing changes of %s", request.public_id, exc_info=True)
                    await asyncio.sleep(max(0.0, min(wait, deadline - loop.time())))
            else:
                await asyncio.sleep(wait)
            request = await look(user, public_id)
    finally:
        WAITING.dec()
        if layer is not None:
            for group in groups:
                try:
                    await layer.group_discard(group, channel)
                except Exception:  # the layer is down: its groups expire by themselves
                    logger.warning("Could not leave %s", group, exc_info=True)
    return request


async def _listen(layer: Any, groups: list[str]) -> tuple[Any, str]:
    """The layer and a channel of its own in these groups; (None, "") when there is no layer or
    it cannot be reached, and the wait only looks again now and then."""
    if layer is None:
        return None, ""
    channel = ""
    try:
        channel = await layer.new_channel()
        for group in groups:
            await layer.group_add(group, channel)
    except Exception:  # what it joined expires by itself (channels_redis's group expiry)
        logger.warning("The channel layer is unreachable: looking again now and then", exc_info=True)
        return None, ""
    return layer, channel


async def _heard(layer: Any, channel: str, public_id: str) -> None:
    """Until a change of this request is pushed."""
    while True:
        message = await layer.receive(channel)
        if message.get("type") == "request.changed" and message.get("public_id") == public_id:
            return
