"""Histories of released workflow versions still replay on the current code (determinism)."""

from __future__ import annotations

import concurrent.futures
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.workflow import NondeterminismError

from tests.conftest import LoopThread
from workflows.approval import ApprovalWorkflow
from workflows.registry import ALL_WORKFLOWS
from workflows.review import Review
from workflows.types import (
    ApprovalInput,
    Decided,
    NotificationKind,
    RequestState,
    RequestStatus,
    workflow_id_for,
)

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(workflow_id_for(path.stem), path.read_text())


def test_released_histories_are_committed() -> None:
    names = {p.stem.rsplit("-run", 1)[0] for p in HISTORIES}
    assert {
        "approved_in_two_stages",
        "escalated_then_expired",
        "changes_then_resubmitted",
        "withdrawn",
        "delegation_handed_back",  # recorded before PATCH_HANDED_BACK, so it replays the old branch
        # Recorded on the release that answers updates once projected and records skipped stages:
        "skipped_stage_answers_projected",
        "cancelled_by_staff",
        "distinct_approvers",  # on the release that adds separation of duties
        # On the release whose stage timer is started again only when its time moves:
        "steady_timer",
        "steady_timer_continued_as_new",
        # On the release that takes fewer tasks (one workflow task and one activity per action):
        "fewer_tasks",
        "fewer_tasks_continued_as_new",
        # On the release whose decisions wait out an undo period:
        "undo",
        "undo_continued_as_new",
        # On the release that fulfils approvals and grants access for a period: an approval that
        # starts its fulfilment (and that fulfilment), sagas fulfilled and rolled back, grants.
        "approved_then_fulfilled",
        "approved_then_fulfilled_fulfilment",
        "fulfilment_fulfilled",
        "fulfilment_rolled_back",
        "grant_extended_then_expired",
        "grant_revoked",
        "grant_continued_as_new",
        # On the release of agent actions: approved with edits, and approved by a trusting stage.
        "agent_approved_with_edits",
        "agent_trusted_low_risk",
        # On the release that reviews access in campaigns: a campaign that continued as new
        # between its batches and completed, one cancelled, and its reviews' ends.
        "campaign_completed",
        "campaign_cancelled",
        "campaign_review_kept",
        "campaign_review_revoked",
        "campaign_review_by_rule",
        "campaign_review_closed",
        # On the release that sends webhooks: a delivery made on a retry, one to a subscriber
        # that is gone, and one that gave up when its round's time was over.
        "webhook_delivered_on_retry",
        "webhook_gone",
        "webhook_gave_up",
    } <= names
    assert any(p.stem.endswith("-run2") for p in HISTORIES), "a history that continued as new"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
def test_committed_history_replays_on_the_current_workflow(loop: LoopThread, path: Path) -> None:
    replayer = Replayer(workflows=ALL_WORKFLOWS)
    result = loop.run(replayer.replay_workflow(load(path), raise_on_replay_failure=False))
    assert result.replay_failure is None, f"{path.name} no longer replays: {result.replay_failure}"


def test_a_run_with_fewer_tasks_sends_each_email_with_its_projection() -> None:
    """As recorded, and as the current code replays it: the first stage's approvers came with the
    input (the two lookups are the second stage's and a delegate's), each email went out from its
    projection's activity, and the one that activity handed back (the decision's, the recorder's
    mail server being away for it) went on its own."""
    history = load(HISTORIES[0].parent / "fewer_tasks-run1.json")
    scheduled = Counter(
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    )
    assert scheduled == {"project_state": 8, "resolve_approvers": 2, "send_notification": 1}


class ProgressEmailWithoutPatch(Review):
    """The progress email as a careless change would add it: without `workflow.patched`.

    (The patched branch stays silent here: the recorded history has no marker.)"""

    def stage_approved(self, decided: Decided, *, automatic: bool = False) -> None:
        super().stage_approved(decided, automatic=automatic)
        if self.state.status == RequestStatus.IN_REVIEW:
            self.notify(NotificationKind.PROGRESS, [self.state.requester_id], self.state.timeline[-1])


@workflow.defn(name="ApprovalWorkflow", sandboxed=False)
class CarelessWorkflow(ApprovalWorkflow):
    @workflow.init
    def __init__(self, input: ApprovalInput) -> None:
        super().__init__(input)
        self.review.__class__ = ProgressEmailWithoutPatch

    @workflow.run
    async def run(self, input: ApprovalInput) -> RequestState:
        return await super().run(input)


def test_an_unguarded_change_to_the_workflow_is_caught_by_replay(loop: LoopThread) -> None:
    history = load(Path(__file__).parent / "histories" / "approved_in_two_stages-run1.json")
    replayer = Replayer(workflows=[CarelessWorkflow], workflow_runner=UnsandboxedWorkflowRunner())
    result = loop.run(replayer.replay_workflow(history, raise_on_replay_failure=False))
    assert isinstance(result.replay_failure, NondeterminismError), result.replay_failure


def test_the_worker_runs_the_workflow_in_the_sandbox(loop: LoopThread, time_skipping_env: Any) -> None:
    """The sandbox catches non-deterministic calls (the clock, random, I/O) as they happen: it
    stays on for the workflow, as in production, and with it for the replays above."""
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    from approvals.worker import build_worker

    async def runner() -> object:  # a Worker is built on the loop that would run it
        with concurrent.futures.ThreadPoolExecutor(1) as executor:
            worker = build_worker(time_skipping_env.client, executor, task_queue="sandbox-check")
            return worker.config()["workflow_runner"]

    assert isinstance(loop.run(runner()), SandboxedWorkflowRunner)
    definition = getattr(ApprovalWorkflow, "__temporal_workflow_definition")
    assert definition.sandboxed


def test_a_rolled_back_saga_undid_its_steps_last_first_retrying_the_failing_undo() -> None:
    """As recorded: the order refused, its cancel (registered before it ran) failed twice and
    succeeded on its third attempt, then the reservation was released: last in, first out."""
    history = load(HISTORIES[0].parent / "fulfilment_rolled_back-run1.json")
    steps = [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
        and event.activity_task_scheduled_event_attributes.activity_type.name != "record_fulfilment"
    ]
    assert steps == ["reserve_budget", "place_purchase_order", "cancel_purchase_order", "release_budget"]
    attempts = [
        event.activity_task_started_event_attributes.attempt
        for event in history.events
        if event.HasField("activity_task_started_event_attributes")
    ]
    assert 3 in attempts
