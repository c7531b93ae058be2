"""The websocket every signed-in page keeps open for live updates."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from approvals import audit, live
from approvals.views import fragments

SUMMARY_COALESCE_SECONDS = 1.0  # a staff dashboard redraws its summary at most this often
MAX_FILTERS = 1000  # characters of an inbox's query string
DRAWN_KEPT_SECONDS = 10.0  # how long a drawing of a change waits for the other pages it serves


class Drawings:
    """What each change looks like on each kind of page, drawn once per process.

    A person often has the same page open in several tabs, and a change reaches every one of
    them at once: the fragment depends on the person, the view and what the page shows only, so
    the first socket to hear of the change draws it and the others of the same page take that
    drawing, instead of each running the same queries and template in turn."""

    def __init__(self) -> None:
        self._drawn: dict[tuple[str, ...], asyncio.Future[str]] = {}

    async def draw(self, key: tuple[str, ...], draw: Callable[[], Awaitable[str]]) -> str:
        if (drawn := self._drawn.get(key)) is None:
            drawn = self._drawn[key] = asyncio.ensure_future(draw())
            asyncio.get_running_loop().call_later(DRAWN_KEPT_SECONDS, self._drawn.pop, key, None)
        return await asyncio.shield(drawn)


drawings = Drawings()


class LiveConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            audit.log_refused(self.scope.get("client"), "an anonymous live socket", "not logged in")
            await self.close(code=4401)
            return
        self.user = user
        # The page says what it shows: ?view=inbox (&filters=<its query string>), ?view=mine,
        # ?view=request&id=<public id>, or ?view=dashboard.
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.view = query.get("view", [""])[0]
        self.shown_id = query.get("id", [""])[0]
        self.filters = query.get("filters", [""])[0][:MAX_FILTERS]
        if self.view not in fragments.VIEWS:
            await self.close(code=4400)
            return
        if self.view == "dashboard" and not user.is_staff:
            audit.log_refused(user, "the staff dashboard's live socket", "staff only")
            await self.close(code=4403)
            return
        self.groups_joined = [live.user_group(user.pk)] + ([live.STAFF_GROUP] if user.is_staff else [])
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        if self.view == "request" and self.shown_id:
            # What changed between drawing the page and opening this socket (or while it was
            # closed) would be missed: the page gets the request as it stands now.
            await self.request_changed({"public_id": self.shown_id})

    summary_soon: asyncio.Task[None] | None = None

    async def disconnect(self, code: int) -> None:
        for soon in (self.summary_soon, self.reviews_soon):
            if soon is not None:
                soon.cancel()
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """An inbox says which filters it shows now (they change without a reload); anything
        else is ignored."""
        try:
            message = json.loads(text_data or "")
        except ValueError:
            return
        if self.view == "inbox" and isinstance(message, dict) and isinstance(message.get("filters"), str):
            self.filters = message["filters"][:MAX_FILTERS]

    async def request_changed(self, event: dict[str, Any]) -> None:
        if self.view == "dashboard":
            # The summary covers every request: one render for a burst of changes, not one each.
            if self.summary_soon is None or self.summary_soon.done():
                self.summary_soon = asyncio.create_task(self._send_summary_soon())
            return

        def draw() -> Awaitable[str]:
            return database_sync_to_async(fragments.pushed_html)(
                user=self.user,
                public_id=event["public_id"],
                view=self.view,
                shown_id=self.shown_id,
                filters=self.filters,
            )

        change_id = event.get("change_id")
        if isinstance(change_id, str):
            key = (change_id, str(self.user.pk), self.view, self.shown_id, self.filters)
            html = await drawings.draw(key, draw)
        else:  # the page as it stands, when the socket opens
            html = await draw()
        if html:
            await self.send(text_data=html)

    async def campaign_changed(self, event: dict[str, Any]) -> None:
        """A campaign, or one of its reviews, changed: the dashboard's summary (its progress),
        the Reviews tab, or elsewhere what waits for this person, is drawn again, once for a
        burst of changes (a campaign's deadline closes thousands of reviews at once)."""
        if self.view == "dashboard":
            if self.summary_soon is None or self.summary_soon.done():
                self.summary_soon = asyncio.create_task(self._send_summary_soon())
        elif self.reviews_soon is None or self.reviews_soon.done():
            self.reviews_soon = asyncio.create_task(self._send_reviews_soon())

    reviews_soon: asyncio.Task[None] | None = None

    async def _send_reviews_soon(self) -> None:
        await asyncio.sleep(SUMMARY_COALESCE_SECONDS)
        html = ""
        if self.view == "reviews":
            html = await database_sync_to_async(fragments.reviews_html)(
                user=self.user, page=self.shown_id or None
            )
        await self.send(text_data=html + await database_sync_to_async(fragments.waiting_html)(user=self.user))

    async def _send_summary_soon(self) -> None:
        await asyncio.sleep(SUMMARY_COALESCE_SECONDS)
        await self.send(text_data=await database_sync_to_async(fragments.dashboard_html)(user=self.user))
