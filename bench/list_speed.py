"""How fast the lists people use stay with 100,000 requests in the database.

    .venv/bin/python bench/list_speed.py                      # SQLite, in DATA_DIR
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/list_speed.py

Creates its own database (`approvals_bench`, dropped afterwards), seeds N requests (default
100,000; `--requests`) spread over requesters and reviewers, then times each list query and each
page as the test client renders it: median and 95th percentile over `--runs` runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "approvals.settings")
os.environ.setdefault("TEMPORAL_ADDRESS", "127.0.0.1:1")  # pages must not wait on Temporal here


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=1, help="rounds of --runs; the median of each figure")
    parser.add_argument("--json", help="also write each case's median and p95 (ms) to this file")
    parser.add_argument("--only", help="time only the cases whose names contain this")
    args = parser.parse_args()

    import django
    from django.conf import settings

    settings_db = settings.DATABASES["default"]
    settings_db["TEST"] = {
        "NAME": str(settings.DATA_DIR / "bench.sqlite3")
        if settings_db["ENGINE"].endswith("sqlite3")
        else "approvals_bench"
    }
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    django.setup()
    from django.db import connection

    # Not Django's test environment: it makes every template render send a signal, on which the
    # test client copies the context. Pages are timed as production renders them.
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        figures = run(args.requests, args.runs, only=args.only or "", rounds=args.rounds)
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def timed(runs: int, fn: Callable[[], object], rounds: int = 1) -> tuple[float, float]:
    """The median and the 95th percentile of `runs` timings; with `rounds`, the median of each
    over that many rounds (this machine is shared: one round's p95 moves with its neighbours)."""
    fn()  # warm caches and connections
    medians, p95s = [], []
    for _ in range(rounds):
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - started) * 1000)
        samples.sort()
        medians.append(statistics.median(samples))
        p95s.append(samples[int(0.95 * (len(samples) - 1))])
    return statistics.median(medians), statistics.median(p95s)


def run(total: int, runs: int, only: str = "", rounds: int = 1) -> dict[str, dict[str, float]]:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from approvals import selectors, services
    from approvals.models import (
        ApprovalRequest,
        Assignment,
        Participant,
        RequestEvent,
        RequestType,
        Stage,
        StageRun,
        WorkflowSnapshot,
    )
    from approvals.selectors.analytics import Period
    from approvals.views import fragments
    from approvals.views.dashboard import _figures
    from workflows.codec import encode
    from workflows.review import snapshot
    from workflows.types import (
        Assignee,
        Content,
        Decided,
        Policy,
        RequestState,
        RequestStatus,
        Rule,
        StageSpec,
        StageState,
    )

    started = time.perf_counter()
    requesters = User.objects.bulk_create([User(username=f"requester{i}") for i in range(200)])
    # Fifty reviewers, fewer in a small database: at every size the busiest one has more than a
    # page waiting, so that sizes compare pages of the same rows.
    reviewers = User.objects.bulk_create(
        [User(username=f"reviewer{i}") for i in range(min(50, max(2, total // 800)))]
    )
    requesters[0].set_password("bench-pass-123")
    requesters[0].save()
    request_type = RequestType.objects.create(name="Purchase", slug="purchase")
    Stage.objects.create(request_type=request_type, name="Review", deadline=timedelta(days=2))
    now = timezone.now()
    batch = 5000
    policy = Policy("Purchase", [StageSpec("Review", Rule.ANY, 2 * 86400)])
    policy_json = dataclasses.asdict(policy)

    def workflow_state(i: int, status: str, created: datetime, decided: datetime | None) -> dict[str, object]:
        """The workflow's state as its projection leaves it in the read model."""
        asked = [reviewers[(i + k) % len(reviewers)] for k in (0, 1)]
        assignees = [Assignee(u.pk, u.username) for u in asked]
        stage = None
        if status == "in_review":
            deadline = now + timedelta(hours=i % 100)
            stage = StageState(0, "Review", 1, Rule.ANY, 1, created, deadline, True, assignees)
        state = RequestState(
            request_id="",
            requester_id=requesters[i % len(requesters)].pk,
            requester_name=requesters[i % len(requesters)].username,
            policy=policy,
            content=Content(f"Request {i}"),
            status=RequestStatus(status),
            stage=stage,
            participant_ids=[u.pk for u in asked],
            decided=Decided(asked[0].pk, "reviewer", decided) if decided else None,
            seq=3,
            stage_versions=1,
        )
        return encode(snapshot(state))

    # Requests spread over the last year; decided ones took 1 to 48 hours, answered by the first
    # of their two reviewers. The read model is written as the projection would leave it.
    created_field = ApprovalRequest._meta.get_field("created_at")
    created_field.auto_now_add = False  # the seed sets submission times itself
    for first in range(0, total, batch):
        rows = []
        for i in range(first, min(first + batch, total)):
            status = "in_review" if i % 10 < 3 else ("approved" if i % 2 else "rejected")
            created = now - timedelta(days=365) * ((total - i) / total)
            decided = None if status == "in_review" else created + timedelta(hours=1 + i % 48)
            rows.append(
                ApprovalRequest(
                    public_id=uuid.uuid4(),
                    request_type=request_type,
                    requester=requesters[i % len(requesters)],
                    title=f"Request {i}",
                    status=status,
                    deadline=now + timedelta(hours=i % 100) if status == "in_review" else None,
                    workflow_started_at=created,
                    created_at=created,
                    decided_at=decided,
                    decided_by_name="reviewer" if decided else "",
                    decision_seconds=int((decided - created).total_seconds()) if decided else None,
                    stage_name="Review",
                    version=3,
                    policy=policy_json,
                )
            )
        requests = ApprovalRequest.objects.bulk_create(rows)
        WorkflowSnapshot.objects.bulk_create(
            [
                WorkflowSnapshot(
                    request=r, state=workflow_state(first + n, r.status, r.created_at, r.decided_at)
                )
                for n, r in enumerate(requests)
            ]
        )
        Participant.objects.bulk_create(
            [
                Participant(
                    request=r,
                    user=reviewers[(first + n + k) % len(reviewers)],
                    pending=r.status == "in_review",
                )
                for n, r in enumerate(requests)
                for k in (0, 1)
            ]
        )
        Assignment.objects.bulk_create(
            [
                Assignment(
                    request=r,
                    user=reviewers[(first + n + k) % len(reviewers)],
                    stage_name="Review",
                    stage_version=1,
                    asked_at=r.created_at,
                    closed_at=r.decided_at,
                    outcome=("approval" if r.status == "approved" else r.status)
                    if r.decided_at and k == 0
                    else "",
                    seconds=r.decision_seconds,
                )
                for n, r in enumerate(requests)
                for k in (0, 1)
            ]
        )
        StageRun.objects.bulk_create(
            [
                StageRun(
                    request=r,
                    request_type=request_type,
                    stage_name="Review",
                    stage_version=1,
                    started_at=r.created_at,
                    closed_at=r.decided_at,
                    outcome={"approved": "stage_approved", "rejected": "rejected"}.get(r.status, ""),
                    seconds=r.decision_seconds,
                )
                for r in requests
            ]
        )
        events = []
        for r in requests:
            kinds = [("submitted", r.created_at), ("stage_started", r.created_at)]
            if r.status == "approved":
                kinds += [("approval", r.decided_at), ("stage_approved", r.decided_at)]
            elif r.status == "rejected":
                kinds += [("rejected", r.decided_at)]
            events += [
                RequestEvent(request=r, seq=seq, kind=kind, actor_name="x", stage="Review", occurred_at=at)
                for seq, (kind, at) in enumerate(kinds)
            ]
        RequestEvent.objects.bulk_create(events)
    created_field.auto_now_add = True
    with connection.cursor() as cursor:
        # As autovacuum leaves a live database: statistics, and the visibility map that lets a
        # count be read off an index alone.
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
        if connection.vendor == "postgresql":
            # And the seed's writes flushed now, not by a checkpoint in the middle of the timing.
            cursor.execute("CHECKPOINT")
    seconds = time.perf_counter() - started
    print(
        f"Seeded {total:,} requests, {Participant.objects.count():,} participants, "
        f"{Assignment.objects.count():,} assignments and {RequestEvent.objects.count():,} events "
        f"over a year on {connection.vendor} in {seconds:.0f}s"
    )

    requester = requesters[0]
    reviewer = User.objects.get(
        pk=Participant.objects.filter(pending=True).values_list("user_id", flat=True)[0]
    )
    reviewer.set_password("bench-pass-123")
    reviewer.save()
    one = ApprovalRequest.objects.filter(participants__user=reviewer).first()
    assert one is not None
    User.objects.create_user("staff", password="bench-pass-123", is_staff=True)
    reviewer_client, requester_client, staff_client = Client(), Client(), Client()
    assert reviewer_client.login(username=reviewer.username, password="bench-pass-123")
    assert requester_client.login(username=requester.username, password="bench-pass-123")
    assert staff_client.login(username="staff", password="bench-pass-123")
    month = Period.last(30)
    print(
        f"In the last 30 days: {ApprovalRequest.objects.filter(decided_at__gte=month.since).count():,} "
        "decided."
    )
    waiting = selectors.inbox_waiting(user=reviewer)
    print(
        f"The reviewer waits on {waiting.count():,} requests; the requester has "
        f"{selectors.request_list_for_requester(user=requester).count():,}."
    )

    cases: list[tuple[str, Callable[[], object]]] = [
        ("inbox: waiting, count + first page", lambda: (waiting.count(), list(waiting[:25]))),
        ("inbox: waiting, page 40", lambda: list(waiting[975:1000])),
        ("inbox: recently on the desk", lambda: selectors.inbox_recent(user=reviewer)),
        (
            "my requests: count + first page",
            lambda: (
                selectors.request_list_for_requester(user=requester).count(),
                list(selectors.request_list_for_requester(user=requester)[:25]),
            ),
        ),
        ("pending count (nav badge)", lambda: selectors.reviewer_pending_count(user=reviewer)),
        (
            "one request, visibility check",
            lambda: selectors.request_get_visible(user=reviewer, public_id=one.public_id),
        ),
        ("live update: audience of a request", lambda: services.request_change(one)),
        (
            "live push: one request's page",
            lambda: fragments.pushed_html(
                user=reviewer, public_id=str(one.public_id), view="request", shown_id=str(one.public_id)
            ),
        ),
        (
            "live push: an inbox row",
            lambda: fragments.pushed_html(user=reviewer, public_id=str(one.public_id), view="inbox"),
        ),
        ("page GET one request (rendered)", lambda: reviewer_client.get(one.get_absolute_url())),
        ("page GET /inbox/ (rendered)", lambda: reviewer_client.get("/inbox/")),
        ("page GET / (rendered)", lambda: requester_client.get("/")),
        ("dashboard: live summary (each push)", selectors.dashboard_summary),
        ("dashboard: figures, last 30 days", lambda: _figures(month)),
        ("dashboard: figures, last year", lambda: _figures(Period.last(365))),
        ("page GET /dashboard/ (rendered)", lambda: staff_client.get("/dashboard/")),
        (
            "CSV export, last 30 days",
            lambda: b"".join(staff_client.get("/dashboard/requests.csv?days=30").streaming_content),
        ),
    ]
    shown = f"{runs} runs" + (f", median of {rounds} rounds" if rounds > 1 else "")
    print(f"\n{'what':<40} {'median ms':>10} {'p95 ms':>8}   ({shown})")
    figures = {}
    for name, fn in cases:
        if only not in name:
            continue
        median, p95 = timed(runs, fn, rounds)
        figures[name] = {"median_ms": round(median, 2), "p95_ms": round(p95, 2)}
        print(f"{name:<40} {median:>10.2f} {p95:>8.2f}")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            sql, params = waiting[:25].query.sql_with_params()
            cursor.execute("EXPLAIN " + sql, params)
            print("\nPlan of the inbox's first page:\n" + "\n".join(row[0] for row in cursor.fetchall()))
    return figures


if __name__ == "__main__":
    main()
