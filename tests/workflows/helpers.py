"""Helpers for workflow tests on the time-skipping server: start a request's workflow, act on it."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateHandle,
    WorkflowUpdateStage,
)
from temporalio.testing import WorkflowEnvironment

from approvals.models import ApprovalRequest
from approvals.services import approval_input_for
from tests.conftest import LoopThread, wait_until
from workflows.approval import ApprovalWorkflow
from workflows.types import (
    INTERACTIVE_TASK_QUEUE,
    Action,
    ActionKind,
    ActionResult,
    ApprovalInput,
    Policy,
    RequestState,
)

# Every workflow `start` started in the current test, for the `ts_cleanup` fixture to stop.
STARTED: list[WorkflowHandle[Any, Any]] = []


def start(
    env: WorkflowEnvironment,
    loop: LoopThread,
    request: ApprovalRequest,
    *,
    policy: Policy | None = None,
    wait: bool = True,
    **overrides: Any,
) -> WorkflowHandle[Any, Any]:
    """Start the request's workflow (`policy` replaces the request type's snapshot) and, with
    `wait`, return once its first stage has its approvers."""
    workflow_input: ApprovalInput = approval_input_for(request, policy=policy)
    for name, value in overrides.items():
        setattr(workflow_input, name, value)
    handle = loop.run(
        env.client.start_workflow(
            ApprovalWorkflow.run, workflow_input, id=request.workflow_id, task_queue=INTERACTIVE_TASK_QUEUE
        )
    )
    STARTED.append(handle)
    if wait:
        wait_until(lambda: assigned(loop, handle), what="the first stage's approvers to be assigned")
    return handle


def assigned(loop: LoopThread, handle: WorkflowHandle[Any, Any]) -> bool:
    """The current stage has its approvers (or the request is already over)."""
    now = state(loop, handle)
    return now.stage is None or now.stage.assigned


def action(kind: ActionKind, user: User, comment: str = "", **fields: Any) -> Action:
    return Action(
        kind=kind,
        actor_id=user.pk,
        actor_name=user.username,
        comment=comment,
        action_id=str(uuid.uuid4()),
        **fields,
    )


def act(loop: LoopThread, handle: WorkflowHandle[Any, Any], act_: Action) -> ActionResult:
    """Send an action as a validated update; raises WorkflowUpdateFailedError when refused."""
    return loop.run(handle.execute_update(ApprovalWorkflow.submit_action, act_, id=act_.action_id))


def accepted(
    loop: LoopThread, handle: WorkflowHandle[Any, Any], act_: Action
) -> WorkflowUpdateHandle[ActionResult]:
    """Send an action as a validated update and return once the workflow accepted it (applied
    it), without waiting for the answer, which comes once it is projected."""
    return loop.run(
        handle.start_update(
            ApprovalWorkflow.submit_action,
            act_,
            id=act_.action_id,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )
    )


def answer(loop: LoopThread, update: WorkflowUpdateHandle[ActionResult]) -> ActionResult:
    return loop.run(update.result())


def refused(loop: LoopThread, handle: WorkflowHandle[Any, Any], act_: Action) -> str:
    """Send an action that must be refused; returns the refusal's message."""
    try:
        result = act(loop, handle, act_)
    except WorkflowUpdateFailedError as exc:
        return str(exc.cause.message)  # type: ignore[union-attr]
    raise AssertionError(f"{act_.kind} by {act_.actor_name} was accepted: {result}")


def signal(loop: LoopThread, handle: WorkflowHandle[Any, Any], act_: Action) -> None:
    loop.run(handle.signal(ApprovalWorkflow.act, act_))


def state(loop: LoopThread, handle: WorkflowHandle[Any, Any]) -> RequestState:
    return loop.run(handle.query(ApprovalWorkflow.state))


def sleep(loop: LoopThread, env: WorkflowEnvironment, **duration: float) -> None:
    loop.run(env.sleep(timedelta(**duration)))


def result(loop: LoopThread, handle: WorkflowHandle[Any, Any]) -> RequestState:
    return loop.run(handle.result(), timeout=60)


def pending_names(st: RequestState) -> list[str]:
    return sorted(a.name for a in st.pending())


def history(loop: LoopThread, handle: WorkflowHandle[Any, Any]) -> list[HistoryEvent]:
    """The events of the workflow's current run."""
    return list(loop.run(handle.fetch_history()).events)


CLOSED = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
}


def idle(loop: LoopThread, handle: WorkflowHandle[Any, Any]) -> bool:
    """The current run is closed, or waits with no workflow task and no activity outstanding."""
    events = history(loop, handle)
    if events[-1].event_type in CLOSED:
        return True
    n = Counter(event.event_type for event in events)
    tasks_open = n[EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED] - (
        n[EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED]
        + n[EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
        + n[EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT]
    )
    activities_open = n[EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED] - (
        n[EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED]
        + n[EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED]
        + n[EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT]
        + n[EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED]
    )
    return tasks_open == 0 and activities_open == 0


def wait_idle(loop: LoopThread, handle: WorkflowHandle[Any, Any]) -> None:
    wait_until(lambda: idle(loop, handle), interval=0.02, what="the workflow to finish its activities")


@contextmanager
def ending_started(loop: LoopThread) -> Iterator[None]:
    """Every workflow `start` starts within this ends with it: once none of its activities is in
    flight, it is terminated if it still runs."""
    STARTED.clear()
    try:
        yield
    finally:
        try:
            for handle in STARTED:
                stop_if_running(loop, handle)
        finally:
            STARTED.clear()


def stop_if_running(loop: LoopThread, handle: WorkflowHandle[Any, Any]) -> None:
    """Terminate the workflow if it is still running, once no activity of it is in flight: the
    test server stops skipping time while an activity runs, and an activity of a terminated
    workflow would keep it stopped for the rest of the session."""
    try:
        wait_idle(loop, handle)
    finally:
        if loop.run(handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            loop.run(handle.terminate("test over"))
