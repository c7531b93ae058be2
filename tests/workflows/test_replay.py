"""Histories of released workflow versions still replay on the current code (determinism)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.workflow import NondeterminismError

from tests.conftest import LoopThread
from workflows.approval import ApprovalWorkflow
from workflows.types import ApprovalInput, Decided, NotificationKind, RequestState, RequestStatus

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"approval-{path.stem}", path.read_text())


def test_released_histories_are_committed() -> None:
    names = {p.stem.rsplit("-run", 1)[0] for p in HISTORIES}
    assert {
        "approved_in_two_stages",
        "escalated_then_expired",
        "changes_then_resubmitted",
        "withdrawn",
    } <= names
    assert any(p.stem.endswith("-run2") for p in HISTORIES), "a history that continued as new"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
def test_committed_history_replays_on_the_current_workflow(loop: LoopThread, path: Path) -> None:
    result = loop.run(
        Replayer(workflows=[ApprovalWorkflow]).replay_workflow(load(path), raise_on_replay_failure=False)
    )
    assert result.replay_failure is None, f"{path.name} no longer replays: {result.replay_failure}"


@workflow.defn(name="ApprovalWorkflow", sandboxed=False)
class ProgressEmailWithoutPatch(ApprovalWorkflow):
    """The progress email as a careless change would add it: without `workflow.patched`.

    (The inherited, patched branch stays silent here: the recorded history has no marker.)
    """

    @workflow.run
    async def run(self, input: ApprovalInput) -> RequestState:
        return await super().run(input)

    def _stage_approved(self, decided: Decided, automatic: bool = False) -> None:
        super()._stage_approved(decided, automatic)
        if self.s.status == RequestStatus.IN_REVIEW:
            self._notify(NotificationKind.PROGRESS, [self.s.requester_id], self.s.timeline[-1])


def test_an_unguarded_change_to_the_workflow_is_caught_by_replay(loop: LoopThread) -> None:
    history = load(Path(__file__).parent / "histories" / "approved_in_two_stages-run1.json")
    replayer = Replayer(workflows=[ProgressEmailWithoutPatch], workflow_runner=UnsandboxedWorkflowRunner())
    result = loop.run(replayer.replay_workflow(history, raise_on_replay_failure=False))
    assert isinstance(result.replay_failure, NondeterminismError), result.replay_failure
