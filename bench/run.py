"""The benchmark: the app on its production shape, side by side with bare Temporal, in one run.

    .venv/bin/python bench/run.py           # writes bench/results.json and docs/benchmarks.md
    .venv/bin/python bench/run.py --quick   # tiny sizes, one repetition: that it runs (the suite)

It brings up the real stack, each part a process of its own on ports of its own: a Temporal dev
server (SQLite in a scratch directory), a fresh PostgreSQL database on BENCH_DATABASE_URL's
server (postgres://postgres@127.0.0.1:5432/postgres by default), Redis (BENCH_REDIS_URL, database
13 by default, emptied first), the ASGI web (uvicorn), the interactive worker and the bulk worker
(`temporal_worker --queue interactive|bulk`, a pool each); and for the twin, a worker of a trivial
workflow (bench/bare.py) on the same Temporal server. Web clients are real HTTP and
websocket clients (httpx, websockets) logged in as real users; the bare clients are temporalio
clients. Each scenario runs against the app and its bare twin in turn, `--reps` times, and each
figure is the median over the repetitions. A figure it could not measure is null, with why.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import websockets
from temporalio.client import Client

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from approvals.client.connection import DEV_SERVER_ARGS, DEV_SERVER_FILE_ARGS  # noqa: E402
from bench import processes  # noqa: E402
from bench.bare import BareDecision  # noqa: E402
from bench.processes import free_port, listening  # noqa: E402

PASSWORD = "bench-pass-123"
# The figures, exactly these keys (issue "Fast under load"); each value a number or null.
KEYS = (
    "decision_p50_ms_1",
    "decision_p50_ms_8",
    "decision_p50_ms_32",
    "decision_p99_ms_32",
    "decision_ratio_p50",
    "decision_ratio_p99",
    "decisions_per_s_32",
    "decision_throughput_ratio",
    "decision_cpu_ms",
    "decision_cpu_ratio",
    "create_per_s",
    "create_ratio",
    "live_p50_ms_200",
    "live_p99_ms_200",
    "inbox_p95_ms_100k",
    "inbox_ratio_100k_1k",
    "worker_rss_mb_10k",
    "worker_rss_ratio",
    "cold_decision_ms",
    "campaign_ratio",
)
CONCURRENCY = (1, 8, 32)
Calls = Callable[[], Awaitable[float]]  # one timed call, in ms


@dataclass(frozen=True)
class Sizes:
    reps: int
    per_reviewer: int  # decisions each reviewer makes in one repetition
    cpu_decisions: int  # decisions whose CPU is counted, one after another
    creates: int  # requests created, at 8 requesters
    live_pages: tuple[int, int]  # open pages told of one decision
    inbox_sizes: tuple[int, int, int]  # requests in the database for the inbox page
    inbox_runs: int
    rss_workflows: int  # open workflows waiting on timers, for the worker's memory
    campaign_reviews: int  # reviews of the access-review campaign run beside the decisions


FULL = Sizes(3, 4, 64, 48, (50, 200), (1_000, 10_000, 100_000), 30, 10_000, 2_000)
QUICK = Sizes(1, 1, 8, 8, (5, 10), (100, 200, 300), 3, 20, 60)


# --- Processes ------------------------------------------------------------------------------


def wait_for(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"Timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"No VmRSS for {pid}")


def binary(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"`{name}` is not installed (pip install -e .)")
    return found


class Stack:
    """Temporal, a database, Redis, the web, the worker and the bare worker, for one run."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.temporal_port, self.web_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.temporal_port}"
        self.base = f"http://127.0.0.1:{self.web_port}"
        server = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
        self.server_url = server
        self.database = f"approvals_bench_{uuid.uuid4().hex[:8]}"
        self.db_url = server.rsplit("/", 1)[0] + "/" + self.database
        self.redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
        self.task_queue = f"bench-{uuid.uuid4().hex[:8]}"
        self.bare_queue = f"bench-bare-{uuid.uuid4().hex[:8]}"
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key in {"PATH", "HOME", "LANG", "TMPDIR", "DB_POOL_SIZE"}
        }
        self.env.update(
            DATABASE_URL=self.db_url,
            REDIS_URL=self.redis_url,
            DATA_DIR=str(scratch / "data"),
            DJANGO_SETTINGS_MODULE="approvals.settings",
            TEMPORAL_ADDRESS=self.address,
            TEMPORAL_TASK_QUEUE=self.task_queue,
            SITE_URL=self.base,
            EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend",
            LOG_LEVEL="WARNING",
            SESSION_COOKIE_SECURE="0",
            CSRF_COOKIE_SECURE="0",
            LOGIN_FAILURE_LIMIT="100000",
        )

    def spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        log = (self.scratch / f"{name}.log").open("ab")
        process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def manage(self, *args: str, timeout: float = 600) -> str:
        return processes.manage(*args, env=self.env, timeout=timeout).stdout

    def shell(self, code: str, timeout: float = 900) -> Any:
        """Run Python in the app (Django set up); it prints one JSON value last."""
        return processes.shell(code, env=self.env, timeout=timeout)

    def start(self) -> None:
        import redis

        redis.Redis.from_url(self.redis_url).flushdb()
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        self.spawn(
            "temporal",
            [
                binary("temporal"),
                "server",
                "start-dev",
                "--headless",
                "--db-filename",
                str(self.scratch / "temporal.sqlite"),
                "--ip",
                "127.0.0.1",
                "--port",
                str(self.temporal_port),
                "--log-level",
                "error",
                *DEV_SERVER_ARGS,
                *DEV_SERVER_FILE_ARGS,
            ],
        )
        wait_for("Temporal", lambda: listening(self.temporal_port), 60)
        self.manage("migrate", "--noinput")
        self.worker()
        self.spawn("bulk-worker", [sys.executable, "manage.py", "temporal_worker", "--queue", "bulk"])
        self.spawn(
            "web",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "approvals.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.web_port),
                "--log-level",
                "warning",
            ],
        )
        self.spawn("bare-worker", [sys.executable, "bench/bare.py", self.address, self.bare_queue])
        wait_for("the web", lambda: listening(self.web_port), 60)

    def worker(self) -> subprocess.Popen[bytes]:
        return self.spawn(
            "worker", [sys.executable, "manage.py", "temporal_worker", "--queue", "interactive"]
        )

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db_url) as conn:
            return conn.execute(sql, params).fetchall()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        try:
            with psycopg.connect(self.server_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        except psycopg.Error as exc:
            print(f"Could not drop {self.database}: {exc}", file=sys.stderr)


# --- The app's data -------------------------------------------------------------------------

SETUP = """
import json
from datetime import timedelta
from django.contrib.auth.models import User
from approvals.models import RequestType, Stage
made = {}
for name in ["requester"] + [f"requester{i:02}" for i in range(8)] + [f"reviewer{i:02}" for i in range(32)]:
    user = User.objects.create_user(name, email=f"{name}@example.com", password=%(password)r)
    made[name] = user.pk
# One type per reviewer: each request asks one person, so that concurrent reviewers decide on
# requests of their own, as the bare twin's clients update workflows of their own. Decisions take
# effect at once (no undo period), as the bare twin's updates do.
for i in range(32):
    kind = RequestType.objects.create(
        name=f"Bench {i:02}", slug=f"bench-{i:02}", distinct_approvers=False, undo_seconds=0
    )
    stage = Stage.objects.create(request_type=kind, name="Review", deadline=timedelta(days=2))
    stage.approver_users.set([User.objects.get(username=f"reviewer{i:02}")])
print(json.dumps(made))
"""

SUBMIT = """
import json
from django.contrib.auth.models import User
from approvals import services
from approvals.models import RequestType
requester = User.objects.get(username="requester")
ids = []
for reviewer, count in %(counts)r.items():
    kind = RequestType.objects.get(slug=f"bench-{reviewer:02}")
    for n in range(count):
        request = services.request_submit(requester=requester, request_type=kind, title=f"Bench {n}")
        ids.append([reviewer, str(request.public_id)])
print(json.dumps(ids))
# The answer is out. Leave without the interpreter's teardown, which now and then crashes while
# the Temporal client's daemon thread still runs (as the shells of tests/integration/test_faults.py
# do): a failed exit here once failed the benchmark's every decision figure.
import os, sys
sys.stdout.flush()
os._exit(0)
"""


# Access held by N people, as approved access requests leave it (their grants' workflows are not
# needed: the campaign keeps them all), and a campaign over all of it reviewed by its owner.
CAMPAIGN = """
import json
from datetime import timedelta
from django.contrib.auth.models import User
from django.utils import timezone
from approvals import services
from approvals.models import AccessGrant, ApprovalRequest, RequestType, Resource
now = timezone.now()
owner = User.objects.create_user("owner", email="owner@example.com", password=%(password)r)
kind = RequestType.objects.create(name="Bench access", slug="bench-access", fulfilment="access")
resource = Resource.objects.create(code="bench", name="Bench", roles="read", owner=owner)
holders = User.objects.bulk_create(
    [User(username=f"holder{n:05}", email=f"holder{n:05}@example.com") for n in range(%(count)d)]
)
requests = ApprovalRequest.objects.bulk_create(
    ApprovalRequest(
        request_type=kind, requester=holder, title="Bench access", status="approved",
        resource=resource, access_role="read", access_days=90, workflow_started_at=now,
    )
    for holder in holders
)
AccessGrant.objects.bulk_create(
    AccessGrant(
        key=f"bench:{r.public_id}", request=r, holder=r.requester, resource=resource, role="read",
        starts_at=now, ends_at=now + timedelta(days=90),
    )
    for r in requests
)
campaign = services.campaign_start(
    actor=owner, name="Bench review", resource=resource, role="", reviewer="owner",
    deadline=now + timedelta(days=7), remind_every=None, escalate_after=None, end_rule="keep",
)
print(json.dumps(str(campaign.public_id)))
import os, sys
sys.stdout.flush()
os._exit(0)
"""

# The owner keeps every review, 500 at a time (as the Reviews tab sends a page of them).
KEEP_ALL = """
import json
from django.contrib.auth.models import User
from approvals import services
from approvals.selectors.campaigns import reviews_open_for
owner = User.objects.get(username="owner")
kept = 0
while chunk := list(reviews_open_for(user=owner)[:500]):
    kept += sum(a.ok for a in services.reviews_decide(actor=owner, items=chunk, keep=True, comment=""))
print(json.dumps(kept))
import os, sys
sys.stdout.flush()
os._exit(0)
"""


def submit(stack: Stack, counts: dict[int, int]) -> dict[int, list[str]]:
    """Submit `counts[reviewer]` requests for each reviewer; once all are in review, their ids."""
    rows = stack.shell(SUBMIT % {"counts": counts})
    ids: dict[int, list[str]] = {}
    for reviewer, public_id in rows:
        ids.setdefault(reviewer, []).append(public_id)
    everyone = [public_id for group in ids.values() for public_id in group]
    wait_for(
        f"{len(everyone)} requests in review",
        lambda: in_review(stack, everyone) == len(everyone),
        timeout=120 + len(everyone),
        interval=0.5,
    )
    return ids


def in_review(stack: Stack, public_ids: list[str]) -> int:
    """How many of these requests wait for their approver (assigned, and projected so)."""
    rows = stack.query(
        "SELECT count(*) FROM approvals_approvalrequest r WHERE status = 'in_review' "
        "AND public_id = ANY(%s::uuid[]) AND EXISTS (SELECT 1 FROM approvals_participant p "
        "WHERE p.request_id = r.id AND p.pending)",
        public_ids,
    )
    return int(rows[0][0])


class Browser:
    """A person's browser: an HTTP client with their session, and their CSRF token."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.AsyncClient(base_url=base, timeout=60)
        self.csrf = ""
        self.pending = 0
        self.resent = 0

    async def log_in(self, username: str) -> Browser:
        await self.http.get("/accounts/login/")
        token = self.http.cookies["csrftoken"]
        answer = await self.http.post(
            "/accounts/login/",
            data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token},
        )
        if answer.status_code != 302:
            raise RuntimeError(f"{username} could not log in: {answer.status_code}")
        self.csrf = self.http.cookies["csrftoken"]
        return self

    async def decide(self, public_id: str) -> float:
        """Approve from the request's page, as htmx sends it; the round trip in ms. A pending
        answer (202: no answer from the workflow in time) is counted in `pending`."""
        url = f"/requests/{public_id}/"
        form = {"kind": "approve", "action_id": str(uuid.uuid4()), "csrfmiddlewaretoken": self.csrf}
        headers = {"HX-Request": "true", "HX-Current-URL": self.base + url}
        started = time.perf_counter()
        try:
            answer = await self.http.post(url + "act/", data=form, headers=headers)
        except (httpx.ReadError, httpx.RemoteProtocolError):
            # The server closed an idle kept-alive connection just as it was reused: sent again,
            # as a browser does (the form's action id makes it count once).
            self.resent += 1
            answer = await self.http.post(url + "act/", data=form, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status_code == 202:
            self.pending += 1  # no answer from the workflow in time: told as pending
        if answer.status_code not in (200, 202):
            raise RuntimeError(f"Approving {public_id} answered {answer.status_code}: {answer.text[:300]}")
        return elapsed

    async def close(self) -> None:
        await self.http.aclose()


# --- Measuring ------------------------------------------------------------------------------


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


@dataclass
class Figures:
    values: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(KEYS))
    reasons: dict[str, str] = field(default_factory=dict)
    bare: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def put(self, key: str, value: float | None, reason: str = "") -> None:
        self.values[key] = None if value is None else round(value, 2)
        if value is None:
            self.reasons[key] = " ".join(reason.split())[:200]
        else:
            self.reasons.pop(key, None)


class Bench:
    def __init__(self, stack: Stack, sizes: Sizes, quick: bool) -> None:
        self.stack, self.sizes, self.quick = stack, sizes, quick
        self.figures = Figures()
        self.client: Client | None = None
        self.reviewers: dict[int, Browser] = {}

    async def bare_client(self) -> Client:
        if self.client is None:
            self.client = await Client.connect(self.stack.address)
        return self.client

    async def bare_workflows(self, count: int, deadline: int = 2 * 86400) -> list[str]:
        """Start `count` trivial workflows, and return once each has run its first task."""
        client = await self.bare_client()
        ids = [f"bare-{uuid.uuid4()}" for _ in range(count)]
        limit = asyncio.Semaphore(32)

        async def start(workflow_id: str) -> None:
            async with limit:
                await client.start_workflow(
                    BareDecision.run, deadline, id=workflow_id, task_queue=self.stack.bare_queue
                )

        await asyncio.gather(*(start(i) for i in ids))
        return ids

    async def bare_decide(self, workflow_id: str) -> float:
        client = await self.bare_client()
        started = time.perf_counter()
        await client.get_workflow_handle(workflow_id).execute_update(
            BareDecision.decide, {"kind": "approve", "action_id": str(uuid.uuid4())}, id=str(uuid.uuid4())
        )
        return (time.perf_counter() - started) * 1000

    async def browsers(self) -> None:
        for i in range(32):
            self.reviewers[i] = await Browser(self.stack.base).log_in(f"reviewer{i:02}")

    # Decisions ------------------------------------------------------------------------------

    async def decisions(self) -> None:
        sizes = self.sizes
        per = sizes.per_reviewer
        # Enough requests for every repetition at every concurrency, submitted up front.
        counts = {i: sum(per for c in CONCURRENCY if i < c) * sizes.reps for i in range(32)}
        counts[0] += sizes.cpu_decisions + 3  # the CPU count, a warm-up and the cold decision
        queues = submit(self.stack, counts)
        bare_total = sum(counts.values())
        bare_ids = iter(await self.bare_workflows(bare_total))
        # One of each first, uncounted: connections, caches and the first imports warm up.
        await self.reviewers[0].decide(queues[0].pop())
        await self.bare_decide(next(bare_ids))
        app: dict[int, list[float]] = {c: [] for c in CONCURRENCY}
        bare: dict[int, list[float]] = {c: [] for c in CONCURRENCY}
        app_rate: list[float] = []
        bare_rate: list[float] = []
        for _ in range(sizes.reps):
            for c in CONCURRENCY:
                work = {i: [queues[i].pop() for _ in range(per)] for i in range(c)}
                seconds, samples = await self._round(
                    {
                        i: [lambda p=p, i=i: self.reviewers[i].decide(p) for p in ids]
                        for i, ids in work.items()
                    }
                )
                app[c] += samples
                if c == 32:
                    app_rate.append(len(samples) / seconds)
                bare_work = {i: [next(bare_ids) for _ in range(per)] for i in range(c)}
                seconds, samples = await self._round(
                    {i: [lambda w=w: self.bare_decide(w) for w in ids] for i, ids in bare_work.items()}
                )
                bare[c] += samples
                if c == 32:
                    bare_rate.append(len(samples) / seconds)
        f = self.figures
        for c in CONCURRENCY:
            f.put(f"decision_p50_ms_{c}", statistics.median(app[c]))
            f.bare[f"decision_p50_ms_{c}"] = round(statistics.median(bare[c]), 2)
        f.put("decision_p99_ms_32", percentile(app[32], 0.99))
        f.bare["decision_p99_ms_32"] = round(percentile(bare[32], 0.99), 2)
        f.put("decision_ratio_p50", f.values["decision_p50_ms_32"] / f.bare["decision_p50_ms_32"])  # type: ignore[operator]
        f.put("decision_ratio_p99", f.values["decision_p99_ms_32"] / f.bare["decision_p99_ms_32"])  # type: ignore[operator]
        f.put("decisions_per_s_32", statistics.median(app_rate))
        f.bare["decisions_per_s_32"] = round(statistics.median(bare_rate), 2)
        f.put("decision_throughput_ratio", statistics.median(app_rate) / statistics.median(bare_rate))
        f.details["decisions_counted"] = {c: len(app[c]) for c in CONCURRENCY}
        f.details["decisions_answered_pending"] = sum(b.pending for b in self.reviewers.values())
        f.details["decisions_sent_again_after_a_reset"] = sum(b.resent for b in self.reviewers.values())
        await self.decision_cpu(queues[0], bare_ids)
        self.cold_queue = queues[0]

    async def _round(
        self, work: dict[int, list[Callable[[], Awaitable[float]]]]
    ) -> tuple[float, list[float]]:
        """Each worker of `work` runs its calls one after another, all workers at once."""
        samples: list[float] = []

        async def one(calls: list[Calls]) -> None:
            for call in calls:
                samples.append(await call())

        started = time.perf_counter()
        await asyncio.gather(*(one(calls) for calls in work.values()))
        return time.perf_counter() - started, samples

    async def decision_cpu(self, queue: list[str], bare_ids: Iterator[str]) -> None:
        """CPU time per decision, summed over the processes that do the work: the web, the worker
        and Temporal for the app; the bare client (this process), its worker and Temporal bare."""
        n, stack = self.sizes.cpu_decisions, self.stack
        app_pids = {name: stack.pid(name) for name in ("web", "worker", "temporal")}
        ids = [queue.pop() for _ in range(n)]
        before = {name: cpu_seconds(pid) for name, pid in app_pids.items()}
        await self._round({0: [lambda p=p: self.reviewers[0].decide(p) for p in ids]})
        await asyncio.sleep(1)  # what a decision sets off after its answer (the email) counts too
        spent = {name: cpu_seconds(pid) - before[name] for name, pid in app_pids.items()}
        app_cpu = sum(spent.values())
        self.figures.details["decision_cpu_ms_by_process"] = {
            name: round(seconds * 1000 / n, 2) for name, seconds in spent.items()
        }
        bare_pids = [stack.pid("bare-worker"), stack.pid("temporal")]
        ids = [next(bare_ids) for _ in range(n)]
        before = sum(cpu_seconds(p) for p in bare_pids) + cpu_seconds(os.getpid())
        await self._round({0: [lambda w=w: self.bare_decide(w) for w in ids]})
        await asyncio.sleep(1)
        bare_cpu = sum(cpu_seconds(p) for p in bare_pids) + cpu_seconds(os.getpid()) - before
        self.figures.put("decision_cpu_ms", app_cpu * 1000 / n)
        self.figures.bare["decision_cpu_ms"] = round(bare_cpu * 1000 / n, 2)
        self.figures.put(
            "decision_cpu_ratio", app_cpu / bare_cpu if bare_cpu else None, "no bare CPU counted"
        )

    # Creation -------------------------------------------------------------------------------

    async def creation(self) -> None:
        """Request creation at 8 requesters: the form's POST until its workflow runs, against
        bare start_workflow at the same concurrency."""
        n = self.sizes.creates
        kinds = self.stack.query("SELECT id FROM approvals_requesttype WHERE slug = 'bench-01'")
        kind = kinds[0][0]
        requesters = [await Browser(self.stack.base).log_in(f"requester{i:02}") for i in range(8)]
        app_rates, bare_rates = [], []
        for _ in range(self.sizes.reps):
            submitted: list[str] = []
            started = time.perf_counter()
            await asyncio.gather(*(self._create(b, kind, -(-n // 8), submitted) for b in requesters))
            await asyncio.to_thread(
                wait_for,
                "the new requests' workflows",
                lambda ids=submitted: self._started(ids) == len(ids),  # type: ignore[misc]
                120,
                0.05,
            )
            app_rates.append(len(submitted) / (time.perf_counter() - started))
            started = time.perf_counter()
            count = len(submitted)
            await self.bare_workflows(count, deadline=60)
            bare_rates.append(count / (time.perf_counter() - started))
        for browser in requesters:
            await browser.close()
        self.figures.put("create_per_s", statistics.median(app_rates))
        self.figures.bare["create_per_s"] = round(statistics.median(bare_rates), 2)
        self.figures.put("create_ratio", statistics.median(app_rates) / statistics.median(bare_rates))

    async def _create(self, browser: Browser, kind: int, count: int, submitted: list[str]) -> None:
        for _ in range(count):
            submission = str(uuid.uuid4())
            answer = await browser.http.post(
                "/requests/new/",
                data={
                    "submission_id": submission,
                    "request_type": kind,
                    "title": "Bench creation",
                    "csrfmiddlewaretoken": browser.csrf,
                },
            )
            if answer.status_code != 302:
                raise RuntimeError(f"Creating answered {answer.status_code}: {answer.text[:300]}")
            submitted.append(submission)

    def _started(self, public_ids: list[str]) -> int:
        rows = self.stack.query(
            "SELECT count(*) FROM approvals_approvalrequest WHERE workflow_started_at IS NOT NULL "
            "AND public_id = ANY(%s::uuid[])",
            public_ids,
        )
        return int(rows[0][0])

    # Live updates ---------------------------------------------------------------------------

    async def live(self) -> None:
        """One decision, then the time until each of N open pages of the request hears of it."""
        figures: dict[int, list[float]] = {}
        requester = await Browser(self.stack.base).log_in("requester")
        cookie = "; ".join(f"{k}={v}" for k, v in requester.http.cookies.items())
        ws_base = self.stack.base.replace("http://", "ws://")
        for pages in self.sizes.live_pages:
            samples: list[float] = []
            for _ in range(self.sizes.reps):
                public_id = submit(self.stack, {2: 1})[2][0]
                sockets = []
                for _ in range(pages):
                    sockets.append(
                        await websockets.connect(
                            f"{ws_base}/ws/live/?view=request&id={public_id}",
                            additional_headers={"Cookie": cookie, "Origin": self.stack.base},
                            open_timeout=30,
                        )
                    )
                await asyncio.gather(*(self._drain(ws) for ws in sockets))
                started = time.perf_counter()
                waits = [asyncio.create_task(self._heard(ws, started)) for ws in sockets]
                await self.reviewers[2].decide(public_id)
                samples += await asyncio.gather(*waits)
                for ws in sockets:
                    await ws.close()
            figures[pages] = samples
        await requester.close()
        small, large = self.sizes.live_pages
        self.figures.put("live_p50_ms_200", statistics.median(figures[large]))
        self.figures.put("live_p99_ms_200", percentile(figures[large], 0.99))
        self.figures.details["live"] = {
            str(n): {"p50_ms": round(statistics.median(s), 2), "p99_ms": round(percentile(s, 0.99), 2)}
            for n, s in figures.items()
        }

    @staticmethod
    async def _drain(ws: Any) -> None:
        """Take what the socket was told before the decision (the request's own start)."""
        while True:
            try:
                await asyncio.wait_for(ws.recv(), timeout=0.3)
            except TimeoutError:
                return

    @staticmethod
    async def _heard(ws: Any, since: float) -> float:
        """Until the socket is told that the request is approved."""
        while "Approved" not in await asyncio.wait_for(ws.recv(), timeout=60):
            pass
        return (time.perf_counter() - since) * 1000

    # A campaign beside the decisions ---------------------------------------------------------

    async def campaign(self) -> None:
        """Interactive decisions at 8 reviewers with the bulk queue idle, then while an access-
        review campaign fans out on it and its owner keeps every review in bulk: campaign_ratio
        is the p50 during it over the p50 before. The bare twin's decisions are timed in the same
        two windows, round for round, so that what the shared Temporal server and CPU cost shows
        apart from the app's own."""
        sizes, stack = self.sizes, self.stack
        # Two decisions per reviewer a round, so that the rounds while the campaign runs are many
        # (it takes a minute or two); idle rounds as many as the repetitions, at least three.
        per, reviewers = min(2, sizes.per_reviewer), 8
        idle_rounds, most_rounds = max(3, sizes.reps), 4 if self.quick else 40
        queues = submit(stack, {i: per * (idle_rounds + most_rounds) for i in range(reviewers)})
        bare_ids = iter(await self.bare_workflows(reviewers * per * (idle_rounds + most_rounds)))

        async def round_of_each(app: list[float], bare: list[float]) -> None:
            work = {i: [queues[i].pop() for _ in range(per)] for i in range(reviewers)}
            app += (
                await self._round(
                    {
                        i: [lambda p=p, i=i: self.reviewers[i].decide(p) for p in ids]
                        for i, ids in work.items()
                    }
                )
            )[1]
            bare_work = {i: [next(bare_ids) for _ in range(per)] for i in range(reviewers)}
            bare += (
                await self._round(
                    {i: [lambda w=w: self.bare_decide(w) for w in ids] for i, ids in bare_work.items()}
                )
            )[1]

        idle_app: list[float] = []
        idle_bare: list[float] = []
        for _ in range(idle_rounds):
            await round_of_each(idle_app, idle_bare)

        started = time.perf_counter()
        campaign_id = await asyncio.to_thread(
            stack.shell, CAMPAIGN % {"password": PASSWORD, "count": sizes.campaign_reviews}
        )

        def status() -> tuple[int, int, str]:
            rows = stack.query(
                "SELECT started, total, status FROM approvals_campaign WHERE public_id = %s", campaign_id
            )
            return rows[0] if rows else (0, 0, "")

        async def close() -> dict[str, float]:
            """Once every review is out, the owner keeps them all; when each phase ended."""
            marks: dict[str, float] = {}
            await asyncio.to_thread(
                wait_for,
                "the campaign's fan-out",
                lambda: status()[:2] == (sizes.campaign_reviews,) * 2,
                900,
                0.2,
            )
            marks["fanned_out_s"] = time.perf_counter() - started
            kept = await asyncio.to_thread(stack.shell, KEEP_ALL, 1800)
            marks["kept"] = kept
            await asyncio.to_thread(
                wait_for, "the campaign to complete", lambda: status()[2] == "completed", 900, 0.2
            )
            marks["completed_s"] = time.perf_counter() - started
            return marks

        closing = asyncio.create_task(close())
        busy_app: list[float] = []
        busy_bare: list[float] = []
        rounds = 0
        while not closing.done() and rounds < most_rounds:
            await round_of_each(busy_app, busy_bare)
            rounds += 1
        marks = await closing
        app_ratio = statistics.median(busy_app) / statistics.median(idle_app)
        bare_ratio = statistics.median(busy_bare) / statistics.median(idle_bare)
        self.figures.put("campaign_ratio", app_ratio)
        self.figures.bare["campaign_ratio"] = round(bare_ratio, 2)
        reviews = sizes.campaign_reviews
        self.figures.details["campaign"] = {
            "reviews": reviews,
            "decision_p50_ms_8_idle": round(statistics.median(idle_app), 2),
            "decision_p50_ms_8_during": round(statistics.median(busy_app), 2),
            "bare_p50_ms_8_idle": round(statistics.median(idle_bare), 2),
            "bare_p50_ms_8_during": round(statistics.median(busy_bare), 2),
            "decisions_during": len(busy_app),
            "rounds_during": rounds,
            "fan_out_s": round(marks["fanned_out_s"], 2),
            "fan_out_reviews_per_s": round(reviews / marks["fanned_out_s"], 2),
            "kept_in_bulk": marks["kept"],
            "completed_s": round(marks["completed_s"], 2),
        }

    # Memory and a cold worker ---------------------------------------------------------------

    async def memory(self) -> None:
        """The worker's RSS with N open requests waiting on their deadlines, against a bare
        worker with N trivial workflows waiting on timers."""
        n = self.sizes.rss_workflows
        per = -(-n // 32)
        submit(self.stack, {i: per for i in range(32)})
        await asyncio.sleep(2)
        app = rss_mb(self.stack.pid("worker"))
        await self.bare_workflows(per * 32)
        await asyncio.sleep(2)
        bare = rss_mb(self.stack.pid("bare-worker"))
        count = per * 32
        self.figures.details["worker_rss_mb"] = {
            "workflows": count,
            "app": round(app, 2),
            "bare": round(bare, 2),
        }
        if count < 10_000 and not self.quick:
            reason = f"measured with {count:,} open workflows only (details: worker_rss_mb)"
            self.figures.put("worker_rss_mb_10k", None, reason)
            self.figures.put("worker_rss_ratio", None, reason)
            return
        self.figures.put("worker_rss_mb_10k", app)
        self.figures.bare["worker_rss_mb_10k"] = round(bare, 2)
        self.figures.put("worker_rss_ratio", app / bare)

    async def cold_decision(self) -> None:
        """A decision served by a fresh worker, on a workflow the one before had cached: the old
        worker is killed (SIGKILL), as a crash would."""
        stack = self.stack
        public_id = self.cold_queue.pop()
        old = stack.processes["worker"]
        old.kill()
        old.wait(10)
        stack.worker()
        await asyncio.sleep(3)  # the new worker polls
        # Until the decision is in the read model: its answer may come late (202), and the
        # page then shows it as pending until it is.
        started = time.perf_counter()
        await self.reviewers[0].decide(public_id)
        await asyncio.to_thread(
            wait_for,
            "the cold decision",
            lambda: (
                stack.query("SELECT status FROM approvals_approvalrequest WHERE public_id = %s", public_id)
                == [("approved",)]
            ),
            120,
            0.02,
        )
        self.figures.put("cold_decision_ms", (time.perf_counter() - started) * 1000)

    def inbox(self) -> None:
        """The inbox page, rendered, for the busiest reviewer (bench/list_speed.py, on a
        database of its own), at three sizes."""
        p95: dict[int, float] = {}
        for size in self.sizes.inbox_sizes:
            out = self.stack.scratch / f"inbox-{size}.json"
            env = {**self.stack.env, "DATABASE_URL": self.stack.server_url}
            done = subprocess.run(
                [
                    sys.executable,
                    "bench/list_speed.py",
                    "--requests",
                    str(size),
                    "--runs",
                    str(self.sizes.inbox_runs),
                    "--rounds",
                    str(self.sizes.reps),
                    "--json",
                    str(out),
                    "--only",
                    "page GET /inbox/",
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=1800,
            )
            if done.returncode != 0:
                raise RuntimeError(f"list_speed failed:\n{done.stdout}\n{done.stderr}")
            p95[size] = json.loads(out.read_text())["page GET /inbox/ (rendered)"]["p95_ms"]
        small, _, large = self.sizes.inbox_sizes
        self.figures.put("inbox_p95_ms_100k", p95[large])
        self.figures.put("inbox_ratio_100k_1k", p95[large] / p95[small])
        self.figures.details["inbox_p95_ms"] = {str(k): v for k, v in p95.items()}


# --- Report ---------------------------------------------------------------------------------


def revision() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def machine() -> dict[str, Any]:
    memory = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(memory / 1024 / 1024, 1),
        "system": platform.platform(),
    }


TARGETS = {
    "decision_cpu_ratio": "≤ 2",
    "decision_ratio_p50": "≤ 1.3",
    "decision_ratio_p99": "≤ 1.5",
    "decision_throughput_ratio": "≥ 0.7",
    "create_ratio": "≥ 0.7",
    "live_p99_ms_200": "≤ 250",
    "inbox_p95_ms_100k": "≤ 50",
    "inbox_ratio_100k_1k": "≤ 1.3",
    "worker_rss_mb_10k": "≤ 400",
    "campaign_ratio": "≤ 1.5",
}


HISTORY = "## History"
SOAK = "## Chaos soak"  # bench/soak.py --record writes it, above the history


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `bench/run.py` (see the README): the app on its production shape beside bare",
        "Temporal on the same server, in one run; each figure a median over the repetitions.",
        "",
        f"- Date: {result['date']}",
        f"- Revision: {result['revision']}",
        f"- Machine: {result['machine']['cores']} cores, {result['machine']['memory_gb']} GB",
        f"- Sizes: {result['sizes']}",
        "",
        "| Key | App | Bare Temporal | Target |",
        "|---|---|---|---|",
    ]
    for key in KEYS:
        value = result["figures"][key]
        shown = "null: " + result["reasons"][key] if value is None else f"{value:g}"
        bare = result["bare"].get(key)
        lines.append(
            f"| `{key}` | {shown} | {'' if bare is None else f'{bare:g}'} | {TARGETS.get(key, '')} |"
        )
    lines += ["", "Details:", "", "```json", json.dumps(result["details"], indent=1), "```", ""]
    return "\n".join(lines)


SCENARIOS = ("decisions", "creation", "live", "cold_decision", "campaign", "memory", "inbox")


async def measure(
    stack: Stack, sizes: Sizes, figures: Figures, quick: bool, only: tuple[str, ...] = SCENARIOS
) -> None:
    bench = Bench(stack, sizes, quick)
    bench.figures = figures
    stack.shell(SETUP % {"password": PASSWORD})
    await bench.browsers()
    steps: list[tuple[tuple[str, ...], Callable[[], Awaitable[None]]]] = [
        (KEYS[:10], bench.decisions),
        (("create_per_s", "create_ratio"), bench.creation),
        (("live_p50_ms_200", "live_p99_ms_200"), bench.live),
        (("cold_decision_ms",), bench.cold_decision),
        (("campaign_ratio",), bench.campaign),
        (("worker_rss_mb_10k", "worker_rss_ratio"), bench.memory),
    ]
    for keys, step in steps:
        if step.__name__ not in only:
            continue
        print(f"{datetime.now(UTC):%H:%M:%S} {step.__name__}", flush=True)
        try:
            await step()
        except Exception as exc:  # one scenario failing leaves the others to measure
            traceback.print_exc()
            for key in keys:
                if figures.values[key] is None:
                    figures.put(key, None, f"{step.__name__} failed: {exc!r}"[:300])
    for browser in bench.reviewers.values():
        await browser.close()
    if "inbox" not in only:
        return
    print(f"{datetime.now(UTC):%H:%M:%S} inbox", flush=True)
    try:
        bench.inbox()
    except Exception as exc:
        traceback.print_exc()
        for key in ("inbox_p95_ms_100k", "inbox_ratio_100k_1k"):
            figures.put(key, None, f"inbox failed: {exc!r}"[:300])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repetition")
    parser.add_argument("--reps", type=int, help="repetitions of each scenario (3 by default)")
    parser.add_argument("--rss-workflows", type=int, help="open workflows for the memory figure")
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"the scenarios to run, comma-separated (of {', '.join(SCENARIOS)}; all by default); "
        "the cold decision needs the decisions",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--markdown", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    only = tuple(name.strip() for name in args.only.split(",") if name.strip())
    if unknown := set(only) - set(SCENARIOS):
        parser.error(f"no such scenario: {', '.join(sorted(unknown))}")
    if "cold_decision" in only and "decisions" not in only:
        parser.error("the cold decision needs the decisions (--only decisions,cold_decision)")
    sizes = QUICK if args.quick else FULL
    if args.reps:
        sizes = Sizes(**{**sizes.__dict__, "reps": args.reps})
    if args.rss_workflows:
        sizes = Sizes(**{**sizes.__dict__, "rss_workflows": args.rss_workflows})
    figures = Figures()
    scratch = Path(tempfile.mkdtemp(prefix="approvals-bench-"))
    stack = Stack(scratch)
    started = time.monotonic()
    try:
        stack.start()
        asyncio.run(measure(stack, sizes, figures, args.quick, only))
    finally:
        stack.stop()
    unmeasured = f"not run (--only {','.join(only)})" if set(only) != set(SCENARIOS) else "not measured"
    for key in KEYS:
        if figures.values[key] is None and key not in figures.reasons:
            figures.put(key, None, unmeasured)
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "revision": revision(),
        "machine": machine(),
        "sizes": sizes.__dict__ | {"quick": args.quick, "only": list(only)},
        "seconds": round(time.monotonic() - started),
        "figures": figures.values,
        "reasons": figures.reasons,
        "bare": figures.bare,
        "details": figures.details,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    # The soak's table and the history below (before and after of each change, kept by hand)
    # are not this run's to write.
    kept = args.markdown.read_text() if args.markdown.exists() else ""
    starts = [kept.index(heading) for heading in (SOAK, HISTORY) if heading in kept]
    history = kept[min(starts) :] if starts else HISTORY + "\n"
    args.markdown.write_text(markdown(result) + "\n" + history)
    if any("failed" in reason for reason in figures.reasons.values()):
        print(f"A scenario failed: the processes' logs are kept in {scratch}", file=sys.stderr)
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    print(markdown(result))


if __name__ == "__main__":
    main()
