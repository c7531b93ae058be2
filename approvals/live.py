"""Live updates: tell every open page that may show a request that it changed.

Whoever changes the read model (the projection activity, wherever the worker runs; a staff
cancel; the watch on stopped workflows) names the request and the people who may see it, once
the change has committed. Each person's websocket consumer then draws that person's fragments
with the same context functions the views use (approvals.views.fragments).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)
STAFF_GROUP = "live-staff"


@dataclass(frozen=True)
class Change:
    """A request changed; these people (and staff) may see it."""

    public_id: str
    user_ids: tuple[int, ...]


def user_group(user_id: int) -> str:
    return f"live-user-{user_id}"


async def push(change: Change | None) -> None:
    """Tell the open pages of these people, and staff pages, that the request changed. Best
    effort: a channel layer that is down must not hold up the request, and pages catch up on load."""
    layer = get_channel_layer()
    if change is None or layer is None:
        return
    # The change's own id lets the pages of one person in one process share one drawing of it.
    message = {"type": "request.changed", "public_id": change.public_id, "change_id": uuid.uuid4().hex}
    try:
        for group in [STAFF_GROUP, *(user_group(uid) for uid in change.user_ids)]:
            await layer.group_send(group, message)
    except Exception:
        logger.exception("Could not push the change of %s to live pages", change.public_id)


def push_after_commit(change: Change | None) -> None:
    """`push`, from synchronous code (a view, a service), once the transaction commits."""
    if change is not None:
        transaction.on_commit(lambda: async_to_sync(push)(change))


async def push_campaign(campaign_id: str, user_ids: tuple[int, ...]) -> None:
    """Tell staff pages, and these reviewers' pages, that a campaign (or one of its reviews)
    changed. Best effort, as `push`."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "campaign.changed", "campaign_id": campaign_id, "change_id": uuid.uuid4().hex}
    try:
        for group in [STAFF_GROUP, *(user_group(uid) for uid in user_ids)]:
            await layer.group_send(group, message)
    except Exception:
        logger.exception("Could not push the change of campaign %s to live pages", campaign_id)
