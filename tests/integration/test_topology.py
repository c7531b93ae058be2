"""The production topology without Docker: two web processes (uvicorn), the interactive and the
bulk worker (`manage.py temporal_worker --queue ...`), the Temporal dev server, a PostgreSQL
cluster of the test's own and Redis, each a process of its own, as docker-compose.yml runs them.

A decision made through web process A shows live on a staff dashboard connected to web process
B (the worker's push goes through Redis); with the bulk worker killed (SIGKILL), the interactive
one carries on, and every email goes once. The bulk pool also delivers the webhooks: what was
recorded while it was dead (and its listener down) reaches the listener once it is back, and no
event twice."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid

import pytest
import redis

from tests.conftest import WebhookListener, free_port, wait_until
from tests.integration import test_faults as faults
from tests.integration.test_faults import SUBMIT, App, Mailbox
from tests.test_run_command import Browser

pytestmark = pytest.mark.temporal_server
REDIS_DB = 12  # of the machine's Redis; the benchmark takes 13
# The fault tests' processes and their fixtures: a PostgreSQL cluster, an SMTP server, the app.
scratch_postgres, mailbox, app = faults.scratch_postgres, faults.mailbox, faults.app

SUBSCRIBE = """
import json
from django.contrib.auth.models import User
from approvals import services
from approvals.models import WebhookSubscriber
subscriber = services.subscriber_save(
    subscriber=None, url=URL, description="", events=list(WebhookSubscriber.Event.values), is_active=True,
    by=User.objects.get(username="admin"),
)
print(json.dumps(subscriber.secret))
"""


@pytest.fixture
def redis_url() -> str:
    url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    try:
        redis.Redis.from_url(url).flushdb()
    except redis.ConnectionError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    return url


async def dashboard_hears(port: int, cookie: str, expect: str, timeout: float) -> str:
    """Open the staff dashboard's live socket on this web process, and return the first push
    that contains `expect`."""
    import websockets

    origin = f"http://127.0.0.1:{port}"
    async with websockets.connect(
        f"ws://127.0.0.1:{port}/ws/live/?view=dashboard",
        additional_headers={"Cookie": cookie, "Origin": origin},
    ) as socket:
        async with asyncio.timeout(timeout):
            while True:
                message = str(await socket.recv())
                if expect in message:
                    return message


def session_cookie(web: Browser) -> str:
    jar = next(h for h in web.opener.handlers if isinstance(h, urllib.request.HTTPCookieProcessor)).cookiejar
    return "; ".join(f"{c.name}={c.value}" for c in jar)


def test_two_web_processes_and_two_workers_share_the_work_and_a_killed_worker_loses_nothing(
    app: App, mailbox: Mailbox, redis_url: str, listener: WebhookListener
) -> None:
    app.env["REDIS_URL"] = redis_url
    secret = app.shell(SUBSCRIBE.replace("URL", repr(listener.url)))
    port_a, port_b = free_port(), free_port()
    app.web(port_a)
    app.web(port_b)
    interactive = app.worker("interactive")
    bulk = app.worker("bulk")

    public_id = app.shell(SUBMIT)
    wait_until(lambda: app.status(public_id) == "in_review", timeout=60, what="review")

    staff = Browser(f"http://127.0.0.1:{port_b}")
    staff.submit("/accounts/login/", {"username": "admin", "password": "demo-pass-123"})
    reviewer = Browser(f"http://127.0.0.1:{port_a}")
    reviewer.submit("/accounts/login/", {"username": "reviewer1", "password": "demo-pass-123"})

    pushed = asyncio.run(approve_on_a_watching_b(reviewer, staff, port_b, public_id))
    assert "Standing desk</a>: approved by reviewer1" in pushed
    wait_until(lambda: app.status(public_id) == "approved", timeout=30, what="the approval")

    wait_until(lambda: len(mailbox.messages) >= 3, timeout=30, what="the review emails and the decision's")
    before = len(mailbox.messages)

    wait_until(lambda: len(listener.ids()) >= 3, timeout=30, what="the first request's webhooks")

    # The bulk worker dies, and the webhook listener is down; the interactive worker carries on
    # with the next request.
    listener.down()
    bulk.kill()
    bulk.wait(10)
    second = app.shell(SUBMIT)
    wait_until(lambda: app.status(second) == "in_review", timeout=60, what="the second request's review")
    wait_until(lambda: len(mailbox.messages) >= before + 2, timeout=30, what="the second request's emails")
    assert interactive.poll() is None
    keys = mailbox.keys()
    assert len(keys) == len(set(keys)), keys  # none twice

    # The bulk pool comes back, then the listener: it gets what was recorded meanwhile, once.
    app.worker("bulk")
    wait_until(
        lambda: app.query("SELECT count(*) FROM approvals_webhookattempt WHERE error <> ''")[0][0] > 0,
        timeout=60,
        what="an attempt at the second request's webhooks, refused",
    )
    listener.up()
    recorded = {f"evt_{row[0].hex}" for row in app.query("SELECT public_id FROM approvals_webhookevent")}
    assert len(recorded) == 5  # submitted, stage started, decided; submitted, stage started
    wait_until(lambda: set(listener.ids()) == recorded, timeout=60, what="every webhook, once it is back")
    assert sorted(listener.ids()) == sorted(recorded)  # none twice
    assert {event["id"] for event in listener.events(secret)} == recorded  # each signed
    ready = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port_a}/readyz", timeout=10).read())
    assert ready["status"] == "ready", ready


async def approve_on_a_watching_b(reviewer: Browser, staff: Browser, port_b: int, public_id: str) -> str:
    """Approve through web A's form while the staff dashboard on web B listens; what B pushed."""
    heard = "Standing desk</a>: approved by reviewer1"
    watching = asyncio.create_task(dashboard_hears(port_b, session_cookie(staff), heard, 30))
    await asyncio.sleep(1)
    _, _, page = await asyncio.to_thread(reviewer.get, f"/requests/{public_id}/")
    token = page.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    body = f"csrfmiddlewaretoken={token}&kind=approve&comment=Fine&action_id={uuid.uuid4()}".encode()
    request = urllib.request.Request(
        f"{reviewer.base}/requests/{public_id}/act/",
        data=body,
        headers={"Referer": f"{reviewer.base}/requests/{public_id}/"},
    )
    answer = await asyncio.to_thread(reviewer.opener.open, request, None, 20)
    assert answer.status == 200
    return await watching
