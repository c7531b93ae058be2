"""The staff dashboard's figures: percentiles, times to decision per type and stage, approver
load, slowest responders, throughput, the charts, the period form and the CSV export."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from approvals import charts, selectors, services
from approvals.models import ApprovalRequest, Participant, RequestType, Stage
from approvals.selectors.analytics import Bucket, DurationStats, Period, percentile
from tests.conftest import as_user, make_request
from workflows.types import Assignee, Content, Decided, EventKind, Projection, TimelineEntry
from workflows.types import RequestStatus as Status

H = timedelta(hours=1)
# Inside the default period (the last 30 days), on a fixed hour so days are predictable.
T0 = (timezone.now() - timedelta(days=10)).replace(hour=9, minute=0, second=0, microsecond=0)


def hours(*values: float) -> list[timedelta]:
    return [v * H for v in values]


def test_percentiles_interpolate_between_neighbours() -> None:
    values = hours(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
    assert percentile(values, 50) == 5.5 * H
    assert percentile(values, 90) == 9.1 * H
    assert percentile(values, 0) == H and percentile(values, 100) == 10 * H
    assert percentile(hours(4), 90) == 4 * H
    assert percentile([1, 2, 3, 4], 50) == 2.5  # seconds, as the read model keeps them
    stats = DurationStats.of("x", [36000, 3600, 14400, 7200])  # unsorted in, sorted inside
    assert (stats.count, stats.median, stats.p90) == (4, 3 * H, 8.2 * H)
    with pytest.raises(ValueError):
        percentile([], 50)


class History:
    """Drives a request's read model through the real projection, at chosen times, the way the
    workflow would: each step is one projection of the events it produced."""

    def __init__(self, people: dict[str, User], request_type: RequestType, title: str, at: datetime) -> None:
        self.request = make_request(people, request_type)
        ApprovalRequest.objects.filter(pk=self.request.pk).update(title=title, created_at=at)
        self.request.refresh_from_db()
        self.seq = 0
        self.version = 0
        self.stage_name = ""

    def _project(
        self,
        events: list[tuple[EventKind, datetime, User | None]],
        status: Status,
        pending: list[User] = (),  # type: ignore[assignment]
        decided: Decided | None = None,
    ) -> None:
        entries = []
        for kind, at, actor in events:
            self.seq += 1
            entries.append(
                TimelineEntry(
                    seq=self.seq,
                    at=at,
                    kind=kind,
                    actor_id=actor.pk if actor else None,
                    actor_name=actor.username if actor else "",
                    stage=self.stage_name,
                )
            )
        waiting = [Assignee(user_id=u.pk, name=u.username) for u in pending]
        services.request_project(
            projection=Projection(
                request_id=str(self.request.public_id),
                seq=self.seq,
                status=status,
                revision=1,
                content=Content(title=self.request.title),
                stage_name=self.stage_name,
                stage_number=1,
                stage_count=1,
                deadline=None,
                pending=waiting,
                new_participants=waiting,
                events=entries,
                decided=decided,
                stage_version=self.version,
            )
        )

    def stage(self, at: datetime, *asked: User, name: str = "Review") -> None:
        if self.stage_name != name or not self.version:
            self.version += 1
        self.stage_name = name
        self._project([(EventKind.STAGE_STARTED, at, None)], Status.IN_REVIEW, list(asked))

    def approve(self, user: User, at: datetime, *, next_stage: str = "") -> None:
        """`user`'s approval closes the stage; the request is approved unless a stage follows."""
        events = [(EventKind.APPROVAL, at, user), (EventKind.STAGE_APPROVED, at, user)]
        if next_stage:
            self._project(events, Status.IN_REVIEW)
            self.version += 1
            self.stage_name = next_stage
        else:
            self._project(
                events + [(EventKind.APPROVED, at, user)],
                Status.APPROVED,
                decided=Decided(user.pk, user.username, at),
            )

    def reject(self, user: User, at: datetime) -> None:
        self._project(
            [(EventKind.REJECTED, at, user)], Status.REJECTED, decided=Decided(user.pk, user.username, at)
        )

    def request_changes(self, user: User, at: datetime) -> None:
        self._project([(EventKind.CHANGES_REQUESTED, at, user)], Status.CHANGES_REQUESTED)

    def resubmit(self, at: datetime) -> None:
        self.version += 1  # the stage starts again: a new run
        self._project([(EventKind.RESUBMITTED, at, self.request.requester)], Status.IN_REVIEW)

    def withdraw(self, at: datetime) -> None:
        requester = self.request.requester
        self._project(
            [(EventKind.WITHDRAWN, at, requester)],
            Status.WITHDRAWN,
            decided=Decided(requester.pk, requester.username, at),
        )


@pytest.fixture
def decided(people: dict[str, User], purchase: RequestType) -> dict[str, History]:
    """Three requests decided in the period, one long before it, and one still waiting.

    laptop: reviewer1 approves after 2h.
    desk:   reviewer2 asks for changes after 1h; resubmitted at 3h; reviewer1 approves at 7h.
    chair:  reviewer2 rejects after 10h.
    """
    r1, r2 = people["reviewer1"], people["reviewer2"]
    laptop = History(people, purchase, "Laptop", T0)
    laptop.stage(T0, r1, r2)
    laptop.approve(r1, T0 + 2 * H)

    desk = History(people, purchase, "Desk", T0)
    desk.stage(T0, r1, r2)
    desk.request_changes(r2, T0 + H)
    desk.resubmit(T0 + 3 * H)
    desk.stage(T0 + 3 * H, r1, r2)
    desk.approve(r1, T0 + 7 * H)

    chair = History(people, purchase, "Chair", T0 + 24 * H)
    chair.stage(T0 + 24 * H, r1, r2)
    chair.reject(r2, T0 + 34 * H)

    old = History(people, purchase, "Old printer", T0 - timedelta(days=200))
    old.stage(T0 - timedelta(days=200), r1)
    old.approve(r1, T0 - timedelta(days=199))
    return {"laptop": laptop, "desk": desk, "chair": chair, "old": old}


def test_times_to_decision_per_request_type_and_per_stage(decided: dict[str, History]) -> None:
    period = Period.last(30)
    [by_type] = selectors.decision_times_by_type(period=period)
    # Submission to decision: 2h, 7h, 10h; the request decided 200 days ago is outside.
    assert (by_type.label, by_type.count, by_type.median, by_type.p90) == ("Purchase", 3, 7 * H, 9.4 * H)

    [by_stage] = selectors.decision_times_by_stage(period=period)
    # Stage runs: 2h; 1h (changes requested) and then 4h after the resubmission; 10h.
    assert (by_stage.label, by_stage.count) == ("Purchase · Review", 4)
    assert (by_stage.median, by_stage.p90) == (3 * H, 8.2 * H)

    long_ago = Period(T0 - timedelta(days=201), T0 - timedelta(days=150))
    assert [r.count for r in selectors.decision_times_by_type(period=long_ago)] == [1]
    assert [r.median for r in selectors.decision_times_by_stage(period=long_ago)] == [24 * H]


def test_stages_of_another_type_and_a_stage_ended_without_decision_are_apart(
    people: dict[str, User], purchase: RequestType, decided: dict[str, History]
) -> None:
    travel = RequestType.objects.create(name="Travel", slug="travel")
    Stage.objects.create(request_type=travel, name="Manager")
    trip = History(people, travel, "Trip", T0)
    trip.stage(T0, people["manager"], name="Manager")
    trip.approve(people["manager"], T0 + 30 * H, next_stage="Finance")
    trip.stage(T0 + 30 * H, people["reviewer1"], name="Finance")
    trip.withdraw(T0 + 40 * H)
    runs = trip.request.stage_runs.values_list("stage_name", "stage_version", "outcome", "seconds")
    assert list(runs) == [("Manager", 1, "stage_approved", 30 * 3600), ("Finance", 2, "withdrawn", 10 * 3600)]

    rows = {r.label: r for r in selectors.decision_times_by_stage(period=Period.last(30))}
    assert set(rows) == {"Purchase · Review", "Travel · Manager"}  # Finance ended undecided
    assert rows["Travel · Manager"].median == 30 * H
    assert list(rows)[0] == "Travel · Manager"  # the slowest median first


def test_slowest_responders_and_those_who_let_requests_pass(
    people: dict[str, User], decided: dict[str, History]
) -> None:
    r1, r2 = people["reviewer1"], people["reviewer2"]
    slow, fast = selectors.slowest_responders(period=Period.last(30))
    # reviewer2 answered after 1h (desk) and 10h (chair); reviewer1 after 2h (laptop) and 4h (desk).
    assert (slow.user, slow.answered, slow.median, slow.p90, slow.unanswered) == (r2, 2, 5.5 * H, 9.1 * H, 2)
    assert (fast.user, fast.answered, fast.median, fast.unanswered) == (r1, 2, 3 * H, 2)


def test_approver_load_counts_what_waits_now_and_what_is_late(
    people: dict[str, User], purchase: RequestType
) -> None:
    now = timezone.now()
    for i, deadline in enumerate([now - H, now + H, now + 2 * H]):
        request = make_request(people, purchase, started=True)  # waits for reviewer1 and reviewer2
        Participant.objects.filter(request=request).update(deadline=deadline)
        if i == 2:
            Participant.objects.filter(request=request, user=people["reviewer2"]).update(pending=False)
    first, second = selectors.approver_load(now=now)
    assert (first.user, first.waiting, first.overdue, first.oldest_deadline) == (
        people["reviewer1"],
        3,
        1,
        now - H,
    )
    assert (second.user, second.waiting, second.overdue) == (people["reviewer2"], 2, 1)


def test_throughput_has_every_day_of_the_period_and_weeks_for_long_periods(
    decided: dict[str, History],
) -> None:
    since = T0.replace(hour=0) - timedelta(days=1)
    unit, days = selectors.throughput(period=Period(since, since + timedelta(days=4)))
    assert unit == "day"
    assert [(b.submitted, b.approved, b.rejected) for b in days] == [
        (0, 0, 0),
        (2, 2, 0),  # laptop and desk, submitted and approved on the day
        (1, 0, 1),  # chair, submitted in the morning and rejected in the evening
        (0, 0, 0),
    ]
    assert [b.start for b in days] == [timezone.localdate(since) + timedelta(days=n) for n in range(4)]
    # A bucket counts only what lies in the period: here the first day from 10:00 on.
    _, [laptop_day] = selectors.throughput(period=Period(T0 + H, T0 + 12 * H))
    assert (laptop_day.submitted, laptop_day.approved) == (0, 2)
    unit, weeks = selectors.throughput(period=Period.last(365))
    assert unit == "week"
    assert all(b.start.weekday() == 0 for b in weeks)
    assert sum(b.submitted for b in weeks) == 4 and sum(b.decided for b in weeks) == 4  # with the old one
    assert 52 <= len(weeks) <= 54


def test_charts_scale_to_the_largest_figure_and_describe_themselves() -> None:
    assert [charts.nice_ceiling(v) for v in (0, 1, 3, 7, 10, 11, 180)] == [1, 1, 5, 10, 10, 20, 200]
    today = timezone.localdate()
    chart = charts.throughput_chart(
        [Bucket(today, 10, 3, 2), Bucket(today + timedelta(days=1), 4, 0, 0)], "day"
    )
    assert chart.description == "14 submitted and 5 decided over 2 days."
    submitted, approved, rejected, second = chart.bars
    assert [b.css for b in chart.bars] == ["bar-submitted", "bar-approved", "bar-rejected", "bar-submitted"]
    bottom = charts.HEIGHT - charts.BOTTOM
    assert submitted.y == charts.TOP and submitted.y + submitted.height == pytest.approx(bottom)
    assert approved.height == pytest.approx(submitted.height * 0.3)
    assert rejected.y + rejected.height == pytest.approx(approved.y)  # stacked on the approvals
    assert second.height == pytest.approx(submitted.height * 0.4)
    assert [g.text for g in chart.gridlines] == ["0", "5", "10"]
    few = charts.throughput_chart([Bucket(today, 3, 1, 0)], "day")
    assert [g.text for g in few.gridlines] == ["0", "1", "2", "3"]  # whole numbers: these are counts
    many = charts.throughput_chart([Bucket(today, 180, 0, 0)], "day")
    assert [g.text for g in many.gridlines] == ["0", "50", "100", "150", "200"]
    assert charts.throughput_chart([], "day").empty

    rows = [DurationStats("Purchase", 3, 7 * H, 9.4 * H), DurationStats("Travel", 1, 30 * H, 30 * H)]
    bars = charts.durations_chart(rows, title="t").bars
    assert bars[2].width == max(b.width for b in bars)  # Travel's 90th percentile is the longest
    assert (
        "Purchase: median 7h, 90th percentile 9h 24m (3 decided)"
        in charts.durations_chart(rows, title="t").description
    )
    assert [charts.short_duration(timedelta(seconds=s)) for s in (40, 720, 3600, 19200, 273600, 86400)] == [
        "40s",
        "12m",
        "1h",
        "5h 20m",
        "3d 4h",
        "1d",
    ]


def test_the_dashboard_shows_the_chosen_periods_figures_and_charts(
    people: dict[str, User], decided: dict[str, History]
) -> None:
    admin = as_user(people["admin"])
    page = admin.get(reverse("dashboard")).content.decode()
    assert 'data-testid="chart-throughput"' in page and 'data-testid="chart-decision-times"' in page
    assert "<title>Purchase: median 7h</title>" in page
    assert "(3 submitted, 3 decided)" in page
    assert 'href="/dashboard/requests.csv?days=30"' in page

    old = admin.get(reverse("dashboard"), {"days": "365"}).content.decode()
    assert "(4 submitted, 4 decided)" in old and "per week" in old

    fragment = admin.get(
        reverse("dashboard"),
        {
            "since": (T0 - timedelta(days=201)).date().isoformat(),
            "until": (T0 - timedelta(days=190)).date().isoformat(),
        },
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="dashboard-figures",
    ).content.decode()
    assert fragment.strip().startswith('<div id="dashboard-figures">')
    assert "(1 submitted, 1 decided)" in fragment and "dashboard-summary" not in fragment
    first, last = T0 - timedelta(days=201), T0 - timedelta(days=190)
    assert f"{first:%-d %b %Y} – {last:%-d %b %Y}" in fragment  # both days included


@pytest.mark.parametrize(
    "query, error",
    [
        ({"days": "12"}, "Select a valid choice."),
        ({"since": "2026-13-01", "until": "2026-12-01"}, "From: Enter a valid date."),
        ({"since": "2026-13-01", "until": "2026-12-32"}, "From: Enter a valid date. To: Enter a valid date."),
        ({"since": "2026-05-01"}, "Give both dates of the period, or neither."),
        (
            {"since": "2026-05-02", "until": "2026-05-01"},
            "The period must end on or after the day it starts.",
        ),
        ({"since": "2020-01-01", "until": "2026-01-01"}, "Choose at most 366 days."),
        # The day after the last one a date can hold, and the first one, are out of range.
        ({"since": "9999-12-31", "until": "9999-12-31"}, "Choose days between 2000-01-01 and "),
        ({"since": "0001-01-01", "until": "0001-01-02"}, "Choose days between 2000-01-01 and "),
    ],
)
def test_a_bad_period_is_explained_and_the_default_shown(
    people: dict[str, User], query: dict[str, str], error: str
) -> None:
    admin = as_user(people["admin"])
    response = admin.get(reverse("dashboard"), query)
    assert response.status_code == 200
    page = response.content.decode()
    assert error in page and "Showing the last 30 days instead." in page
    figures = admin.get(
        reverse("dashboard"), query, headers={"HX-Request": "true", "HX-Target": "dashboard-figures"}
    )
    assert figures.status_code == 200 and error in figures.content.decode()
    export = admin.get(reverse("dashboard_export"), query)
    assert export.status_code == 400 and error in export.content.decode()


def test_the_csv_export_has_every_request_of_the_period_and_defuses_formulas(
    people: dict[str, User], decided: dict[str, History]
) -> None:
    ApprovalRequest.objects.filter(title="Chair").update(title='=HYPERLINK("http://x")')
    response = as_user(people["admin"]).get(reverse("dashboard_export"), {"days": "30"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="requests-')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["title"] for r in rows] == ["Laptop", "Desk", '\'=HYPERLINK("http://x")']
    laptop = rows[0]
    assert (laptop["status"], laptop["decided_by"], laptop["hours_to_decision"]) == (
        "approved",
        "reviewer1",
        "2.0",
    )
    assert laptop["id"] == str(decided["laptop"].request.public_id)


def test_figures_and_export_are_for_staff_only(people: dict[str, User]) -> None:
    for url in (reverse("dashboard"), reverse("dashboard_export")):
        response = as_user(people["reviewer1"]).get(url)
        assert response.status_code == 403 and "For staff only" in response.content.decode()


def test_durations_too_long_for_a_32_bit_integer_are_kept(
    people: dict[str, User], purchase: RequestType
) -> None:
    # Clocks do odd things (a test server skipping time, an old import): a century still fits.
    ancient = History(people, purchase, "Ancient", T0 - timedelta(days=36525))
    ancient.stage(T0 - timedelta(days=36525), people["reviewer1"])
    ancient.approve(people["reviewer1"], T0)
    ancient.request.refresh_from_db()
    assert ancient.request.decision_seconds == 36525 * 86400 > 2**31
    assert ancient.request.stage_runs.get().seconds == 36525 * 86400
