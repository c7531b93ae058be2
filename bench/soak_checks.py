"""The soak's invariants, checked once the system has settled (see bench/soak.py). Each says what
it checked, how many, and the first problems it found.

The read model's are computed in the app itself (a `manage.py shell`, over the client's log of
calls and what the SMTP server and the webhook receiver were sent); Temporal's with its client:
no workflow stuck or failed, and every history the soak produced replays on today's code.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from workflows.approval import ApprovalWorkflow
from workflows.campaign import CampaignWorkflow, ReviewWorkflow
from workflows.fulfilment import FulfilmentWorkflow
from workflows.grant import GrantWorkflow
from workflows.webhook import WebhookDeliveryWorkflow

WORKFLOWS = [
    ApprovalWorkflow,
    FulfilmentWorkflow,
    GrantWorkflow,
    CampaignWorkflow,
    ReviewWorkflow,
    WebhookDeliveryWorkflow,
]
EVENT = {
    "approve": "approval",
    "reject": "rejected",
    "comment": "comment",
    "request_changes": "changes_requested",
}
STUCK_ATTEMPTS = 5  # an activity retrying past this many attempts once settled is stuck


@dataclass
class Result:
    name: str
    held: bool
    count: int
    problem: str = ""


def judged(name: str, count: int, problems: list[str]) -> Result:
    shown = "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
    return Result(name, not problems, count, shown)


def read_model_findings(
    calls: list[dict[str, Any]], mail: dict[str, int], hooks: dict[str, int]
) -> list[tuple[str, int, list[str]]]:
    """The read model's invariants, in the app (Django set up): what the client was told against
    each request's timeline, the emails recorded against those the SMTP server received, and the
    webhook events against those the receiver was sent."""
    from django.contrib.auth.models import User

    from approvals.api.routes import KEYS
    from approvals.models import ApprovalRequest, OutboundEmail, RequestEvent, WebhookDelivery, WebhookEvent

    users = dict(User.objects.values_list("username", "pk"))
    titles = Counter(ApprovalRequest.objects.values_list("title", flat=True))
    acked, unknown, refused = [], [], []
    for call in calls:
        if call["kind"] == "create":
            found = titles[f"Soak {call['key'][:8]}"]
        else:
            action_id = str(uuid.uuid5(KEYS, f"{users[call['who']]}:{call['key']}"))  # as the API makes it
            found = RequestEvent.objects.filter(action_id=action_id, kind=EVENT[call["kind"]]).count()
        said = f"{call['kind']} {call['key'][:8]} by {call['who']} (answered {call['status']})"
        if call["outcome"] == "acked" and found != 1:
            acked.append(f"{said}: {found} times in the timeline")
        elif call["outcome"] == "unknown" and found > 1:
            unknown.append(f"{said}: {found} times")
        elif call["outcome"] == "refused" and found != 0:
            refused.append(f"{said}: refused, yet {found} times")
    told = Counter(c["outcome"] for c in calls)
    findings = [
        ("every acknowledged action is in its timeline exactly once", told["acked"], acked),
        ("no unacknowledged action is in it twice", told["unknown"], unknown),
        ("no refused action is in it", told["refused"], refused),
    ]

    received = Counter(mail)
    emails = list(OutboundEmail.objects.values_list("idempotency_key", "status"))
    known = {key for key, _ in emails}
    twice = [f"{key} sent {n} times" for key, n in received.items() if n > 1]
    stray = [f"{key} was sent but is not recorded" for key in received if key not in known]
    unsent = [
        f"{key} is {status}" if status != "sent" else f"{key} is marked sent, yet never arrived"
        for key, status in emails
        if status != "sent" or not received[key]
    ]
    findings.append(("every email key was sent at most once", len(received), twice + stray))
    findings.append(("every email that was due was sent", len(emails), unsent))

    sent, problems = Counter(hooks), []
    events = list(WebhookEvent.objects.all())
    for event in events:
        deliveries = list(WebhookDelivery.objects.filter(event=event).values_list("status", flat=True))
        if not sent[event.event_id]:
            problems.append(f"event {event.event_id} never reached the receiver")
        if deliveries != ["delivered"]:
            problems.append(f"event {event.event_id}: deliveries {deliveries}")
    findings.append(
        ("every webhook event was delivered at least once and recorded once", len(events), problems)
    )
    return findings


def report() -> None:
    """`read_model_findings` over the files the soak names in SOAK_CALLS, SOAK_MAIL and SOAK_HOOKS,
    printed as JSON (run by `manage.py shell`)."""
    data = {
        name: json.loads(Path(os.environ[name]).read_text())
        for name in ("SOAK_CALLS", "SOAK_MAIL", "SOAK_HOOKS")
    }
    print(json.dumps(read_model_findings(data["SOAK_CALLS"], data["SOAK_MAIL"], data["SOAK_HOOKS"])))


def read_model(topology: Any, calls: list[Any]) -> list[Result]:
    with tempfile.TemporaryDirectory() as scratch:
        files = {"SOAK_CALLS": [asdict(c) for c in calls], "SOAK_MAIL": dict(topology.mailbox.keys)}
        files["SOAK_HOOKS"] = dict(topology.hooks.ids)
        env = {}
        for name, data in files.items():
            path = Path(scratch) / f"{name}.json"
            path.write_text(json.dumps(data))
            env[name] = str(path)
        found = topology.shell("from bench.soak_checks import report; report()", **env)
    return [judged(name, count, problems) for name, count, problems in found]


def reconciled(topology: Any) -> Result:
    done = topology.manage("reconcile", check=False)
    return reconcile_judged(done.returncode, done.stdout, done.stderr)


def reconcile_judged(returncode: int, stdout: str, stderr: str) -> Result:
    """What `manage.py reconcile` answered, judged: its last line counts the requests it checked,
    and the lines before it name each drift."""
    lines = stdout.strip().splitlines()
    problems = [] if returncode == 0 else lines[:-1] or [stderr.strip()[-300:]]
    count = int(lines[-1].split()[0]) if lines and lines[-1].split()[0].isdigit() else 0
    return judged("reconcile finds no drift between the read model and Temporal", count, problems)


async def temporal_checks(address: str) -> list[Result]:
    client = await Client.connect(address)
    stuck: list[str] = []
    running = 0
    async for execution in client.list_workflows('ExecutionStatus = "Running"'):
        running += 1
        described = await client.get_workflow_handle(execution.id, run_id=execution.run_id).describe()
        raw = described.raw_description
        for activity in raw.pending_activities:
            if activity.attempt > STUCK_ATTEMPTS:
                stuck.append(f"{execution.id}: {activity.activity_type.name} at attempt {activity.attempt}")
    async for execution in client.list_workflows(
        'ExecutionStatus = "Running" AND TemporalReportedProblems IS NOT NULL'
    ):
        stuck.append(f"{execution.id}: its workflow task keeps failing")
    failed = [
        f"{execution.id} ({execution.status.name if execution.status else '?'})"
        async for execution in client.list_workflows(
            'ExecutionStatus IN ("Failed", "Terminated", "TimedOut")'
        )
    ]
    histories = [
        await client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
        async for execution in client.list_workflows("")
    ]
    return [
        judged("no workflow is stuck (failing task, activity retrying past a bound)", running, stuck),
        judged("no workflow failed", len(histories), failed),
        await replayed(histories),
    ]


async def replayed(histories: list[WorkflowHistory], workflows: Sequence[type] = WORKFLOWS) -> Result:
    """Every history replays on this code (`workflows`, today's unless told)."""
    replayer = Replayer(workflows=workflows)
    failures = []
    for history in histories:
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is not None:
            failures.append(f"{history.workflow_id}: {result.replay_failure}")
    return judged("every history replays on today's code", len(histories), failures)


def run_all(topology: Any, log: Any) -> list[Result]:
    return [
        *read_model(topology, log.calls),
        reconciled(topology),
        *asyncio.run(temporal_checks(topology.address)),
    ]
