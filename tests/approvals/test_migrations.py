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


@pytest.mark.django_db(transaction=True)
def test_requests_projected_before_the_state_was_kept_get_it_from_their_rows(
    migrator: MigrationExecutor,
) -> None:
    """0005: the read model keeps the workflow's state, for the rules to weigh. Requests projected
    before get it from what their rows recorded, so that the same person may (or may not) act on
    them as before; a cancelled request's stage run, left open then, is closed."""
    from temporalio.converter import value_to_type

    from workflows import rules
    from workflows.types import ActionKind, RequestState

    before, after = (
        [("approvals", "0004_assignment_asked_again")],
        [("approvals", "0005_read_model_keeps_workflow_state")],
    )
    executor = migrator
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    User = apps.get_model("auth", "User")
    RequestType = apps.get_model("approvals", "RequestType")
    ApprovalRequest = apps.get_model("approvals", "ApprovalRequest")
    Participant = apps.get_model("approvals", "Participant")
    Assignment = apps.get_model("approvals", "Assignment")
    StageRun = apps.get_model("approvals", "StageRun")
    t0 = timezone.now() - timedelta(days=1)
    requester, first, second, outsider = (
        User.objects.create(username=name) for name in ("old-requester", "first", "second", "outsider")
    )
    purchase = RequestType.objects.create(name="Purchase", slug="purchase")
    policy = {
        "request_type": "Purchase",
        "stages": [{"name": "Review", "rule": "all", "deadline_seconds": 86400}],
    }

    def request(status: str, **fields: object) -> object:
        return ApprovalRequest.objects.create(
            request_type=purchase,
            requester=requester,
            title=status,
            status=status,
            policy=policy,
            workflow_started_at=t0,
            version=4,
            **fields,
        )

    # In review: "first" approved already, "second" is still asked.
    open_ = request(
        "in_review",
        stage_name="Review",
        stage_version=1,
        stage_number=1,
        stage_count=1,
        deadline=t0 + timedelta(days=1),
    )
    for user, pending in ((first, False), (second, True)):
        Participant.objects.create(request=open_, user=user, pending=pending)
    Assignment.objects.create(
        request=open_,
        user=first,
        stage_name="Review",
        stage_version=1,
        asked_at=t0,
        closed_at=t0 + timedelta(hours=1),
        outcome="approval",
        seconds=3600,
    )
    Assignment.objects.create(request=open_, user=second, stage_name="Review", stage_version=1, asked_at=t0)
    StageRun.objects.create(
        request=open_, request_type=purchase, stage_name="Review", stage_version=1, started_at=t0
    )
    # Cancelled by staff before cancellations closed stage runs.
    cancelled = request(
        "cancelled",
        stage_name="Review",
        stage_version=1,
        decided_by=outsider,
        decided_by_name="outsider",
        decided_at=t0 + timedelta(hours=2),
        decision_comment="Twice",
    )
    Participant.objects.create(request=cancelled, user=first)
    StageRun.objects.create(
        request=cancelled, request_type=purchase, stage_name="Review", stage_version=1, started_at=t0
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    apps = executor.loader.project_state(after).apps
    WorkflowSnapshot = apps.get_model("approvals", "WorkflowSnapshot")
    StageRun = apps.get_model("approvals", "StageRun")

    state = value_to_type(RequestState, WorkflowSnapshot.objects.get(request_id=open_.pk).state)
    assert state.stage is not None and (state.stage.required, len(state.stage.approvals)) == (2, 1)
    assert [a.name for a in state.pending()] == ["second"]
    assert rules.abilities(state, second.pk).decide and not rules.abilities(state, first.pk).decide
    assert not rules.abilities(state, outsider.pk).comment
    assert rules.abilities(state, requester.pk).withdraw
    refused = rules.standing(state, ActionKind.APPROVE, first.pk)
    assert refused is not None and refused.message.startswith("You already approved stage “Review” at ")

    state = value_to_type(RequestState, WorkflowSnapshot.objects.get(request_id=cancelled.pk).state)
    assert rules.closed(state).startswith("This request is already cancelled by outsider at ")
    run = StageRun.objects.get(request_id=cancelled.pk)
    assert (run.outcome, run.seconds) == ("cancelled", 2 * 3600)
    assert StageRun.objects.get(request_id=open_.pk).closed_at is None


@pytest.mark.django_db(transaction=True)
def test_separation_of_duties_is_on_for_new_types_and_left_off_for_existing_ones(
    migrator: MigrationExecutor,
) -> None:
    """0008: a type that existed keeps routing as it did until an admin turns the rule on."""
    before, after = [("approvals", "0007_details_are_bounded")], [("approvals", "0008_distinct_approvers")]
    executor = migrator
    executor.migrate(before)
    old = executor.loader.project_state(before).apps.get_model("approvals", "RequestType")
    old.objects.create(name="Purchase", slug="purchase")

    executor = MigrationExecutor(connection)
    executor.migrate(after)
    RequestType = executor.loader.project_state(after).apps.get_model("approvals", "RequestType")
    RequestType.objects.create(name="Travel", slug="travel")
    assert dict(RequestType.objects.values_list("slug", "distinct_approvers")) == {
        "purchase": False,
        "travel": True,
    }
