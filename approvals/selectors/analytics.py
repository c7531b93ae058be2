"""Selectors for the staff dashboard's figures over a period: how long decisions take (per
request type and per stage), who carries the load and who answers slowly, and throughput.

Durations come from the read model the projection writes, in whole seconds: requests
(submission to decision), stage runs (a stage's start to its end) and assignments (a person
asked to their answer). Percentiles are computed here, in Python, over those integers, so they
mean the same on SQLite and PostgreSQL; the period (a year at most) bounds how many are read,
and a row is a few integers. No default ordering: it would join and sort for nothing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TypeVar

from django.contrib.auth.models import User
from django.db.models import Count, Min, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from approvals.models import ApprovalRequest, Assignment, Participant, RequestType, StageRun
from workflows.types import RequestStatus

T = TypeVar("T", int, float, timedelta)
DECIDED = [RequestStatus.APPROVED.value, RequestStatus.REJECTED.value]


@dataclass(frozen=True)
class Period:
    """[since, until): what the dashboard's figures cover."""

    since: datetime
    until: datetime

    @classmethod
    def last(cls, days: int, *, now: datetime | None = None) -> Period:
        until = now or timezone.now()
        return cls(until - timedelta(days=days), until)

    @property
    def label(self) -> str:
        """ "3 May 2026 – 16 May 2026" for whole days (the last one included), else to the minute."""
        since, until = timezone.localtime(self.since), timezone.localtime(self.until)
        if since.time() == until.time() == datetime.min.time():
            return f"{since:%-d %b %Y} – {until - timedelta(days=1):%-d %b %Y}"
        return f"{since:%-d %b %Y %H:%M} – {until:%-d %b %Y %H:%M}"


def percentile(ordered: Sequence[T], q: float) -> T:
    """The q-th percentile (0..100) of sorted values (seconds, durations), interpolated between
    neighbours as PostgreSQL's percentile_cont does."""
    if not ordered:
        raise ValueError("No values")
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    # T is seconds or a timedelta: both interpolate like this, which Sequence[T] cannot say.
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)  # type: ignore[return-value]


@dataclass(frozen=True)
class DurationStats:
    label: str
    count: int
    median: timedelta
    p90: timedelta

    @classmethod
    def of(cls, label: str, seconds: Iterable[int]) -> DurationStats:
        ordered = sorted(seconds)  # plain integers: sorting 100,000 of them takes milliseconds
        return cls(
            label,
            len(ordered),
            timedelta(seconds=percentile(ordered, 50)),
            timedelta(seconds=percentile(ordered, 90)),
        )


def _stats(groups: dict[str, list[int]]) -> list[DurationStats]:
    """One row per group of durations in seconds, slowest median first."""
    rows = [DurationStats.of(label, values) for label, values in groups.items() if values]
    return sorted(rows, key=lambda r: (-r.median, r.label))


def decision_times_by_type(*, period: Period) -> list[DurationStats]:
    """Submission to final decision (approved or rejected), for requests decided in the period."""
    names = dict(RequestType.objects.values_list("pk", "name"))
    groups: dict[str, list[int]] = defaultdict(list)
    rows = ApprovalRequest.objects.filter(
        status__in=DECIDED,
        decided_at__gte=period.since,
        decided_at__lt=period.until,
        decision_seconds__isnull=False,
    ).values_list("request_type_id", "decision_seconds")
    for type_id, seconds in rows.order_by():
        if seconds is not None:  # the filter excludes none; the column allows them
            groups[names[type_id]].append(seconds)
    return _stats(groups)


def decision_times_by_stage(*, period: Period) -> list[DurationStats]:
    """A stage's start to its decision (approved, rejected, changes requested), for decisions in
    the period; a stage that starts again after a resubmission is a run of its own."""
    names = dict(RequestType.objects.values_list("pk", "name"))
    groups: dict[str, list[int]] = defaultdict(list)
    rows = StageRun.objects.filter(
        closed_at__gte=period.since, closed_at__lt=period.until, outcome__in=StageRun.DECISIONS
    ).values_list("request_type_id", "stage_name", "seconds")
    for type_id, stage, seconds in rows.order_by():
        if seconds is not None:  # a closed run always has its duration
            groups[f"{names[type_id]} · {stage}"].append(seconds)
    return _stats(groups)


@dataclass(frozen=True)
class Load:
    user: User
    waiting: int
    overdue: int
    oldest_deadline: datetime | None


def approver_load(*, limit: int = 10, now: datetime | None = None) -> list[Load]:
    """Who has the most requests waiting for them right now, and how many of those are late."""
    now = now or timezone.now()
    rows = (
        Participant.objects.filter(pending=True)
        .values("user_id")
        .annotate(
            waiting=Count("pk"),
            overdue=Count("pk", filter=Q(deadline__lt=now)),
            oldest=Min("deadline"),
        )
        .order_by("-waiting", "-overdue", "user_id")[:limit]
    )
    users = User.objects.in_bulk([row["user_id"] for row in rows])
    return [Load(users[r["user_id"]], r["waiting"], r["overdue"], r["oldest"]) for r in rows]


@dataclass(frozen=True)
class Responder:
    user: User
    answered: int
    unanswered: int  # asked, and the stage ended (or they were still asked) with no answer
    median: timedelta | None
    p90: timedelta | None


def slowest_responders(*, period: Period, limit: int = 10, minimum: int = 1) -> list[Responder]:
    """People by how long they take to answer once asked, for answers given in the period;
    the slowest median first. Those who let requests go by without answering are listed too."""
    durations: dict[int, list[int]] = defaultdict(list)
    unanswered: dict[int, int] = defaultdict(int)
    rows = Assignment.objects.filter(closed_at__gte=period.since, closed_at__lt=period.until).values_list(
        "user_id", "outcome", "seconds"
    )
    for user_id, outcome, seconds in rows.order_by():
        if outcome == Assignment.Outcome.NOT_NEEDED:
            unanswered[user_id] += 1
        elif seconds is not None:  # a closed assignment always has its duration
            durations[user_id].append(seconds)
    people = [
        DurationStats.of(str(uid), values) for uid, values in durations.items() if len(values) >= minimum
    ]
    people.sort(key=lambda row: (-row.median, int(row.label)))
    chosen = people[:limit]
    users = User.objects.in_bulk([int(row.label) for row in chosen])
    return [
        Responder(users[int(row.label)], row.count, unanswered[int(row.label)], row.median, row.p90)
        for row in chosen
    ]


@dataclass(frozen=True)
class Bucket:
    start: date
    submitted: int
    approved: int
    rejected: int

    @property
    def decided(self) -> int:
        return self.approved + self.rejected


def throughput(*, period: Period) -> tuple[str, list[Bucket]]:
    """Requests submitted and decided per day (per week for periods over two months), every
    bucket of the period present, empty ones included. Returns the bucket size's name too.

    Counted per local day by the database (a native date cast on PostgreSQL; on SQLite a
    function per row, which is the slower part there for long periods)."""
    tz = timezone.get_current_timezone()
    first = timezone.localtime(period.since, tz).date()
    last = timezone.localtime(period.until - timedelta(microseconds=1), tz).date()
    weekly = (last - first).days > 62
    if weekly:
        first -= timedelta(days=first.weekday())  # weeks start on Monday
    step = timedelta(days=7 if weekly else 1)

    def bucket_of(day: date) -> date:
        return day - timedelta(days=day.weekday()) if weekly else day

    submitted: dict[date, int] = defaultdict(int)
    decided: dict[tuple[date, str], int] = defaultdict(int)
    in_period = ApprovalRequest.objects.order_by().filter
    for day, n in (
        in_period(created_at__gte=period.since, created_at__lt=period.until)
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
    ):
        submitted[bucket_of(day)] += n
    for day, status, n in (
        in_period(status__in=DECIDED, decided_at__gte=period.since, decided_at__lt=period.until)
        .annotate(day=TruncDate("decided_at", tzinfo=tz))
        .values("day", "status")
        .annotate(n=Count("pk"))
        .values_list("day", "status", "n")
    ):
        decided[(bucket_of(day), status)] += n
    approved, rejected = DECIDED
    starts = [first + step * i for i in range((last - first) // step + 1)]
    buckets = [Bucket(d, submitted[d], decided[(d, approved)], decided[(d, rejected)]) for d in starts]
    return ("week" if weekly else "day"), buckets


EXPORT_COLUMNS = [
    "id",
    "type",
    "title",
    "requester",
    "amount",
    "status",
    "stage",
    "submitted_at",
    "decided_at",
    "decided_by",
    "hours_to_decision",
    "decision_comment",
]


def requests_export(*, period: Period) -> Iterable[list[object]]:
    """Rows for the CSV export: every request submitted or decided in the period, oldest first."""
    in_period = Q(created_at__gte=period.since, created_at__lt=period.until) | Q(
        decided_at__gte=period.since, decided_at__lt=period.until
    )
    rows = (
        ApprovalRequest.objects.filter(in_period)
        .order_by("created_at", "pk")
        .values_list(
            "public_id",
            "request_type__name",
            "title",
            "requester__username",
            "amount",
            "status",
            "stage_name",
            "created_at",
            "decided_at",
            "decided_by_name",
            "decision_comment",
        )
    )
    for (
        public_id,
        type_name,
        title,
        requester,
        amount,
        status,
        stage,
        created,
        decided,
        by,
        comment,
    ) in rows.iterator(chunk_size=2000):
        final = status in DECIDED and decided is not None
        hours = round((decided - created) / timedelta(hours=1), 2) if final and decided else ""
        yield [
            str(public_id),
            type_name,
            title,
            requester,
            "" if amount is None else str(amount),
            status,
            stage,
            created.isoformat(),
            decided.isoformat() if decided else "",
            by,
            hours,
            comment,
        ]
