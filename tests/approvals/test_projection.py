"""The read model under retries and out-of-order completion of projection activities."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.contrib.auth.models import User

from approvals.models import RequestType
from approvals.services import request_project
from tests.conftest import make_request
from workflows.types import Assignee, Content, EventKind, Projection, RequestStatus, TimelineEntry

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def projection(
    request_id: str, seq: int, status: RequestStatus, pending: list[Assignee], **extra: object
) -> Projection:
    return Projection(
        request_id=request_id,
        seq=seq,
        status=status,
        revision=1,
        content=Content("New laptop", "", "1200.00"),
        stage_name="Review",
        stage_number=1,
        stage_count=1,
        deadline=T0 + timedelta(days=3) if status == RequestStatus.IN_REVIEW else None,
        pending=pending,
        new_participants=pending,
        events=[
            TimelineEntry(seq=seq, at=T0 + timedelta(minutes=seq), kind=EventKind.COMMENT, comment=f"#{seq}")
        ],
        **extra,  # type: ignore[arg-type]
    )


def test_a_late_projection_never_overwrites_newer_state(
    people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase)
    rid = str(request.public_id)
    reviewers = [Assignee(people[n].pk, n) for n in ("reviewer1", "reviewer2")]

    request_project(projection=projection(rid, 1, RequestStatus.IN_REVIEW, reviewers))
    request_project(projection=projection(rid, 3, RequestStatus.APPROVED, []))
    request_project(projection=projection(rid, 2, RequestStatus.IN_REVIEW, reviewers[1:]))  # completes late
    request_project(projection=projection(rid, 3, RequestStatus.APPROVED, []))  # retried

    request.refresh_from_db()
    assert (request.status, request.version, request.deadline) == ("approved", 3, None)
    assert not request.participants.filter(pending=True).exists()
    assert list(request.events.values_list("seq", "comment")) == [(1, "#1"), (2, "#2"), (3, "#3")]
    assert request.participants.count() == 2  # the late projection's people are kept, not duplicated
