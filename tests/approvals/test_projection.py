"""The read model under retries and out-of-order completion of projection activities."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import OperationalError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from approvals import activities, services
from approvals.models import ActivityFailure, RequestType
from approvals.services import request_project
from tests.conftest import make_request
from workflows.types import INVALID, Assignee, Content, EventKind, Projection, RequestStatus, TimelineEntry

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


def test_a_step_that_keeps_failing_is_listed_for_staff_and_one_that_cannot_succeed_fails_fast(
    people: dict[str, User], purchase: RequestType, temporal_unreachable: str, monkeypatch: Any
) -> None:
    request = make_request(people, purchase, started=True)
    public_id = str(request.public_id)
    reviewer = people["reviewer1"]
    pending = [Assignee(reviewer.pk, "reviewer1")]
    env = ActivityEnvironment()

    def attempt(number: int, sent: Projection) -> None:
        env.info = dataclasses.replace(env.info, attempt=number)
        asyncio.run(env.run(activities.project_state, sent))

    # A database that keeps refusing (a lock timeout, say): Temporal retries; staff see it.
    def refusing(**kwargs: Any) -> None:
        raise OperationalError("canceling statement due to lock timeout")

    monkeypatch.setattr(services, "request_project", refusing)
    for number in (1, 2, 3):
        with pytest.raises(OperationalError):
            attempt(number, projection(public_id, 10, RequestStatus.IN_REVIEW, pending))
    troubles, _ = services.workflows_in_trouble()
    [listed] = [t for t in troubles if t.request.pk == request.pk]
    assert listed.problem == "A step of its workflow keeps failing"
    assert listed.details[0].startswith("project_state: attempt 3 failed (Temporal retries it; failing for")
    assert listed.details[0].endswith("OperationalError: canceling statement due to lock timeout")
    monkeypatch.undo()
    attempt(4, projection(public_id, 10, RequestStatus.IN_REVIEW, pending))  # it went through
    assert not ActivityFailure.objects.exists()
    assert all(t.problem != listed.problem for t in services.workflows_in_trouble()[0])

    # Someone no database knows, named as an approver: retrying cannot help, so it fails fast.
    ghost = [Assignee(999_999, "ghost")]
    with pytest.raises(ApplicationError) as failed:
        attempt(1, projection(public_id, 11, RequestStatus.IN_REVIEW, ghost))
    assert failed.value.non_retryable and failed.value.type == INVALID
    failure = ActivityFailure.objects.get()
    assert (failure.activity, failure.attempt, failure.retrying) == ("project_state", 1, False)
    [listed] = [t for t in services.workflows_in_trouble()[0] if t.problem == listed.problem]
    assert "retrying cannot help, so Temporal gave up" in listed.details[0]
    request.refresh_from_db()
    assert request.version == 10  # and the read model is as it was
