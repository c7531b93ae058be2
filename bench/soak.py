"""The chaos soak: people keep working while any process of the app is killed at any moment; once
the load stops and the system settles, the books must balance.

    .venv/bin/python bench/soak.py --seconds 120 --seed 349 --faults 6 --fault-every 8 16  # CI's
    .venv/bin/python bench/soak.py --seconds 600 --seed 1     # before a release, several seeds

It starts the production topology on loopback, each part a process of its own: two web processes
(uvicorn), the interactive and the bulk worker, the Temporal dev server on a persistent file, a
PostgreSQL cluster of its own and a Redis server of its own (bench/processes.py), beside an SMTP
server, a webhook receiver and a purchase-order supplier in this process. Simulated requesters
submit through the HTTP API, four in ten of them purchases whose fulfilment sagas call the
supplier (which fails now and then, and refuses one amount for good), two in ten of a type that
holds decisions for an undo period. Simulated reviewers, through either web process, approve,
reject, comment and ask for changes through the API; do the same on the request's page (logged
in, with the CSRF token), delegate to a deputy there and undo a held decision now and then; and
use the one-click links of the emails they were sent, a link that worked now and then twice. A
small access-review campaign runs on the bulk worker, its owner keeping reviews through the
browser's pages; short deadlines and reminders keep timers firing.
Every API call is made with an Idempotency-Key and every form with its action id, each retried
as a careful client retries, and every answer the client saw is logged.

Meanwhile faults come at moments drawn from the seeded generator, so that a failing seed runs
again the same way: SIGKILL of a web process, a worker or the Temporal server (each restarted
after a pause), a fast stop and start of PostgreSQL and of Redis, SIGSTOP and SIGCONT of a worker.

Then, with everything back up and the requests run to their ends, it checks the invariants
(bench/soak_checks.py) and prints each with its count; it exits 1 if one fails.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.message
import email.policy
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from approvals.client.connection import DEV_SERVER_ARGS, DEV_SERVER_FILE_ARGS  # noqa: E402
from bench import processes  # noqa: E402
from bench.processes import JsonHandler, ScratchPostgres, ScratchRedis, free_port, listening  # noqa: E402
from bench.run import HISTORY, SOAK, binary, revision, wait_for  # noqa: E402

PASSWORD = "soak-pass-123"
ACTION_KINDS = ["approve", "approve", "approve", "reject", "comment", "comment", "request_changes"]
WEB_KINDS = ["approve", "approve", "reject", "request_changes", "comment", "delegate", "delegate"]
UNDO_SECONDS = 5  # the undo period of the "Soak undo" type
# Where an email link's decision stands, as its page (and the page it polls) says.
STATUS = re.compile(
    r'id="decision-([^"]+)" class="decision-status" data-testid="decision-status" data-status="(\w+)"'
)
FAULTS = [
    "kill web-a",
    "kill web-b",
    "kill worker",
    "kill bulk-worker",
    "kill temporal",
    "restart postgres",
    "restart redis",
    "pause worker",
]


@dataclass
class Knobs:
    seconds: float
    seed: int
    requesters: int = 3
    reviewers: int = 4
    holders: int = 40  # of the access the campaign reviews
    faults: int = 1000  # at most this many
    fault_every: tuple[float, float] = (5.0, 12.0)  # seconds between faults, drawn uniformly
    pause: tuple[float, float] = (0.5, 4.0)  # seconds a fault lasts before its restart
    settle_seconds: float = 240.0


@dataclass
class Call:
    """One logical call of a simulated person, as the client saw it end: `acked` (its answer says
    it took effect), `refused` (a 4xx: it did not), or `unknown` (no answer, 5xx, or 202 pending:
    it may or may not have)."""

    who: str
    kind: str  # create, approve, reject, comment, request_changes, delegate, undo, keep, click again
    key: str  # its Idempotency-Key (api), its form's action id (web), the link's token (email)
    request: str  # the request's public id ("" where the answer never said)
    outcome: str = "unknown"
    status: int = 0
    tries: int = 0
    via: str = "api"  # api, web (a page's form), email (a one-click link)
    target: str = ""  # an undo's: the action id of the decision it undoes


@dataclass
class Log:
    calls: list[Call] = field(default_factory=list)
    faults: list[tuple[float, str]] = field(default_factory=list)  # (seconds into the load, fault)
    started: float = 0.0  # time.monotonic() as the load started


# --- The processes ----------------------------------------------------------------------------


class Mailbox:
    """An SMTP server's handler that keeps each message's idempotency key (when each copy came,
    with its Message-ID) and, by recipient, the one-click links it was sent."""

    LINK = re.compile(r"^ *(Approve|Reject): +(\S+/email/[^/\s]+/) *$", re.MULTILINE)

    def __init__(self) -> None:
        self.copies: dict[str, list[tuple[float, str]]] = {}  # key -> (when, Message-ID) of each
        self.links: dict[str, list[tuple[str, str]]] = {}  # address -> (approve or reject, URL)
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(("plain",))
        text = (
            body.get_content().replace("\r\n", "\n") if isinstance(body, email.message.EmailMessage) else ""
        )
        with self.lock:
            key = str(message["X-Idempotency-Key"]).strip()  # (a long one comes folded)
            self.copies.setdefault(key, []).append((time.monotonic(), str(message["Message-ID"]).strip()))
            for address in envelope.rcpt_tos:
                links = self.links.setdefault(address.lower(), [])
                links += [(verb.lower(), url) for verb, url in self.LINK.findall(text)]
        return "250 Message accepted"

    def counts(self) -> dict[str, int]:
        """How many copies of each key arrived."""
        with self.lock:
            return {key: len(copies) for key, copies in self.copies.items()}

    def recent_links(self, address: str, last: int) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.links.get(address, [])[-last:])


class Hooks:
    """A webhook receiver that counts each event id it is sent (and answers 2xx)."""

    def __init__(self) -> None:
        self.ids: Counter[str] = Counter()
        hooks = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hooks.ids[self.headers.get("webhook-id", "")] += 1
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Supplier:
    """The purchase-order service fulfilment sagas call: an order per Idempotency-Key, whatever
    is sent again under it. It refuses orders of REFUSED_AMOUNT for good (the saga rolls back at
    once), and now and then fails for a moment (503) or places the order and loses its answer,
    drawn from its own seeded generator."""

    REFUSED_AMOUNT = "13.00"

    def __init__(self, seed: int) -> None:
        self.orders: dict[str, str] = {}  # idempotency key -> order number
        self.cancelled: set[str] = set()
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        supplier = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                body = self.json_body()
                with supplier.lock:
                    status, answer = supplier.answer(self.path, self.headers.get("Idempotency-Key", ""), body)
                self.answer(status, answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/orders"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        luck = self.rng.random()
        if luck < 0.1:
            return 503, {"error": "busy for a moment"}
        if path == "/orders":
            if str(body.get("amount")) == self.REFUSED_AMOUNT:
                return 422, {"error": "that amount is refused"}
            number = self.orders.setdefault(key, f"EXT-{len(self.orders) + 1}")
            return (
                (503, {"error": "placed, and the answer lost"}) if luck < 0.2 else (201, {"number": number})
            )
        if path == "/orders/cancel":  # by the key it was placed under, its answer lost
            if (number := self.orders.get(str(body.get("key")))) is None:
                return 404, {"error": "no such order"}
            self.cancelled.add(number)
            return 200, {"number": number}
        self.cancelled.add(path.split("/")[2])
        return 200, {}

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"orders": dict(self.orders), "cancelled": sorted(self.cancelled)}


class Topology:
    def __init__(self, scratch: Path, seed: int) -> None:
        from aiosmtpd.controller import Controller

        self.scratch = scratch
        self.postgres = ScratchPostgres()
        self.db_url = self.postgres.create("soak")
        self.redis = ScratchRedis()
        self.mailbox = Mailbox()
        self.smtp = Controller(self.mailbox, hostname="127.0.0.1", port=free_port())
        self.smtp.start()
        self.hooks = Hooks()
        self.supplier = Supplier(seed)
        self.temporal_port = free_port()
        self.address = f"127.0.0.1:{self.temporal_port}"
        self.web_ports = {"web-a": free_port(), "web-b": free_port()}
        self.bases = [f"http://127.0.0.1:{port}" for port in self.web_ports.values()]
        keep = {"PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV"}
        self.env = {key: value for key, value in os.environ.items() if key in keep}
        self.env.update(
            DATABASE_URL=self.db_url,
            REDIS_URL=self.redis.url,
            DATA_DIR=str(scratch / "data"),
            DJANGO_SETTINGS_MODULE="approvals.settings",
            TEMPORAL_ADDRESS=self.address,
            TEMPORAL_RPC_TIMEOUT="5",
            SITE_URL=self.bases[0],
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(self.smtp.port),
            EMAIL_TIMEOUT="20",
            LOG_LEVEL="WARNING",
            SESSION_COOKIE_SECURE="0",
            CSRF_COOKIE_SECURE="0",
            LOGIN_FAILURE_LIMIT="100000",
            API_RATE_LIMIT="100000",
            WEBHOOK_TIMEOUT="5",
            PURCHASE_ORDER_URL=self.supplier.url,
            PURCHASE_ORDER_TIMEOUT="5",
        )
        uvicorn = [sys.executable, "-m", "uvicorn", "approvals.asgi:application", "--host", "127.0.0.1"]
        self.commands: dict[str, list[str]] = {
            "temporal": [
                binary("temporal"),
                "server",
                "start-dev",
                "--headless",
                "--db-filename",
                str(scratch / "temporal.sqlite"),
                "--ip",
                "127.0.0.1",
                "--port",
                str(self.temporal_port),
                "--log-level",
                "error",
                *DEV_SERVER_ARGS,
                *DEV_SERVER_FILE_ARGS,
            ],
            "worker": [sys.executable, "manage.py", "temporal_worker", "--queue", "interactive"],
            "bulk-worker": [sys.executable, "manage.py", "temporal_worker", "--queue", "bulk"],
            **{
                name: [*uvicorn, "--port", str(port), "--log-level", "warning"]
                for name, port in self.web_ports.items()
            },
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        log = (self.scratch / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            self.commands[name], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        if name == "temporal":
            wait_for("Temporal", lambda: listening(self.temporal_port), 60)
        elif name in self.web_ports:
            wait_for(name, lambda: listening(self.web_ports[name]), 60)

    def up(self) -> None:
        self.manage("migrate", "--noinput")
        for name in self.commands:
            self.start(name)

    def ensure_up(self) -> None:
        """Restart whatever is down (after the faults)."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                self.start(name)

    def signal(self, name: str, sig: int) -> None:
        self.processes[name].send_signal(sig)

    def manage(
        self, *args: str, timeout: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return processes.manage(*args, env=self.env, timeout=timeout, check=check)

    def shell(self, code: str, **env: str) -> Any:
        """Run Python in the app (Django set up); it prints one JSON value last."""
        return processes.shell(code, env={**self.env, **env}, timeout=900)

    def down(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.send_signal(signal.SIGINT)
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        self.smtp.stop()
        self.hooks.server.shutdown()
        self.supplier.server.shutdown()
        self.redis.stop()
        self.postgres.destroy()


SETUP = """
import json
from datetime import timedelta
from django.contrib.auth.models import Group, User
from approvals import services
from decimal import Decimal
from django.utils import timezone
from approvals.models import (
    AccessGrant, ApprovalRequest, CostCentre, RequestType, Resource, Stage, WebhookSubscriber,
)
from approvals.services import tokens
people = {}
reviewers = Group.objects.create(name="Soak reviewers")
for name in [f"requester{i}" for i in range(%(requesters)d)] + [f"reviewer{i}" for i in range(%(reviewers)d)]:
    user = User.objects.create_user(name, email=f"{name}@example.com", password=%(password)r)
    if name.startswith("reviewer"):
        user.groups.add(reviewers)
    people[name] = tokens.token_create(user=user, name="soak", scopes=["read", "create", "decide"])[1]
# The one reviewers delegate to: they approve a type nobody asks for, so that a stage of these
# may be handed to them (whom no policy asks cannot be delegated to), and none until one is.
deputy = User.objects.create_user("deputy0", email="deputy0@example.com", password=%(password)r)
people["deputy0"] = tokens.token_create(user=deputy, name="soak", scopes=["read", "create", "decide"])[1]
admin = User.objects.create_superuser("admin", email="admin@example.com", password=%(password)r)
standby = RequestType.objects.create(name="Soak standby", slug="soak-standby", undo_seconds=0)
Stage.objects.create(request_type=standby, name="Review").approver_users.set([deputy])
kind = RequestType.objects.create(name="Soak", slug="soak", undo_seconds=0, distinct_approvers=False)
stage = Stage.objects.create(
    request_type=kind, name="Review", deadline=timedelta(seconds=%(deadline)d),
    reminder_interval=timedelta(seconds=%(reminder)d), on_exhausted="expire",
)
stage.approver_groups.set([reviewers])
# Decisions held for an undo period first: undone by their maker, let go, or in effect after it.
held = RequestType.objects.create(
    name="Soak undo", slug="soak-undo", undo_seconds=%(undo)d, distinct_approvers=False
)
Stage.objects.create(
    request_type=held, name="Review", deadline=timedelta(seconds=%(deadline)d),
    reminder_interval=timedelta(seconds=%(reminder)d), on_exhausted="expire",
).approver_groups.set([reviewers])
# Purchases: approved, each runs a fulfilment saga (reserve the budget, then order from the supplier).
order = RequestType.objects.create(
    name="Soak order", slug="soak-order", undo_seconds=0, distinct_approvers=False, fulfilment="purchase"
)
Stage.objects.create(
    request_type=order, name="Review", deadline=timedelta(seconds=%(deadline)d),
    reminder_interval=timedelta(seconds=%(reminder)d), on_exhausted="expire",
).approver_groups.set([reviewers])
centre = CostCentre.objects.create(code="soak", name="Soak")
services.budget_allocate(cost_centre=centre, amount=Decimal("1000000"), key="soak:budget")
services.subscriber_save(
    subscriber=None, url=%(hooks)r, description="soak", events=list(WebhookSubscriber.Event.values),
    is_active=True, by=admin,
)
# A small access review: holders of a drive reviewer0 owns, kept at its deadline unless decided.
now = timezone.now()
drive = Resource.objects.create(
    code="soak-drive", name="Soak drive", roles="read", owner=User.objects.get(username="reviewer0"),
)
for n in range(%(holders)d):
    holder = User.objects.create_user(f"holder{n}", email=f"holder{n}@example.com")
    held = ApprovalRequest.objects.create(
        request_type=kind, requester=holder, title="Soak drive", status="approved", resource=drive,
        access_role="read", access_days=90, workflow_started_at=now,
    )
    AccessGrant.objects.create(
        key=f"seed:{held.public_id}", request=held, holder=holder, resource=drive, role="read",
        starts_at=now, ends_at=now + timedelta(days=90),
    )
services.campaign_start(
    actor=admin, name="Soak review", resource=drive, role="", reviewer="owner",
    deadline=now + timedelta(seconds=%(campaign)d), remind_every=timedelta(minutes=1),
    escalate_after=None, end_rule="keep",
)
print(json.dumps({"tokens": people, "deputy": deputy.pk}))
"""


# --- The load ---------------------------------------------------------------------------------


@dataclass
class People:
    """What the simulated people share: the web processes, the mailbox their email arrives in,
    and the user id of the person reviewers delegate to."""

    bases: list[str]
    mailbox: Mailbox
    deputy: int


class Browser:
    """A person's browser on the app's pages, through either web process: it logs in again
    whenever the session is gone, and sends the CSRF token with every form."""

    def __init__(self, name: str, bases: list[str], rng: random.Random) -> None:
        self.name, self.bases, self.rng = name, bases, rng
        self.http = httpx.AsyncClient(timeout=15, follow_redirects=False)

    def csrf(self) -> dict[str, str]:
        return {"X-CSRFToken": self.http.cookies.get("csrftoken") or ""}

    async def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        """One request (logged in first if the page asks); None when no answer came."""
        headers = kwargs.pop("headers", {})
        for _ in range(3):
            base = self.rng.choice(self.bases)
            try:
                answer = await self.http.request(
                    method, f"{base}{path}", headers={**self.csrf(), **headers}, **kwargs
                )
                if answer.status_code != 302 or "/accounts/login/" not in answer.headers.get("location", ""):
                    return answer
                await self.http.get(f"{base}/accounts/login/")
                await self.http.post(
                    f"{base}/accounts/login/",
                    data={"username": self.name, "password": PASSWORD},
                    headers=self.csrf(),
                )
            except httpx.HTTPError:
                return None
        return None


def outcome(status: int) -> str:
    """What a person may conclude from an answer's status: it took effect (200, 201), it did not
    (a 4xx, but for 429), or they cannot tell (no answer, a 5xx, 202 pending)."""
    if status in (200, 201):
        return "acked"
    return "refused" if 400 <= status < 500 and status != 429 else "unknown"


class Person:
    def __init__(self, name: str, token: str, people: People, rng: random.Random, log: Log) -> None:
        self.name, self.rng, self.log, self.people = name, rng, log, people
        self.http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=15)
        self.browser = Browser(name, people.bases, rng)
        self.clicked: set[str] = set()  # the email links this person has used

    async def call(self, method: str, path: str, record: Call | None, **kwargs: Any) -> httpx.Response | None:
        """One call to the API, to either web process (the other if one is down), retried with
        the same Idempotency-Key while its answer is unknown."""
        headers = {"Idempotency-Key": record.key} if record else {}

        async def send() -> httpx.Response | None:
            base = self.rng.choice(self.people.bases)
            try:
                return await self.http.request(method, f"{base}/api/v1{path}", headers=headers, **kwargs)
            except httpx.HTTPError:
                return None

        return await self.retried(record, send)

    async def retried(
        self, record: Call | None, send: Callable[[], Awaitable[httpx.Response | None]]
    ) -> httpx.Response | None:
        """`send`, sent again while its answer is unknown (none, a 5xx, 202 pending), as a careful
        client does, four times at most; what the client saw in the end goes into the log."""
        answer: httpx.Response | None = None
        for attempt in range(4):
            answer = await send()
            if record is not None:
                record.tries = attempt + 1
            if answer is not None and answer.status_code < 500 and answer.status_code != 202:
                break
            await asyncio.sleep(0.5 * 2**attempt)
        if record is not None:
            record.status = answer.status_code if answer is not None else 0
            record.outcome = outcome(record.status)
            self.log.calls.append(record)
        return answer

    async def requester(self, until: float) -> None:
        while time.monotonic() < until:
            record = Call(self.name, "create", str(uuid.uuid4()), "")
            body: dict[str, Any] = {
                "type": "soak",
                "title": f"Soak {record.key[:8]}",
                "details": "Under chaos",
            }
            luck = self.rng.random()
            if luck < 0.4:  # a purchase, now and then of an amount the supplier refuses
                amount = self.rng.choice(["120.00", "250.00", Supplier.REFUSED_AMOUNT])
                body |= {"type": "soak-order", "amount": amount, "cost_centre": "soak"}
            elif luck < 0.6:  # its decisions held for an undo period first
                body["type"] = "soak-undo"
            answer = await self.call("POST", "/requests", record, json=body)
            if answer is not None and answer.status_code in (200, 201, 202):
                record.request = answer.json().get("id", "")
            await asyncio.sleep(self.rng.uniform(0.5, 2.0))

    async def reviewer(self, until: float) -> None:
        """Decide what waits in the inbox, now through the API, now on the request's page
        (delegating too, and undoing a decision now and then), now from an email's link."""
        while time.monotonic() < until:
            luck = self.rng.random()
            if luck < 0.15:
                await self.click_email_link()
            else:
                inbox = await self.call("GET", "/inbox", None, params={"state": "waiting"})
                ok = inbox is not None and inbox.status_code == 200
                items = inbox.json().get("results", []) if inbox is not None and ok else []
                # Purchases first, half the time: each approved one runs a saga.
                purchases = [i for i in items if i["request"]["type"] == "soak-order"]
                if purchases and self.rng.random() < 0.5:
                    items = purchases
                if items:
                    request = self.rng.choice(items)["request"]["id"]
                    if luck < 0.4:
                        await self.decide_in_browser(request)
                    else:
                        kind = self.rng.choice(ACTION_KINDS)
                        record = Call(self.name, kind, str(uuid.uuid4()), request)
                        body = {"kind": kind, "comment": f"{kind} by {self.name}"}
                        await self.call("POST", f"/requests/{request}/actions", record, json=body)
            await asyncio.sleep(self.rng.uniform(0.3, 1.5))

    async def decide_in_browser(self, request: str) -> None:
        kinds = WEB_KINDS if self.name != "deputy0" else [k for k in WEB_KINDS if k != "delegate"]
        kind = self.rng.choice(kinds)
        fields = {"delegate": str(self.people.deputy)} if kind == "delegate" else {}
        record, answer = await self.act_in_browser(request, kind, **fields)
        if record.outcome == "acked" and answer is not None and "data-undo" in answer.text:
            if self.rng.random() < 0.6:  # held for its undo period: undo it, in time or too late
                await asyncio.sleep(self.rng.uniform(0, UNDO_SECONDS * 1.5))
                await self.act_in_browser(request, "undo", target=record.key)

    async def act_in_browser(
        self, request: str, kind: str, **fields: str
    ) -> tuple[Call, httpx.Response | None]:
        """Press the button on the request's page (an htmx form, with the id the page gave it):
        sent again while the answer is unknown, as a person clicks again."""
        record = Call(self.name, kind, str(uuid.uuid4()), request, via="web", target=fields.get("target", ""))
        data = {"action_id": record.key, "kind": kind, **fields}
        if kind not in ("undo", "delegate"):
            data["comment"] = f"{kind} by {self.name} on the page"
        answer = await self.retried(
            record,
            lambda: self.browser.send(
                "POST", f"/requests/{request}/act/", data=data, headers={"HX-Request": "true"}
            ),
        )
        return record, answer

    async def click_email_link(self) -> None:
        """Open one of the last links this person was emailed, confirm it, and follow where the
        decision stands; now and then click it again once it worked."""
        links = self.people.mailbox.recent_links(f"{self.name}@example.com", 6)
        fresh = [(verb, url) for verb, url in links if url not in self.clicked]
        if not fresh:
            return
        verb, url = self.rng.choice(fresh)
        self.clicked.add(url)
        path = httpx.URL(url).path
        record = Call(self.name, verb, path.split("/")[2], "", via="email")
        self.log.calls.append(record)
        page = await self.browser.send("GET", path)
        if page is None or page.status_code != 200:
            record.status, record.outcome = (page.status_code if page else 0), "refused"  # nothing sent
            return
        answer = None
        for attempt in range(3):
            record.tries = attempt + 1
            answer = await self.browser.send(
                "POST", path, data={"comment": f"{verb} by {self.name} by email"}
            )
            if answer is not None and answer.status_code < 500:
                break
            await asyncio.sleep(1)
        record.status = answer.status_code if answer is not None else 0
        if answer is None or answer.status_code >= 500 or (answer.status_code >= 400 and record.tries > 1):
            return  # unknown: it may have been taken before its answer was lost
        if answer.status_code >= 400:
            record.outcome = "refused"
            return
        status = await self.decision(answer.text, record)
        record.outcome = "acked" if status in ("done", "held", "lapsed") else "unknown"
        if record.outcome == "acked" and self.rng.random() < 0.35:
            again = Call(self.name, "click again", record.key, record.request, via="email")
            second = await self.browser.send("GET", path)
            again.status = second.status_code if second is not None else 0
            again.outcome = outcome(again.status)
            self.log.calls.append(again)

    async def decision(self, page: str, record: Call) -> str:
        """Where the link's decision stands, asked again every second while it is only sent, as
        its page asks (for 20 s at most)."""
        status = STATUS.search(page)
        request = re.search(r'href="/requests/([0-9a-f-]{36})/"', page)
        if status is None or request is None:
            return "unknown"
        record.request = request.group(1)
        action_id, said = status.groups()
        for _ in range(20):
            if said != "sent":
                break
            await asyncio.sleep(1)
            answer = await self.browser.send("GET", f"/requests/{record.request}/decisions/{action_id}/")
            found = STATUS.search(answer.text) if answer is not None and answer.status_code == 200 else None
            said = found.group(2) if found else said
        return said

    async def campaign_reviewer(self, until: float) -> None:
        """Keep reviews of the campaign one at a time through the browser's own pages (logged in,
        with the CSRF token), as the drive's owner, until none is left or the load ends."""
        browser = Browser(self.name, self.people.bases, self.rng)  # a tab of its own
        while time.monotonic() < until:
            page = await browser.send("GET", "/inbox/reviews/")
            ok = page is not None and page.status_code == 200
            ids = re.findall(r'name="ids" value="(\d+)"', page.text) if page is not None and ok else []
            if ids:
                await self.keep(browser, self.rng.choice(ids))
            await asyncio.sleep(self.rng.uniform(0.5, 2.0))
        await browser.http.aclose()

    async def keep(self, browser: Browser, item: str) -> None:
        record = Call(self.name, "keep", item, "campaign", via="web")
        for attempt in range(3):  # no answer: a person clicks again
            record.tries = attempt + 1
            answer = await browser.send(
                "POST",
                "/inbox/reviews/decide/",
                data={"ids": item, "kind": "keep", "comment": "Still needed"},
            )
            if answer is None:
                await asyncio.sleep(1)
                continue
            record.status = answer.status_code
            told = re.search(r'id="review-results-title">(\d+) of \d+ kept<', answer.text)
            if told and told.group(1) == "1":
                record.outcome = "acked"
            elif told and 'class="pending"' not in answer.text:
                record.outcome = "refused"
            if answer.status_code < 500:
                break
        self.log.calls.append(record)

    async def close(self) -> None:
        await self.http.aclose()
        await self.browser.http.aclose()


# --- The faults --------------------------------------------------------------------------------


async def faults(
    topology: Topology, rng: random.Random, knobs: Knobs, until: float, log: Log, start: float
) -> None:
    while (
        len(log.faults) < knobs.faults
        and (wait := rng.uniform(*knobs.fault_every)) < until - time.monotonic()
    ):
        await asyncio.sleep(wait)
        fault = rng.choice(FAULTS)
        pause = rng.uniform(*knobs.pause)
        log.faults.append((round(time.monotonic() - start, 1), fault))
        print(f"{time.monotonic() - start:7.1f} s  {fault} ({pause:.1f} s)", flush=True)
        verb, name = fault.split()
        if verb == "kill":
            topology.signal(name, signal.SIGKILL)
            topology.processes[name].wait(10)
            await asyncio.sleep(pause)
            await asyncio.to_thread(topology.start, name)
        elif verb == "pause":
            topology.signal(name, signal.SIGSTOP)
            await asyncio.sleep(pause)
            topology.signal(name, signal.SIGCONT)
        elif name == "postgres":
            await asyncio.to_thread(topology.postgres.stop)
            await asyncio.sleep(pause)
            await asyncio.to_thread(topology.postgres.start)
        else:
            topology.redis.stop()
            await asyncio.sleep(pause)
            await asyncio.to_thread(topology.redis.start)


async def load(topology: Topology, setup: dict[str, Any], knobs: Knobs, log: Log) -> None:
    # The faults draw from a generator of their own, so that the seed alone says which come when;
    # each person from one of theirs.
    rng = random.Random(knobs.seed)
    start = log.started = time.monotonic()
    until = start + knobs.seconds
    shared = People(topology.bases, topology.mailbox, setup["deputy"])
    persons = [
        Person(name, token, shared, random.Random(f"{knobs.seed}:{name}"), log)
        for name, token in setup["tokens"].items()
    ]
    tasks = [
        (person.requester if person.name.startswith("requester") else person.reviewer)(until)
        for person in persons
    ]
    tasks += [person.campaign_reviewer(until) for person in persons if person.name == "reviewer0"]
    await asyncio.gather(faults(topology, rng, knobs, until, log, start), *tasks)
    for person in persons:
        await person.close()


def settle(topology: Topology, knobs: Knobs) -> tuple[float, dict[str, int]]:
    """Bring everything back, and wait until nothing waits on the system: every request ended
    (or sent back to its requester), no action pending, no email or webhook still to go. The
    seconds that took, and how many of each of those things were still under way at the end
    (none, unless the limit came first)."""
    started = time.monotonic()
    topology.ensure_up()
    deadline = started + knobs.settle_seconds
    while any((counts := topology.shell(OPEN)).values()) and time.monotonic() <= deadline:
        time.sleep(2)
    if left := {what: n for what, n in counts.items() if n}:
        print(f"Still under way after {knobs.settle_seconds:.0f} s: {left}", flush=True)
    return time.monotonic() - started, counts


OPEN = """
import json
from approvals.models import (
    ApprovalRequest, Campaign, Fulfilment, OutboundEmail, PendingAction, WebhookDelivery,
)
from workflows.types import FINAL_STATUSES
print(json.dumps({
    "requests under review": ApprovalRequest.objects.exclude(status__in=[s.value for s in FINAL_STATUSES])
    .exclude(status="changes_requested").count(),
    "actions shown pending": PendingAction.objects.count(),
    "emails to send": OutboundEmail.objects.filter(status="pending").count(),
    "webhooks to deliver": WebhookDelivery.objects.filter(status="pending").count(),
    "sagas under way": Fulfilment.objects.exclude(status__in=["fulfilled", "rolled_back"]).count(),
    "campaigns under way": Campaign.objects.exclude(status__in=["completed", "cancelled"]).count(),
    "approved purchases not fulfilled": ApprovalRequest.objects.filter(
        status="approved", request_type__fulfilment="purchase"
    ).exclude(fulfilment__in=["fulfilled", "rolled_back"]).count(),
}))
"""


SOAK_INTRO = """
Written by `bench/soak.py --record` (see the README), one row a run: the seconds of load, the
calls the simulated people made (those acknowledged to them in brackets), the faults injected,
the invariants that held of those checked, and the seconds the system took to settle once the
load stopped (everything back up, every request at its end, nothing left to send).

| Date | Revision | Seed | Load (s) | Actions (acked) | Faults | Invariants held | Settled (s) |
|---|---|---|---|---|---|---|---|
"""


def record(summary: dict[str, Any], path: Path) -> None:
    """Add this run's row to the soak's table in docs/benchmarks.md (the section bench/run.py
    keeps when it writes the rest)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if SOAK not in text:
        section = f"{SOAK}\n{SOAK_INTRO}\n"
        at = text.index(HISTORY) if HISTORY in text else len(text)
        text = text[:at].rstrip("\n") + "\n\n" + section + text[at:]
    faults = Counter(fault for _, fault in summary["fault_log"])
    held = sum(r["held"] for r in summary["invariants"])
    left = ", ".join(f"{n} {what}" for what, n in summary.get("unsettled", {}).items())
    settled = f"{summary['settle_seconds']} (gave up: {left})" if left else str(summary["settle_seconds"])
    row = (
        f"| {time.strftime('%Y-%m-%d')} | {revision()} | {summary['seed']} | {summary['seconds']:.0f} "
        f"| {summary['actions']} ({summary['acknowledged']}) "
        f"| {summary['faults']}: {', '.join(f'{n}× {f}' for f, n in sorted(faults.items()))} "
        f"| {held} of {len(summary['invariants'])} | {settled} |"
    )
    start = text.index(SOAK)
    end = text.find("\n## ", start + len(SOAK))
    end = len(text) if end < 0 else end
    section = text[start:end].rstrip("\n") + "\n" + row + "\n\n"
    path.write_text(text[:start] + section + text[end:].lstrip("\n"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120, help="How long the load runs.")
    parser.add_argument("--seed", type=int, default=7, help="The seed of the faults and the load.")
    parser.add_argument("--faults", type=int, default=1000, help="At most this many faults.")
    parser.add_argument(
        "--fault-every",
        type=float,
        nargs=2,
        default=(5.0, 12.0),
        metavar=("LOW", "HIGH"),
        help="Seconds between faults, drawn between these two (default 5 12).",
    )
    parser.add_argument("--out", type=Path, help="Write the summary (JSON) here.")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch directory (logs).")
    parser.add_argument(
        "--record",
        type=Path,
        nargs="?",
        const=ROOT / "docs" / "benchmarks.md",
        help="Add the run's figures to this table (docs/benchmarks.md unless told).",
    )
    options = parser.parse_args(argv)
    knobs = Knobs(
        seconds=options.seconds,
        seed=options.seed,
        faults=options.faults,
        fault_every=tuple(options.fault_every),
    )
    print(f"Soak: seed {knobs.seed}, {knobs.seconds:.0f} s of load", flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="approvals-soak-"))
    topology = Topology(scratch, knobs.seed)
    log = Log()
    try:
        topology.up()
        setup = SETUP % {
            "requesters": knobs.requesters,
            "reviewers": knobs.reviewers,
            "password": PASSWORD,
            "deadline": 25,
            "reminder": 8,
            "hooks": topology.hooks.url,
            "holders": knobs.holders,
            "undo": UNDO_SECONDS,
            "campaign": max(65, int(knobs.seconds * 0.75)),  # its deadline, from now
        }
        asyncio.run(load(topology, topology.shell(setup), knobs, log))
        settled, under_way = settle(topology, knobs)
        from bench import soak_checks

        results = [
            soak_checks.settled_judged(under_way, knobs.settle_seconds),
            *soak_checks.run_all(topology, log),
        ]
    finally:
        topology.down()
    summary = {
        "seed": knobs.seed,
        "seconds": knobs.seconds,
        "actions": len(log.calls),
        "acknowledged": sum(c.outcome == "acked" for c in log.calls),
        "by_kind": dict(sorted(Counter(f"{c.via} {c.kind}: {c.outcome}" for c in log.calls).items())),
        "faults": len(log.faults),
        "fault_log": log.faults,
        "settle_seconds": round(settled, 1),
        "unsettled": {what: n for what, n in under_way.items() if n},  # when settling gave up
        "invariants": [asdict(r) for r in results],
        "held": all(r.held for r in results),
        "scratch": str(scratch) if options.keep else "",
    }
    print(
        f"{summary['actions']} actions ({summary['acknowledged']} acknowledged), {len(log.faults)} faults, "
        f"settled in {settled:.1f} s"
    )
    print("  " + ", ".join(f"{what} {n}" for what, n in summary["by_kind"].items()))
    for r in results:
        print(
            f"  {'held  ' if r.held else 'BROKEN'}  {r.name}: {r.count} checked"
            + (f"; {r.problem}" if r.problem else "")
        )
    print(
        f"Seed {knobs.seed}: {'every invariant held' if summary['held'] else 'AN INVARIANT BROKE'}",
        flush=True,
    )
    if options.out:
        options.out.write_text(json.dumps(summary, indent=1))
    if options.record:
        record(summary, options.record)
    if not options.keep:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    return 0 if summary["held"] else 1


if __name__ == "__main__":
    sys.exit(main())
