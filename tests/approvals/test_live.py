"""Live updates over websockets: who may listen, what they hear, and across processes (Redis)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async as sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client

from approvals import live, services
from approvals.asgi import application
from approvals.consumers import SUMMARY_COALESCE_SECONDS, Drawings
from approvals.models import RequestType
from approvals.settings import redis_channel_layers
from tests.conftest import PASSWORD, make_request

BASE_DIR = Path(__file__).resolve().parents[2]
ORIGIN = (b"origin", b"http://127.0.0.1:8000")
HOST = (b"host", b"127.0.0.1:8000")  # the page's, and the socket's: the server on :8000
IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
REDIS_URL = "redis://127.0.0.1:6379/15"
IDLE_SECONDS = 60


def cookie_for(user: User) -> tuple[bytes, bytes]:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


async def connect(path: str, *headers: tuple[bytes, bytes]) -> tuple[WebsocketCommunicator, bool]:
    communicator = WebsocketCommunicator(application, path, headers=[HOST, *headers])
    connected, _ = await communicator.connect(timeout=5)
    return communicator, connected


@pytest.fixture
def in_memory(settings: Any) -> None:
    settings.CHANNEL_LAYERS = IN_MEMORY


@pytest.mark.usefixtures("in_memory")
def test_anonymous_foreign_origin_and_unknown_views_are_refused(
    people: dict[str, User], caplog: pytest.LogCaptureFixture, settings: Any
) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://approvals.example"]

    async def scenario() -> None:
        _, connected = await connect("/ws/live/?view=inbox", ORIGIN)
        assert not connected, "anonymous"
        _, connected = await connect("/ws/live/?view=inbox", (b"origin", b"http://evil.example"), cookie)
        assert not connected, "foreign origin"
        for other in (b"http://127.0.0.1:8201", b"https://127.0.0.1:8000", b"http://127.0.0.1", b"null"):
            _, connected = await connect("/ws/live/?view=inbox", (b"origin", other), cookie)
            assert not connected, f"another port or scheme of the same host: {other!r}"
        _, connected = await connect("/ws/live/?view=everything", ORIGIN, cookie)
        assert not connected, "unknown view"
        _, connected = await connect("/ws/live/?view=dashboard", ORIGIN, cookie)
        assert not connected, "the staff dashboard, for a reviewer"
        communicator, connected = await connect("/ws/live/?view=inbox", ORIGIN, cookie)
        assert connected
        await communicator.disconnect()
        # A trusted origin (a front proxy on another name) may, as it may POST.
        communicator, connected = await connect(
            "/ws/live/?view=inbox", (b"origin", b"https://approvals.example"), cookie
        )
        assert connected
        await communicator.disconnect()

    cookie = cookie_for(people["reviewer1"])
    with caplog.at_level(logging.WARNING, logger="approvals.refused"):
        async_to_sync(scenario)()
    refused = [r.getMessage() for r in caplog.records if r.name == "approvals.refused"]
    assert refused == [
        "Refused an anonymous live socket to None: not logged in",  # the client's address: none here
        "Refused the staff dashboard's live socket to reviewer1: staff only",
    ]


@pytest.mark.usefixtures("in_memory")
def test_each_page_hears_what_it_shows_and_only_people_who_may_see_it_hear(
    people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase, started=True)
    public_id = str(request.public_id)
    cookies = {name: cookie_for(people[name]) for name in ("reviewer1", "requester", "outsider", "admin")}

    async def scenario() -> None:
        inbox, _ = await connect("/ws/live/?view=inbox", ORIGIN, cookies["reviewer1"])
        mine, _ = await connect("/ws/live/?view=mine", ORIGIN, cookies["requester"])
        page, _ = await connect(f"/ws/live/?view=request&id={public_id}", ORIGIN, cookies["requester"])
        other_page, _ = await connect("/ws/live/?view=request&id=someone-else", ORIGIN, cookies["requester"])
        outsider, _ = await connect("/ws/live/?view=inbox", ORIGIN, cookies["outsider"])
        staff, _ = await connect(f"/ws/live/?view=request&id={public_id}", ORIGIN, cookies["admin"])
        dashboard, _ = await connect("/ws/live/?view=dashboard", ORIGIN, cookies["admin"])
        _, not_staff = await connect("/ws/live/?view=dashboard", ORIGIN, cookies["reviewer1"])
        assert not not_staff

        await live.push(await sync(services.request_change)(request))

        row = await inbox.receive_from(timeout=5)
        assert (
            row.startswith(f'<tr id="request-{public_id}"') and "data-live-insert" in row and "Approve" in row
        )
        assert (await mine.receive_from(timeout=5)).strip().startswith(f'<tr id="mine-{public_id}"')
        assert f'<section id="status-{public_id}"' in await page.receive_from(timeout=5)
        assert f'<section id="status-{public_id}"' in await staff.receive_from(timeout=5)
        # A burst of changes: the staff dashboard renders its summary once for all of them.
        for _ in range(3):
            await live.push(live.Change(public_id, ()))
        summary = await dashboard.receive_from(timeout=5)
        assert (
            summary.startswith('<div id="dashboard-summary"')
            and 'data-testid="count-in_review">1<' in summary
        )
        assert await dashboard.receive_nothing(timeout=SUMMARY_COALESCE_SECONDS + 0.5)
        # A page about another request hears only its person's waiting count (the navigation's),
        # as it opened and after the change.
        for _ in range(2):
            count = await other_page.receive_from(timeout=5)
            assert count.startswith('<span id="nav-waiting"') and public_id not in count
        assert await other_page.receive_nothing(timeout=0.3)
        assert await outsider.receive_nothing(timeout=0.3)
        for communicator in (inbox, mine, page, other_page, outsider, staff, dashboard):
            await communicator.disconnect()

    async_to_sync(scenario)()


def redis_reachable() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
def on_redis(settings: Any) -> None:
    """The channel layer as production configures it, on a database of its own."""
    if not redis_reachable():
        if os.environ.get("CI"):
            pytest.fail("Redis at 127.0.0.1:6379 is required under CI")
        pytest.skip("no Redis at 127.0.0.1:6379")
    settings.CHANNEL_LAYERS = redis_channel_layers(REDIS_URL)


def push_from_another_process(change: str) -> None:
    """The worker's side: another process, another event loop, only Redis in common."""
    sender = (
        "import django; django.setup()\n"
        "from asgiref.sync import async_to_sync\n"
        "from approvals import live\n"
        f"async_to_sync(live.push)({change})\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "approvals.settings", "REDIS_URL": REDIS_URL}
    subprocess.run([sys.executable, "-c", sender], cwd=BASE_DIR, env=env, check=True, timeout=60)


@pytest.mark.usefixtures("on_redis")
def test_an_update_sent_from_another_process_arrives_through_redis(
    people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase, started=True)
    public_id = str(request.public_id)
    cookie = cookie_for(people["reviewer1"])

    async def scenario() -> None:
        inbox, connected = await connect("/ws/live/?view=inbox", ORIGIN, cookie)
        assert connected
        push_from_another_process(f"live.Change({public_id!r}, ({people['reviewer1'].pk},))")
        row = await inbox.receive_from(timeout=10)
        assert row.startswith(f'<tr id="request-{public_id}"')
        await inbox.disconnect()

    async_to_sync(scenario)()


@pytest.mark.usefixtures("on_redis")
def test_pages_left_idle_for_a_minute_on_redis_still_hear_the_next_push(
    people: dict[str, User], purchase: RequestType
) -> None:
    # Each idle socket waits on Redis in a blocking pop of a few seconds, over and over: a read
    # timeout of the Redis client as short as that pop closed idle sockets now and then.
    request = make_request(people, purchase, started=True)
    public_id = str(request.public_id)
    cookies = {name: cookie_for(people[name]) for name in ("reviewer1", "reviewer2", "requester")}
    pages = [("reviewer1", "inbox"), ("reviewer2", "inbox"), ("requester", "mine")] * 4

    async def scenario() -> None:
        sockets = []
        for name, view in pages:
            communicator, connected = await connect(f"/ws/live/?view={view}", ORIGIN, cookies[name])
            assert connected
            sockets.append(communicator)
        await asyncio.sleep(IDLE_SECONDS)
        for communicator in sockets:
            assert await communicator.receive_nothing(timeout=0.1), "nothing was pushed yet"
        ids = (people["reviewer1"].pk, people["reviewer2"].pk, people["requester"].pk)
        push_from_another_process(f"live.Change({public_id!r}, {ids!r})")
        for communicator, (_, view) in zip(sockets, pages, strict=True):
            row = f'<tr id="{"mine" if view == "mine" else "request"}-{public_id}"'  # its row
            assert row in await communicator.receive_from(timeout=10)
            await communicator.disconnect()

    async_to_sync(scenario)()


def test_the_pages_of_one_person_share_one_drawing_of_a_change() -> None:
    calls: list[str] = []

    async def scenario() -> list[str]:
        drawings = Drawings()

        def drawer(html: str) -> Callable[[], Awaitable[str]]:
            async def draw() -> str:
                calls.append(html)
                await asyncio.sleep(0.01)
                return html

            return draw

        same = ("change-1", "7", "request", "abc", "")
        other_person = ("change-1", "8", "request", "abc", "")
        return await asyncio.gather(
            *(drawings.draw(same, drawer("seven")) for _ in range(50)),
            drawings.draw(other_person, drawer("eight")),
            drawings.draw(("change-2", *same[1:]), drawer("seven again")),
        )

    drawn = asyncio.run(scenario())
    assert drawn == ["seven"] * 50 + ["eight", "seven again"]
    assert sorted(calls) == ["eight", "seven", "seven again"]  # one drawing per person and change
