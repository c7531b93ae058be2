"""Migrations that fill new read models from what is already recorded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("approvals", "0001_initial")]
AFTER = [("approvals", "0002_read_model_for_figures")]


@pytest.fixture
def migrator() -> Iterator[MigrationExecutor]:
    """An executor for moving the test database between migrations; back to the latest after."""
    yield MigrationExecutor(connection)
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_figures_read_model_is_filled_from_the_audit_trail_of_earlier_requests(
    migrator: MigrationExecutor,
) -> None:
    executor = migrator
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    User = apps.get_model("auth", "User")
    RequestType = apps.get_model("approvals", "RequestType")
    ApprovalRequest = apps.get_model("approvals", "ApprovalRequest")
    RequestEvent = apps.get_model("approvals", "RequestEvent")
    t0 = timezone.now() - timedelta(days=3)
    hour = timedelta(hours=1)

    requester = User.objects.create(username="old-requester")
    purchase = RequestType.objects.create(name="Purchase", slug="purchase")

    def request(title: str, status: str, stage_version: int = 0, decided: float | None = None) -> int:
        row = ApprovalRequest.objects.create(
            request_type=purchase,
            requester=requester,
            title=title,
            status=status,
            stage_version=stage_version,
            decided_at=t0 + decided * hour if decided is not None else None,
        )
        ApprovalRequest.objects.filter(pk=row.pk).update(created_at=t0)
        return row.pk

    def events(request_id: int, *kinds: tuple[str, str, float]) -> None:
        for seq, (kind, stage, at) in enumerate(kinds, start=1):
            RequestEvent.objects.create(
                request_id=request_id, seq=seq, kind=kind, stage=stage, occurred_at=t0 + at * hour
            )

    approved = request("Approved in two stages", "approved", decided=5)
    events(
        approved,
        ("stage_started", "Review", 0),
        ("approval", "Review", 1),
        ("stage_approved", "Review", 1),
        ("stage_started", "Finance", 1),
        ("stage_approved", "Finance", 5),
        ("approved", "Finance", 5),
    )
    # Changes requested, resubmitted, and now in its second run of the stage (version 3 here).
    open_ = request("Waiting again", "in_review", stage_version=3)
    events(
        open_,
        ("stage_started", "Review", 0),
        ("changes_requested", "Review", 2),
        ("resubmitted", "Review", 4),
        ("stage_started", "Review", 4),
    )
    withdrawn = request("Withdrawn", "withdrawn", decided=1)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    apps = executor.loader.project_state(AFTER).apps
    ApprovalRequest = apps.get_model("approvals", "ApprovalRequest")
    StageRun = apps.get_model("approvals", "StageRun")

    seconds = dict(ApprovalRequest.objects.values_list("pk", "decision_seconds"))
    assert seconds == {approved: 5 * 3600, open_: None, withdrawn: None}
    runs = list(
        StageRun.objects.order_by("request_id", "started_at", "pk").values_list(
            "request_id", "stage_name", "stage_version", "outcome", "seconds"
        )
    )
    assert runs == [
        (approved, "Review", 1, "stage_approved", 3600),
        (approved, "Finance", 2, "stage_approved", 4 * 3600),
        (open_, "Review", 2, "changes_requested", 2 * 3600),
        (open_, "Review", 3, "", None),  # the current run, numbered as the workflow numbers it
    ]
