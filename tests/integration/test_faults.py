"""Faults on real processes: the worker killed with SIGKILL mid-decision, mid-email and in the
middle of an access-review campaign's fan-out, and PostgreSQL stopped under a running web server
and worker.

Everything runs as it does in production: `manage.py temporal_worker` and uvicorn in processes
of their own, on a PostgreSQL cluster this test starts itself (initdb and pg_ctl, on its own
port: stopping it never touches the shared server), the session's Temporal dev server, and a
real SMTP listener. The test reads the database directly and acts through `manage.py shell`.
"""

from __future__ import annotations

import asyncio
import email.policy
import http.cookiejar
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from approvals.management.commands.seed_demo import DEMO_PASSWORD
from approvals.services.actions import RECORDED_LATE
from bench import processes
from bench.processes import ScratchPostgres, listening, postgres_bin
from tests.conftest import Endpoint, LoopThread, free_port, wait_until
from workflows.approval import ApprovalWorkflow
from workflows.types import Action, ActionKind, workflow_id_for

pytestmark = pytest.mark.temporal_server
ROOT = Path(__file__).resolve().parents[2]


if postgres_bin() is None:
    if os.environ.get("REQUIRE_FAULT_TESTS") == "1":
        raise RuntimeError("PostgreSQL's server binaries (initdb, pg_ctl) are missing")
    pytestmark = [pytestmark, pytest.mark.skip(reason="PostgreSQL's server binaries are not installed")]


@pytest.fixture(scope="module")
def scratch_postgres() -> Iterator[ScratchPostgres]:
    cluster = ScratchPostgres()
    yield cluster
    cluster.destroy()


class Mailbox:
    """An SMTP server's handler that keeps what it accepts, and can hold the next message."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.holding = threading.Event()  # set: the next message waits, then is turned away
        self.held = threading.Event()  # set once a message is being held
        self.release = threading.Event()

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if self.holding.is_set():
            self.holding.clear()
            self.held.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
            return "451 4.3.0 Try again later"  # its sender is gone by now anyway
        self.messages.append(message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted"

    def keys(self) -> list[str]:
        return sorted(str(m["X-Idempotency-Key"]) for m in self.messages)

    def subjects(self, to: str) -> list[str]:
        return [str(m["Subject"]) for m in self.messages if to in str(m["To"])]


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port  # type: ignore[attr-defined]
    yield box
    box.release.set()
    controller.stop()


class App:
    """The app's processes against one scratch database."""

    def __init__(self, env: dict[str, str], db_url: str, logs: Path) -> None:
        self.env, self.db_url, self.logs = env, db_url, logs
        self.processes: list[subprocess.Popen[bytes]] = []

    def manage(self, *args: str, timeout: float = 120) -> str:
        return processes.manage(*args, env=self.env, timeout=timeout).stdout

    def shell(self, code: str, timeout: float = 120) -> Any:
        """Run Python in the app (Django set up) and return what it prints as JSON."""
        return processes.shell(code, env=self.env, timeout=timeout)

    def spawn(self, name: str, *command: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def worker(self, *queue: str) -> subprocess.Popen[bytes]:
        """`manage.py temporal_worker`: both task queues, or the one named (a pool of its own)."""
        options = ["--queue", *queue] if queue else []
        return self.spawn("worker", sys.executable, "manage.py", "temporal_worker", *options)

    def web(self, port: int) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "uvicorn", "approvals.asgi:application", "--port", str(port)]
        process = self.spawn("web", *command, "--host", "127.0.0.1", "--log-level", "warning")
        wait_until(lambda: listening(port), timeout=30, what="the web server")
        return process

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db_url) as conn:
            return conn.execute(sql, params).fetchall()

    def status(self, public_id: str) -> str:
        rows = self.query("SELECT status FROM approvals_approvalrequest WHERE public_id = %s", public_id)
        return rows[0][0] if rows else ""

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def app(
    tmp_path: Path, scratch_postgres: ScratchPostgres, dev_server: WorkflowEnvironment, mailbox: Mailbox
) -> Iterator[App]:
    db_url = scratch_postgres.create(f"app_{uuid.uuid4().hex[:12]}")
    keep = {"PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV", "TMPDIR"}
    env = {key: value for key, value in os.environ.items() if key in keep}
    env.update(
        DATABASE_URL=db_url,
        DATA_DIR=str(tmp_path / "data"),
        DJANGO_SETTINGS_MODULE="approvals.settings",
        TEMPORAL_ADDRESS=dev_server.client.service_client.config.target_host,
        TEMPORAL_TASK_QUEUE=f"faults-{uuid.uuid4()}",
        TEMPORAL_BULK_TASK_QUEUE=f"faults-bulk-{uuid.uuid4()}",
        TEMPORAL_WEBHOOK_TASK_QUEUE=f"faults-webhooks-{uuid.uuid4()}",
        TEMPORAL_RPC_TIMEOUT="5",
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(mailbox.port),  # type: ignore[attr-defined]
        EMAIL_TIMEOUT="60",
        LOG_LEVEL="WARNING",
        # Plain HTTP on loopback, and the test's HTTP client sends no secure cookie over it.
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
    )
    instance = App(env, db_url, tmp_path)
    instance.manage("migrate", "--noinput")
    instance.manage("seed_demo")
    # Decisions take effect at once here, but where a test gives the type an undo period.
    instance.shell(UNDO_PERIOD.format(seconds=0))
    yield instance
    instance.stop_all()


UNDO_PERIOD = """
from approvals.models import RequestType
print(RequestType.objects.filter(name="Purchase").update(undo_seconds={seconds}))
"""

SUBMIT = """
import json
from django.contrib.auth.models import User
from approvals import services
from approvals.models import RequestType
request = services.request_submit(
    requester=User.objects.get(username="requester"),
    request_type=RequestType.objects.get(name="Purchase"),
    title="Standing desk",
    amount=300,
)
print(json.dumps(str(request.public_id)))
"""

APPROVE = """
import json
from django.contrib.auth.models import User
from approvals import services
from approvals.exceptions import ActionPending
from approvals.models import ApprovalRequest
from workflows.types import ActionKind
try:
    result = services.request_act(
        request=ApprovalRequest.objects.get(public_id="{public_id}"),
        actor=User.objects.get(username="reviewer1"),
        kind=ActionKind.APPROVE,
        comment="Fine",
    )
except ActionPending as pending:
    print(json.dumps(str(pending)))
else:
    print(json.dumps(result.message))
# The answer is out. Leave without the interpreter's teardown, which now and then crashed
# (SIGSEGV) here while the Temporal client's daemon thread still ran: the exit of this
# one-off shell is not what is tested, the answer is.
import os, sys
sys.stdout.flush()
os._exit(0)
"""


def test_a_worker_killed_mid_decision_and_mid_email_loses_nothing_and_sends_each_email_once(
    app: App, mailbox: Mailbox
) -> None:
    worker = app.worker()
    public_id = app.shell(SUBMIT)
    wait_until(lambda: app.status(public_id) == "in_review", timeout=60, what="review")
    wait_until(lambda: len(mailbox.messages) == 2, timeout=30, what="the two review emails")

    # Mid-decision: the approval is in the workflow, its projection is running and holds on
    # the request's row (locked here) when the worker dies.
    with psycopg.connect(app.db_url) as lock:
        lock.execute("SELECT 1 FROM approvals_approvalrequest WHERE public_id = %s FOR UPDATE", (public_id,))
        # The workflow took the decision, and answers once it is projected: not before the row is
        # let go. The person is told it is recorded, and nothing untrue.
        assert app.shell(APPROVE.format(public_id=public_id)) == RECORDED_LATE
        wait_until(
            lambda: (
                app.query("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")[0][0] > 0
            ),
            what="the projection to wait on the row",
        )
        worker.kill()  # SIGKILL: no goodbye, no cleanup
        worker.wait(10)
        lock.rollback()
    assert app.status(public_id) == "in_review"  # the decision is not projected yet...

    # Mid-email: a new worker projects the decision (once the dead one's attempt times out), then
    # emails the requester; that email is half-sent when this worker dies too.
    mailbox.holding.set()
    worker = app.worker()
    wait_until(lambda: mailbox.held.is_set(), timeout=90, interval=0.5, what="the decision email to be sent")
    assert app.status(public_id) == "approved"  # ...and now it is, exactly once
    worker.kill()
    worker.wait(10)
    mailbox.release.set()

    app.worker()
    wait_until(
        lambda: len(mailbox.messages) == 3, timeout=90, interval=0.5, what="the decision email, resent"
    )
    time.sleep(2)  # anything sent twice would arrive now
    assert mailbox.subjects("requester@example.com") == ["Your request “Standing desk” was approved"]
    assert len(mailbox.keys()) == len(set(mailbox.keys())) == 3  # each email once, by its key
    events = app.query(
        "SELECT e.kind, e.actor_name FROM approvals_requestevent e JOIN approvals_approvalrequest r "
        "ON r.id = e.request_id WHERE r.public_id = %s ORDER BY e.seq",
        public_id,
    )
    assert [kind for kind, _ in events].count("approval") == 1
    assert ("approved", "reviewer1") in events
    sent = app.query("SELECT kind, count(*) FROM approvals_outboundemail WHERE status = 'sent' GROUP BY kind")
    assert dict(sent) == {"assigned": 2, "decided": 1}


def test_a_worker_killed_during_a_decisions_undo_period_loses_nothing_and_it_takes_effect_once(
    app: App, mailbox: Mailbox
) -> None:
    """The undo period is a durable timer: it runs out while no worker runs, and the next worker
    applies the decision once, with one email."""
    app.shell(UNDO_PERIOD.format(seconds=6))
    worker = app.worker()
    public_id = app.shell(SUBMIT)
    wait_until(lambda: len(mailbox.messages) == 2, timeout=60, what="the two review emails")
    answer = app.shell(APPROVE.format(public_id=public_id))
    assert answer.startswith("Your approval takes effect at ") and answer.endswith(" unless you undo it.")
    worker.kill()  # SIGKILL, inside the undo period
    worker.wait(10)

    time.sleep(8)  # the period runs out with no worker
    assert app.status(public_id) == "in_review"
    assert len(mailbox.messages) == 2
    app.worker()
    wait_until(lambda: app.status(public_id) == "approved", timeout=60, interval=0.5, what="the decision")
    wait_until(lambda: len(mailbox.messages) == 3, timeout=30, interval=0.5, what="the decision email")
    time.sleep(2)  # anything sent twice would arrive now
    assert mailbox.subjects("requester@example.com") == ["Your request “Standing desk” was approved"]
    kinds = [
        kind
        for (kind,) in app.query(
            "SELECT e.kind FROM approvals_requestevent e JOIN approvals_approvalrequest r "
            "ON r.id = e.request_id WHERE r.public_id = %s ORDER BY e.seq",
            public_id,
        )
    ]
    assert kinds[:5] == ["submitted", "stage_started", "held", "approval", "stage_approved"]
    assert kinds.count("approval") == 1 and kinds[-1] == "approved"


def test_after_a_worker_dies_a_fresh_one_answers_the_next_action_in_time(
    app: App, mailbox: Mailbox, loop: LoopThread, dev_server: WorkflowEnvironment
) -> None:
    """The dead worker had the workflow cached. Its next task waits for that worker no longer
    than TEMPORAL_STICKY_TIMEOUT (3 s, where Temporal's default is 10 s) before the fresh worker
    takes it: the person gets the workflow's answer, not "pending". (The web waits 8 s here
    rather than 5: room for a busy machine's replay, still short of Temporal's 10 s.)"""
    app.env = {**app.env, "TEMPORAL_RPC_TIMEOUT": "8"}
    worker = app.worker()
    public_id = app.shell(SUBMIT)
    wait_until(lambda: len(mailbox.messages) == 2, timeout=60, what="the two review emails")
    worker.kill()  # SIGKILL: its sticky queue is not given back
    worker.wait(10)
    fresh = app.worker()
    # Once the fresh worker polls (its start takes longer on a busy machine), the clock runs.
    queue = app.env["TEMPORAL_TASK_QUEUE"]
    wait_until(lambda: polling(loop, dev_server, queue, fresh.pid), timeout=60, what="the fresh worker")
    assert app.shell(APPROVE.format(public_id=public_id)) == "Stage “Team lead” is approved."
    assert app.status(public_id) == "approved"


def polling(loop: LoopThread, server: WorkflowEnvironment, queue: str, pid: int) -> bool:
    """Whether the worker process `pid` polls the queue for workflow tasks (a worker's identity
    is `<pid>@<host>`)."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    request = DescribeTaskQueueRequest(
        namespace=server.client.namespace,
        task_queue=TaskQueue(name=queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    answer = loop.run(server.client.workflow_service.describe_task_queue(request))
    return any(poller.identity.startswith(f"{pid}@") for poller in answer.pollers)


SUBMIT_PURCHASE_ORDER = """
import json
from django.contrib.auth.models import User
from approvals import services
from approvals.models import CostCentre, RequestType
request = services.request_submit(
    requester=User.objects.get(username="requester"),
    request_type=RequestType.objects.get(name="Purchase order"),
    title="Standing desk",
    amount=300,
    cost_centre=CostCentre.objects.get(code="it"),
)
print(json.dumps(str(request.public_id)))
"""


def test_a_worker_killed_mid_step_of_a_fulfilment_places_one_order_and_reserves_once(
    app: App, mailbox: Mailbox, endpoint: Endpoint
) -> None:
    """The purchase-order endpoint has placed the order and is about to answer when the worker
    dies: the next worker asks again under the same key, gets the same order, and the saga goes
    on to its end, with one reservation, one order and one email each."""
    app.env = {**app.env, "PURCHASE_ORDER_URL": endpoint.url}
    endpoint.plan["place"] = ["hold"]
    worker = app.worker()
    public_id = app.shell(SUBMIT_PURCHASE_ORDER)
    wait_until(lambda: len(mailbox.messages) == 2, timeout=60, what="the two review emails")
    app.shell(APPROVE.format(public_id=public_id))
    wait_until(lambda: endpoint.held.is_set(), timeout=60, what="the order to be placed")
    worker.kill()  # SIGKILL, with the order placed and its answer not yet back
    worker.wait(10)
    endpoint.release.set()

    app.worker()  # retries the step once the dead worker's attempt times out
    fulfilment = "SELECT fulfilment FROM approvals_approvalrequest WHERE public_id = %s"
    wait_until(
        lambda: app.query(fulfilment, public_id) == [("fulfilled",)],
        timeout=120,
        interval=0.5,
        what="fulfilled",
    )
    key = f"{public_id}:fulfilment:1:order"
    assert endpoint.calls() == ["place", "place"]
    assert [k for _, k, _ in endpoint.received] == [key, key]
    assert len(endpoint.orders) == 1
    assert app.query("SELECT number, external, cancelled_at FROM approvals_purchaseorder") == [
        ("EXT-1", True, None)
    ]
    reservations = app.query(
        "SELECT amount FROM approvals_ledgerentry WHERE key = %s", f"{public_id}:fulfilment:1:reserve"
    )
    assert [str(amount) for (amount,) in reservations] == ["300.00"]
    wait_until(lambda: len(mailbox.messages) == 5, timeout=30, interval=0.5, what="the fulfilled emails")
    time.sleep(2)  # anything sent twice would arrive now
    assert mailbox.subjects("requester@example.com").count("Fulfilled: Standing desk") == 1
    assert len(mailbox.keys()) == len(set(mailbox.keys()))


SEED_GRANTS = """
import json
from datetime import timedelta
from django.contrib.auth.models import User
from django.utils import timezone
from approvals.models import AccessGrant, ApprovalRequest, RequestType, Resource
now = timezone.now()
kind, resource = RequestType.objects.get(slug="access"), Resource.objects.get(code="payroll")
holders = User.objects.bulk_create(
    [User(username=f"holder{{n}}", email=f"holder{{n}}@example.com") for n in range({count})]
)
requests = ApprovalRequest.objects.bulk_create(
    ApprovalRequest(
        request_type=kind, requester=holder, title="Payroll", status="approved", resource=resource,
        access_role="read", access_days=90, workflow_started_at=now,
    )
    for holder in holders
)
AccessGrant.objects.bulk_create(
    AccessGrant(
        key=f"seed:{{r.public_id}}", request=r, holder=r.requester, resource=resource, role="read",
        starts_at=now, ends_at=now + timedelta(days=90),
    )
    for r in requests
)
print(json.dumps(len(requests)))
"""

START_CAMPAIGN = """
import json
from datetime import timedelta
from django.contrib.auth.models import User
from django.utils import timezone
from approvals import services
campaign = services.campaign_start(
    actor=User.objects.get(username="admin"), name="Payroll Q4", resource=None, role="",
    reviewer="owner", deadline=timezone.now() + timedelta(days=7), remind_every=None,
    escalate_after=None, end_rule="keep",
)
print(json.dumps(str(campaign.public_id)))
import os, sys
sys.stdout.flush()
os._exit(0)
"""

KEEP_ALL = """
import json
from django.contrib.auth.models import User
from approvals import services
from approvals.selectors.campaigns import reviews_open_for
owner = User.objects.get(username="manager")
answers = []
while chunk := list(reviews_open_for(user=owner)[:500]):
    answers += services.reviews_decide(actor=owner, items=chunk, keep=True, comment="")
    if not all(a.ok for a in answers[-len(chunk):]):
        break
print(json.dumps([a.message for a in answers]))
import os, sys
sys.stdout.flush()
os._exit(0)
"""


def campaign_runs(loop: LoopThread, client: Any, workflow_id: str) -> list[list[Any]]:
    """Each run of a campaign's workflow, first first, along its continue-as-new chain."""

    async def fetch() -> list[list[Any]]:
        runs: list[list[Any]] = []
        run_id: str | None = None
        while True:
            events = list(
                (await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()).events
            )
            runs.insert(0, events)
            run_id = events[0].workflow_execution_started_event_attributes.continued_execution_run_id
            if not run_id:
                return runs

    return loop.run(fetch())


def test_a_bulk_worker_killed_mid_fan_out_starts_no_review_twice_and_loses_none(
    app: App, mailbox: Mailbox, dev_server: WorkflowEnvironment, loop: LoopThread
) -> None:
    """1,200 reviews, fanned out by a bulk worker of its own (`--queue bulk`) that is killed
    with SIGKILL part way: the next one picks the campaign up where its history says, and every
    review is started once, in runs of at most a thousand, and decided. Meanwhile the
    interactive worker, a pool of its own, decides a request at once, bulk worker or none."""
    total = 1200
    assert app.shell(SEED_GRANTS.format(count=total)) == total
    interactive = app.worker("interactive")
    bulk = app.worker("bulk")
    public_id = app.shell(START_CAMPAIGN)
    started = "SELECT started, total, status FROM approvals_campaign WHERE public_id = %s"
    wait_until(lambda: app.query(started, public_id)[0][0] >= 200, timeout=120, what="the fan-out")
    bulk.kill()  # SIGKILL, in the middle of the fan-out
    bulk.wait(10)
    at_kill = app.query(started, public_id)[0][0]
    assert 200 <= at_kill < total, at_kill

    # No bulk worker now: the interactive queue does not notice.
    request_id = app.shell(SUBMIT)
    wait_until(lambda: app.status(request_id) == "in_review", timeout=60, what="review")
    assert app.shell(APPROVE.format(public_id=request_id)) == "Stage “Team lead” is approved."
    assert app.query(started, public_id)[0][0] == at_kill

    app.worker("bulk")
    wait_until(
        lambda: app.query(started, public_id)[0][:2] == (total, total),
        timeout=180,
        interval=0.5,
        what="every review started",
    )
    # 1,200 decisions, an update of its workflow each: minutes on a busy machine (CI once took
    # more than two). The bound is there against a hang, not to time them.
    answers = app.shell(KEEP_ALL, timeout=600)
    assert answers == ["The access is kept."] * total
    wait_until(
        lambda: app.query(started, public_id)[0][2] == "completed",
        timeout=120,
        interval=0.5,
        what="the campaign to complete",
    )
    items = app.query(
        "SELECT i.status, count(*) FROM approvals_campaignitem i JOIN approvals_campaign c "
        "ON c.id = i.campaign_id WHERE c.public_id = %s GROUP BY i.status",
        public_id,
    )
    assert items == [("kept", total)]

    runs = campaign_runs(loop, dev_server.client, f"campaign-{public_id}")
    starts = [
        e.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for events in runs
        for e in events
        if e.HasField("start_child_workflow_execution_initiated_event_attributes")
    ]
    assert len(starts) == len(set(starts)) == total  # each review started once...
    assert not any(
        e.HasField("start_child_workflow_execution_failed_event_attributes") for r in runs for e in r
    )
    per_run = [
        sum(e.HasField("start_child_workflow_execution_initiated_event_attributes") for e in r) for r in runs
    ]
    assert len(runs) >= 2 and max(per_run) <= 1000, per_run  # ...in bounded runs
    # One digest to the one reviewer, however many reviews and whatever died on the way.
    digests = [subject for subject in mailbox.subjects("manager@example.com") if "Access review" in subject]
    assert len(digests) == 1 and f"{total} to review" in digests[0], digests
    assert interactive.poll() is None


def http_client() -> tuple[urllib.request.OpenerDirector, http.cookiejar.CookieJar]:
    """A client that keeps cookies and shows redirects instead of following them."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    jar = http.cookiejar.CookieJar()
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect), jar


def fetch(
    client: urllib.request.OpenerDirector, url: str, data: dict[str, str] | None = None
) -> tuple[int, str, Any]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with client.open(url, body, timeout=30) as response:
            return response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), error.headers


def test_postgres_going_away_gives_a_clear_503_and_the_work_resumes_when_it_is_back(
    app: App, scratch_postgres: ScratchPostgres, dev_server: WorkflowEnvironment, loop: LoopThread
) -> None:
    port = free_port()
    app.web(port)
    app.worker()
    base = f"http://127.0.0.1:{port}"
    browser, cookies = http_client()
    fetch(browser, f"{base}/accounts/login/")
    token = next(c.value for c in cookies if c.name == "csrftoken")
    status, _, _ = fetch(
        browser,
        f"{base}/accounts/login/",
        {"username": "requester", "password": DEMO_PASSWORD, "csrfmiddlewaretoken": token},
    )
    assert status == 302
    assert fetch(browser, f"{base}/")[0] == 200
    public_id = app.shell(SUBMIT)
    wait_until(lambda: app.status(public_id) == "in_review", timeout=60, what="review")
    reviewer_id = app.query("SELECT id FROM auth_user WHERE username = 'reviewer1'")[0][0]

    scratch_postgres.stop()
    status, page, headers = fetch(browser, f"{base}/")
    assert status == 503 and headers["Retry-After"] == "30"
    assert "Our database cannot be reached right now" in page

    # Decisions still reach the workflow; projecting them waits, retrying, for the database.
    handle = dev_server.client.get_workflow_handle(workflow_id_for(public_id))
    approve = Action(ActionKind.APPROVE, reviewer_id, "reviewer1", action_id=str(uuid.uuid4()))
    loop.run(handle.signal(ApprovalWorkflow.act, approve))

    def failing_attempts() -> int:
        pending = loop.run(handle.describe()).raw_description.pending_activities
        return max((p.attempt for p in pending if p.HasField("last_failure")), default=0)

    wait_until(lambda: failing_attempts() >= 2, timeout=30, what="the projection to fail and retry")
    scratch_postgres.start()

    wait_until(lambda: fetch(browser, f"{base}/")[0] == 200, timeout=30, what="the web to recover")
    wait_until(lambda: app.status(public_id) == "approved", timeout=60, interval=0.5, what="the projection")
    wait_until(
        lambda: loop.run(handle.describe()).status == WorkflowExecutionStatus.COMPLETED,
        what="the workflow's end",
    )


def log_in(base: str, username: str) -> tuple[urllib.request.OpenerDirector, str]:
    """A browser-like client logged in as `username`, and its CSRF token."""
    browser, cookies = http_client()
    fetch(browser, f"{base}/accounts/login/")
    token = next(c.value for c in cookies if c.name == "csrftoken")
    form = {"username": username, "password": DEMO_PASSWORD, "csrfmiddlewaretoken": token}
    assert fetch(browser, f"{base}/accounts/login/", form)[0] == 302
    token = next(c.value for c in cookies if c.name == "csrftoken")  # a new one once logged in
    return browser, token


def htmx_post(
    browser: urllib.request.OpenerDirector, url: str, data: dict[str, Any], page: str
) -> tuple[int, str]:
    body = urllib.parse.urlencode(data, doseq=True).encode()
    headers = {"HX-Request": "true", "HX-Current-URL": page}
    try:
        with browser.open(urllib.request.Request(url, body, headers), timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


PENDING_NOTE = 'data-testid="pending-action"'


def test_with_the_worker_stopped_an_action_is_told_as_pending_and_counts_once_it_is_back(
    app: App, mailbox: Mailbox
) -> None:
    """SIGSTOP of the worker under a real web process: an approval from the page, a bulk approval
    and an email link's approval each get a truthful answer at once (pending, never a 500 nor a
    failure), show as pending, and count exactly once when the worker runs again."""
    worker = app.worker()
    port = free_port()
    app.web(port)
    base = f"http://127.0.0.1:{port}"
    titles = ("Desk", "Chair", "Lamp")
    ids = {title: app.shell(SUBMIT.replace("Standing desk", title)) for title in titles}
    statuses = lambda: {app.status(public_id) for public_id in ids.values()}  # noqa: E731
    wait_until(lambda: statuses() == {"in_review"}, timeout=60, what="review")
    wait_until(lambda: len(mailbox.messages) == 6, timeout=30, what="the review emails")
    lamp_email = next(
        m for m in mailbox.messages if "reviewer1" in str(m["To"]) and "Lamp" in str(m["Subject"])
    )
    link = urllib.parse.urlsplit(
        next(
            line.split("Approve: ", 1)[1].strip()
            for line in lamp_email.get_body(("plain",)).get_content().splitlines()
            if "Approve: " in line
        )
    ).path
    browser, csrf = log_in(base, "reviewer1")

    worker.send_signal(signal.SIGSTOP)
    try:
        desk = f"{base}/requests/{ids['Desk']}/"
        started = time.monotonic()
        status, html = htmx_post(
            browser,
            desk + "act/",
            {"kind": "approve", "action_id": str(uuid.uuid4()), "csrfmiddlewaretoken": csrf},
            desk,
        )
        assert status == 202, html
        assert PENDING_NOTE in html and "Your approval, sent at" in html
        assert time.monotonic() - started < 15  # one deadline or two, not a hang

        status, html = htmx_post(
            browser,
            f"{base}/inbox/bulk/",
            {
                "ids": [ids["Chair"]],
                "kind": "approve",
                "bulk_id": str(uuid.uuid4()),
                "csrfmiddlewaretoken": csrf,
            },
            f"{base}/inbox/",
        )
        assert status == 200, html
        assert "0 of 1 done, 1 not known yet" in html and "(in a bulk action)" in html

        assert fetch(browser, base + link)[0] == 200  # the confirmation page; changes nothing
        status, html, _ = fetch(browser, base + link, {"comment": "", "csrfmiddlewaretoken": csrf})
        assert status == 200 and "was sent. It counts as soon as" in html, html

        for title in titles:
            status, html, _ = fetch(browser, f"{base}/requests/{ids[title]}/")
            assert status == 200 and html.count(PENDING_NOTE) == 1, title
            assert app.status(ids[title]) == "in_review"  # nothing counted yet: the worker is away
    finally:
        worker.send_signal(signal.SIGCONT)

    wait_until(lambda: statuses() == {"approved"}, timeout=120, interval=0.5, what="all three approved")
    assert app.query("SELECT count(*) FROM approvals_pendingaction") == [(0,)]
    for title in titles:
        status, html, _ = fetch(browser, f"{base}/requests/{ids[title]}/")
        assert PENDING_NOTE not in html
        approvals = app.query(
            "SELECT count(*) FROM approvals_requestevent e JOIN approvals_approvalrequest r "
            "ON r.id = e.request_id WHERE r.public_id = %s AND e.kind = 'approval'",
            ids[title],
        )
        assert approvals == [(1,)], title  # exactly once
