"""The websocket every signed-in page keeps open for live updates."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from approvals import live

logger = logging.getLogger(__name__)


class LiveConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            logger.warning("Refused an anonymous live socket from %s", self.scope.get("client"))
            await self.close(code=4401)
            return
        self.user = user
        # The page says what it shows: ?view=inbox, ?view=mine, or ?view=request&id=<public id>.
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.view = query.get("view", [""])[0]
        self.shown_id = query.get("id", [""])[0]
        if self.view not in live.VIEWS:
            await self.close(code=4400)
            return
        if self.view == "dashboard" and not user.is_staff:
            logger.warning("Refused the staff dashboard's live socket to %s: staff only", user)
            await self.close(code=4403)
            return
        self.groups_joined = [live.user_group(user.pk)] + ([live.STAFF_GROUP] if user.is_staff else [])
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    summary_soon: asyncio.Task[None] | None = None

    async def disconnect(self, code: int) -> None:
        if self.summary_soon is not None:
            self.summary_soon.cancel()
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        pass  # the page only listens

    async def request_changed(self, event: dict[str, Any]) -> None:
        if self.view == "dashboard":
            # The summary covers every request: one render for a burst of changes, not one each.
            if self.summary_soon is None or self.summary_soon.done():
                self.summary_soon = asyncio.create_task(self._send_summary_soon())
            return
        html = await database_sync_to_async(live.fragment_for)(
            user=self.user, public_id=event["public_id"], view=self.view, shown_id=self.shown_id
        )
        if html:
            await self.send(text_data=html)

    async def _send_summary_soon(self) -> None:
        await asyncio.sleep(live.SUMMARY_COALESCE_SECONDS)
        await self.send(text_data=await database_sync_to_async(live.dashboard_fragment)())
