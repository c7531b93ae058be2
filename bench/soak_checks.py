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

from workflows.registry import ALL_WORKFLOWS

EVENT = {
    "approve": "approval",
    "reject": "rejected",
    "comment": "comment",
    "request_changes": "changes_requested",
    "delegate": "delegated",
    "undo": "undone",
}
DECISIONS = ("approve", "reject", "request_changes")  # held for an undo period, where it has one
# How a decision held for its undo period ends: in effect, let go, or undone (the undo's event).
TAKEN = tuple(EVENT[kind] for kind in DECISIONS)
OWN_CHECKS = ("keep", "click again")  # a campaign's review, a used link clicked again
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


def settled_judged(under_way: dict[str, int], limit: float) -> Result:
    """The system settled within `limit` seconds: of each kind of thing it waited on (`under_way`,
    how many were left when it stopped waiting), none left."""
    problems = [f"{n} {what} after {limit:.0f} s" for what, n in under_way.items() if n]
    name = "the system settled: nothing left under way, no action shown pending for good"
    return judged(name, len(under_way), problems)


def read_model_findings(
    calls: list[dict[str, Any]],
    mail: dict[str, int],
    hooks: dict[str, int],
    supplier: dict[str, Any] | None = None,
    resends: dict[str, list[Any]] | None = None,
    kills: list[float] | None = None,
) -> list[tuple[str, int, list[str]]]:
    """The read model's invariants, in the app (Django set up): what the client was told against
    each request's timeline, the emails recorded against those the SMTP server received, the
    webhook events against those the receiver was sent, and the sagas' ledgers against the
    supplier's orders (`supplier`: its orders by key, and the numbers cancelled).

    An email can go twice, and only so: when the worker sending it is killed after the mail
    server took it and before it is recorded as sent (the one UPDATE between), a retry sends it
    again. Nothing can close that window over SMTP without losing emails instead; the copy keeps
    the Message-ID, so mail systems show one. So a key received twice breaks the invariant unless
    `resends` (each copy of it: seconds into the load, Message-ID) shows one Message-ID and one
    of `kills` (a worker's, seconds into the load) falls between the copies."""
    from django.contrib.auth.models import User

    from approvals.models import ApprovalRequest, OutboundEmail, RequestEvent, WebhookDelivery, WebhookEvent

    users = dict(User.objects.values_list("username", "pk"))
    titles = Counter(ApprovalRequest.objects.values_list("title", flat=True))
    checked = [c for c in calls if c["kind"] not in OWN_CHECKS]
    ids = ["" if c["kind"] == "create" else action_id(c, users) for c in checked]
    events = Counter(RequestEvent.objects.filter(action_id__in=ids).values_list("action_id", "kind"))
    acked, unknown, refused = [], [], []
    for call, made in zip(checked, ids, strict=True):
        if call["kind"] == "create":
            found = titles[f"Soak {call['key'][:8]}"]
        else:
            found = recorded(call, made, events)
        via = call.get("via", "api")
        said = f"{call['kind']} {call['key'][:8]} by {call['who']} via {via} (answered {call['status']})"
        if call["outcome"] == "acked" and found != 1:
            acked.append(f"{said}: {found} times in the timeline")
        elif call["outcome"] == "unknown" and found > 1:
            unknown.append(f"{said}: {found} times")
        elif call["outcome"] == "refused" and found != 0:
            refused.append(f"{said}: refused, yet {found} times")
    told = Counter(c["outcome"] for c in checked)
    findings = [
        ("every acknowledged action is in its timeline exactly once", told["acked"], acked),
        ("no unacknowledged action is in it twice", told["unknown"], unknown),
        ("no refused action is in it", told["refused"], refused),
        held_findings(calls),
        link_findings([c for c in calls if c["kind"] == "click again"]),
    ]

    received = Counter(mail)
    emails = list(OutboundEmail.objects.values_list("idempotency_key", "status"))
    known = {key for key, _ in emails}
    excused = [key for key, n in received.items() if n > 1 and resent_after_a_kill(key, resends, kills)]
    twice = [f"{key} sent {n} times" for key, n in received.items() if n > 1 and key not in excused]
    stray = [f"{key} was sent but is not recorded" for key in received if key not in known]
    unsent = [
        f"{key} is {status}" if status != "sent" else f"{key} is marked sent, yet never arrived"
        for key, status in emails
        if status != "sent" or not received[key]
    ]
    name = "every email key was sent at most once"
    if excused:
        name += f" ({len(excused)} sent again after its worker was killed mid-send, same Message-ID)"
    findings.append((name, len(received), twice + stray))
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
    findings.append(ledger_findings(supplier or {"orders": {}, "cancelled": []}))
    findings.append(campaign_findings([c for c in calls if c["kind"] == "keep"]))
    return findings


def action_id(call: dict[str, Any], users: dict[str, int]) -> str:
    """The id the app gave the call's action: made from the person and the Idempotency-Key in
    the API, the form's own on a page, the link's for an email link (in its signed token)."""
    from django.core import signing

    from approvals.api.routes import KEYS
    from approvals.services.email_links import SALT

    via = call.get("via", "api")
    if via == "web":
        return str(call["key"])
    if via == "email":
        try:
            return str(uuid.UUID(hex=signing.loads(call["key"], salt=SALT)["n"]))
        except (signing.BadSignature, KeyError, ValueError):
            return ""  # not a link the app made: nothing can carry its id
    return str(uuid.uuid5(KEYS, f"{users[call['who']]}:{call['key']}"))


def recorded(call: dict[str, Any], action_id: str, events: Counter[tuple[str, str]]) -> int:
    """How many times the call's action is in its request's timeline: a decision held for an
    undo period by the event that held it (how it ended is `held_findings`); a signalled one
    that came after the request moved on by the event that let it go; any other action by the
    event it makes."""
    if call["kind"] in DECISIONS and events[(action_id, "held")]:
        return events[(action_id, "held")]
    let_go = events[(action_id, "lapsed")] if call.get("via") == "email" else 0
    return events[(action_id, EVENT[call["kind"]])] + let_go


def held_findings(calls: list[dict[str, Any]]) -> tuple[str, int, list[str]]:
    """Each decision held for its undo period ended exactly once: it took effect, or lapsed (the
    request moved on), or its maker undid it (an undo of it that is in the timeline)."""
    from approvals.models import RequestEvent

    undos = [c for c in calls if c["kind"] == "undo"]
    undone = set(
        RequestEvent.objects.filter(kind="undone", action_id__in=[c["key"] for c in undos]).values_list(
            "action_id", flat=True
        )
    )
    undid = Counter(c["target"] for c in undos if c["key"] in undone)
    held = list(RequestEvent.objects.filter(kind="held").values_list("action_id", "request__public_id"))
    ended = Counter(
        RequestEvent.objects.filter(
            kind__in=[*TAKEN, "lapsed"], action_id__in=[a for a, _ in held]
        ).values_list("action_id", flat=True)
    )
    problems = [
        f"decision {held_id[:8]} on {public_id}: held, then ended {ended[held_id] + undid[held_id]} times"
        for held_id, public_id in held
        if ended[held_id] + undid[held_id] != 1
    ]
    return ("every held decision took effect, lapsed or was undone, exactly once", len(held), problems)


def link_findings(again: list[dict[str, Any]]) -> tuple[str, int, list[str]]:
    """An email link that worked works once: clicked again, it is refused (and what it did is in
    the timeline once, as the first click's check says)."""
    problems = [
        f"link {c['key'][:12]}… of {c['who']}: clicked again, it answered {c['status']}"
        for c in again
        if c["status"] == 200
    ]
    return ("every email link used works once: clicked again, it is refused", len(again), problems)


def campaign_findings(keeps: list[dict[str, Any]]) -> tuple[str, int, list[str]]:
    """Each campaign ended with every review it started closed once: decided by its reviewer
    (each review the client was told it kept, by that person) or by the end rule, never both;
    a refused decision changed nothing it had not already."""
    from approvals.models import Campaign, CampaignItem

    problems: list[str] = []
    campaigns = list(Campaign.objects.all())
    for campaign in campaigns:
        items = CampaignItem.objects.filter(campaign=campaign)
        count = items.count()
        if campaign.status != "completed" or not campaign.total == campaign.started == count:
            problems.append(
                f"campaign {campaign.name}: {campaign.status}, {campaign.total} to review, "
                f"{campaign.started} started, {count} reviews"
            )
        for item in items.exclude(status__in=["kept", "revoked", "ended"]):
            problems.append(f"review {item.pk}: still {item.status}")
        if stray := items.filter(closed_at__isnull=True).count():
            problems.append(f"{stray} reviews never closed")
        if both := items.filter(by_rule=True, decided_by__isnull=False).count():
            problems.append(f"{both} reviews decided by a person and by the end rule")
    reviewed = {str(i.pk): i for i in CampaignItem.objects.select_related("decided_by")}
    for call in keeps:
        item = reviewed.get(call["key"])
        if call["outcome"] == "acked" and (
            item is None
            or item.status != "kept"
            or item.by_rule
            or item.decided_by is None
            or item.decided_by.username != call["who"]
        ):
            problems.append(
                f"review {call['key']}: kept by {call['who']} as told, yet {item and item.status}"
            )
    acked = sum(c["outcome"] == "acked" for c in keeps)
    count = sum(c.total for c in campaigns) + acked
    return ("every campaign review was closed once, and every kept one as told", count, problems)


def resent_after_a_kill(key: str, resends: dict[str, list[Any]] | None, kills: list[float] | None) -> bool:
    copies = (resends or {}).get(key, [])
    if len(copies) < 2 or len({message_id for _, message_id in copies}) != 1:
        return False
    first, last = min(at for at, _ in copies), max(at for at, _ in copies)
    return any(first <= killed <= last for killed in kills or [])


def ledger_findings(supplier: dict[str, Any]) -> tuple[str, int, list[str]]:
    """Each saga's books: a fulfilled one holds its reservation and a live order, here and at the
    supplier; a rolled-back one released what it reserved and cancelled what it ordered; every
    approved purchase had its saga run to an end; and each cost centre's reserved money is the
    sum of its fulfilled purchases, its available money what is left of its allocation."""
    from approvals.models import ApprovalRequest, Fulfilment, LedgerEntry, PurchaseOrder
    from approvals.selectors.budgets import budgets, money

    placed, cancelled = supplier["orders"], set(supplier["cancelled"])
    problems: list[str] = []
    held: Counter[int] = Counter()
    runs = list(Fulfilment.objects.select_related("request"))
    for run in runs:
        key = f"{run.request.public_id}:fulfilment:{run.attempt}:"
        entries = {e.key: e for e in LedgerEntry.objects.filter(key__startswith=key)}
        reserved, released = entries.get(key + "reserve"), entries.get(key + "reserve:released")
        order = PurchaseOrder.objects.filter(key=key + "order").first()
        there = placed.get(key + "order")  # the supplier's number for it, if it placed one
        name = f"{run.request.public_id} attempt {run.attempt} ({run.status})"
        if run.status == "fulfilled":
            if reserved is None or released is not None or reserved.amount != money(run.request.amount):
                problems.append(f"{name}: reserved {reserved and reserved.amount}, released {bool(released)}")
            else:
                held[reserved.cost_centre_id] += reserved.amount
            if order is None or order.cancelled_at is not None or there is None or there in cancelled:
                problems.append(f"{name}: its order is not live both here and at the supplier")
        elif run.status == "rolled_back":
            if (reserved is None) != (released is None) or (
                reserved and released and reserved.amount != released.amount
            ):
                took, gave = reserved and reserved.amount, released and released.amount
                problems.append(f"{name}: reserved {took}, released {gave}")
            if there is not None and there not in cancelled:
                problems.append(f"{name}: order {there} is still live at the supplier")
            if order is not None and order.cancelled_at is None:
                problems.append(f"{name}: order {order.number} is not cancelled here")
        else:
            problems.append(f"{name}: never ended")
    unrun = ApprovalRequest.objects.filter(status="approved", request_type__fulfilment="purchase").exclude(
        fulfilment__in=["fulfilled", "rolled_back"]
    )
    problems += [
        f"{public_id}: approved, yet its saga did not end"
        for public_id in unrun.values_list("public_id", flat=True)
    ]
    for budget in budgets():
        code, should = budget.centre.code, held[budget.centre.pk]
        if (
            budget.reserved != should
            or budget.available != budget.allocated - budget.reserved
            or budget.available < 0
        ):
            problems.append(
                f"cost centre {code}: {budget.allocated} allocated, {budget.reserved} reserved "
                f"(its fulfilled purchases: {should}), {budget.available} available"
            )
    return ("every ledger is balanced, every rolled-back saga fully compensated", len(runs), problems)


def report() -> None:
    """`read_model_findings` over the files the soak names in SOAK_CALLS, SOAK_MAIL, SOAK_HOOKS and
    SOAK_SUPPLIER, printed as JSON (run by `manage.py shell`)."""
    data = {
        name: json.loads(Path(os.environ[name]).read_text())
        for name in ("SOAK_CALLS", "SOAK_MAIL", "SOAK_HOOKS", "SOAK_SUPPLIER", "SOAK_RESENDS", "SOAK_KILLS")
    }
    findings = read_model_findings(
        data["SOAK_CALLS"],
        data["SOAK_MAIL"],
        data["SOAK_HOOKS"],
        data["SOAK_SUPPLIER"],
        data["SOAK_RESENDS"],
        data["SOAK_KILLS"],
    )
    print(json.dumps(findings))


def read_model(topology: Any, log: Any) -> list[Result]:
    mailbox = topology.mailbox
    with tempfile.TemporaryDirectory() as scratch:
        files = {"SOAK_CALLS": [asdict(c) for c in log.calls], "SOAK_MAIL": mailbox.counts()}
        files["SOAK_HOOKS"] = dict(topology.hooks.ids)
        files["SOAK_SUPPLIER"] = topology.supplier.state()
        files["SOAK_RESENDS"] = {
            key: [(at - log.started, message_id) for at, message_id in copies]
            for key, copies in mailbox.copies.items()
            if len(copies) > 1
        }
        files["SOAK_KILLS"] = [at for at, fault in log.faults if fault in ("kill worker", "kill bulk-worker")]
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


async def replayed(histories: list[WorkflowHistory], workflows: Sequence[type] = ALL_WORKFLOWS) -> Result:
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
        *read_model(topology, log),
        reconciled(topology),
        *asyncio.run(temporal_checks(topology.address)),
    ]
