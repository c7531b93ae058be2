"""Runs of the approval workflows as Temporal sees them: describe, list, why one stopped, and
reset a stopped one to retry it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import (
    GetWorkflowExecutionHistoryReverseRequest,
    ResetWorkflowExecutionRequest,
)
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from approvals.client.connection import NoWorkflow, call, timeout
from workflows.types import public_id_of, workflow_id_for


class RunStatus(StrEnum):
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"
    TERMINATED = "Terminated"
    CONTINUED_AS_NEW = "ContinuedAsNew"
    TIMED_OUT = "TimedOut"

    @property
    def stopped(self) -> bool:
        """Closed for good without finishing: only staff can get it going again."""
        return self in (RunStatus.FAILED, RunStatus.CANCELED, RunStatus.TERMINATED, RunStatus.TIMED_OUT)


STATUSES = {
    WorkflowExecutionStatus.RUNNING: RunStatus.RUNNING,
    WorkflowExecutionStatus.COMPLETED: RunStatus.COMPLETED,
    WorkflowExecutionStatus.FAILED: RunStatus.FAILED,
    WorkflowExecutionStatus.CANCELED: RunStatus.CANCELED,
    WorkflowExecutionStatus.TERMINATED: RunStatus.TERMINATED,
    WorkflowExecutionStatus.CONTINUED_AS_NEW: RunStatus.CONTINUED_AS_NEW,
    WorkflowExecutionStatus.TIMED_OUT: RunStatus.TIMED_OUT,
}


@dataclass
class Run:
    """The latest run of a request's workflow, as Temporal describes it."""

    status: RunStatus
    run_id: str
    problems: list[str] = field(default_factory=list)  # why a running one is not moving


def describe(public_id: object) -> Run | None:
    """The latest run of the request's workflow; None when Temporal has no such workflow."""

    async def run(client: Client) -> WorkflowExecutionDescription:
        return await client.get_workflow_handle(workflow_id_for(public_id)).describe(rpc_timeout=timeout())

    try:
        description = call(run)
    except NoWorkflow:
        return None
    return _run(description)


def describe_all(public_ids: Sequence[Any]) -> dict[Any, Run | None]:
    """`describe` for each of these requests, in one round of calls."""

    async def all_of(client: Client) -> dict[Any, Run | None]:
        found: dict[Any, Run | None] = {}
        for public_id in public_ids:
            handle = client.get_workflow_handle(workflow_id_for(public_id))
            try:
                description = await handle.describe(rpc_timeout=timeout())
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
                found[public_id] = None
                continue
            found[public_id] = _run(description)
        return found

    return call(all_of, calls=len(public_ids))


def _run(description: WorkflowExecutionDescription) -> Run:
    status = STATUSES[description.status] if description.status is not None else RunStatus.RUNNING
    return Run(status, description.run_id, _problems(description))


def _problems(description: WorkflowExecutionDescription) -> list[str]:
    """Why a running workflow is not moving, from Temporal's description of it."""
    raw = description.raw_description
    problems = []
    task = raw.pending_workflow_task
    if task.attempt > 1:
        problems.append(f"Its workflow task has failed {task.attempt - 1} time(s) in a row.")
    for pending in raw.pending_activities:
        if pending.attempt > 1 or pending.HasField("last_failure"):
            error = pending.last_failure.message if pending.HasField("last_failure") else ""
            problems.append(
                f"Activity {pending.activity_type.name} is on attempt {pending.attempt}"
                + (f": {error}" if error else ".")
            )
    return problems


@dataclass(frozen=True)
class CloseReason:
    """Why a run closed badly, as its last event says."""

    how: str  # "failed", "terminated", "timed out", "canceled in Temporal"
    why: str = ""  # the failure's message, or the reason the operator gave
    by: str = ""  # who terminated it (the client's identity)

    def __str__(self) -> str:
        """In full, for staff: "Terminated: bad deploy (by ops@host)"."""
        if not (self.why or self.by):
            return f"{self.how.capitalize()}."
        return f"{self.how.capitalize()}: {self.why or 'no reason given'}" + (
            f" (by {self.by})" if self.by else ""
        )

    @property
    def plain(self) -> str:
        """For everyone: "terminated: bad deploy"."""
        return self.how + (f": {self.why}" if self.why else "")


def close_reasons(runs: Mapping[Any, str]) -> dict[Any, CloseReason | None]:
    """Why each of these runs (request's public id → run id) closed badly: its failure, or who
    terminated it; None when the history does not say."""

    async def all_of(client: Client) -> dict[Any, CloseReason | None]:
        return {
            public_id: await _close_reason(client, public_id, run_id) for public_id, run_id in runs.items()
        }

    return call(all_of, calls=len(runs))


async def _close_reason(client: Client, public_id: object, run_id: str) -> CloseReason | None:
    response = await client.workflow_service.get_workflow_execution_history_reverse(
        GetWorkflowExecutionHistoryReverseRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(workflow_id=workflow_id_for(public_id), run_id=run_id),
            maximum_page_size=1,
        ),
        timeout=timeout(),
    )
    if not response.history.events:
        return None
    event = response.history.events[0]
    if event.HasField("workflow_execution_failed_event_attributes"):
        failure = event.workflow_execution_failed_event_attributes.failure
        cause = failure.cause.message if failure.HasField("cause") else ""
        detail = f" ({cause})" if cause and cause != failure.message else ""
        return CloseReason("failed", failure.message + detail)
    if event.HasField("workflow_execution_terminated_event_attributes"):
        attributes = event.workflow_execution_terminated_event_attributes
        return CloseReason("terminated", attributes.reason, attributes.identity)
    if event.HasField("workflow_execution_timed_out_event_attributes"):
        return CloseReason("timed out")
    if event.HasField("workflow_execution_canceled_event_attributes"):
        return CloseReason("canceled in Temporal")
    return None


# Visibility queries for runs that need a person.
APPROVALS = 'WorkflowType = "ApprovalWorkflow"'
FAILING_QUERY = f'{APPROVALS} AND ExecutionStatus = "Running" AND TemporalReportedProblems IS NOT NULL'
STOPPED_QUERY = f'{APPROVALS} AND ExecutionStatus IN ("Failed", "Terminated", "TimedOut", "Canceled")'
RUNNING_QUERY = f'{APPROVALS} AND ExecutionStatus = "Running"'


def listed(query: str, *, limit: int) -> list[str]:
    """The public ids of the requests whose workflow runs match a visibility query (one entry
    per request, however many of its runs match)."""

    async def run(client: Client) -> list[str]:
        found: dict[str, None] = {}
        async for execution in client.list_workflows(query, limit=limit, rpc_timeout=timeout()):
            if (public_id := public_id_of(execution.id)) is not None:
                found.setdefault(public_id)
        return list(found)

    return call(run, calls=2)


def retry_stopped(public_id: object, run_id: str, reason: str) -> str:
    """Reset a stopped run to just before the step that stopped it, so that step runs again with
    the code and data as they are now (and actions sent since are applied again); returns the
    new run's id. ValueError when the run cannot be reset."""

    async def reset_run(client: Client) -> str:
        workflow_id = workflow_id_for(public_id)
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
        events = [event async for event in handle.fetch_history_events()]
        response = await client.workflow_service.reset_workflow_execution(
            ResetWorkflowExecutionRequest(
                namespace=client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
                reason=reason,
                workflow_task_finish_event_id=reset_point(events),
                request_id=str(uuid.uuid4()),
            ),
            timeout=timeout(),
        )
        return response.run_id

    return call(reset_run, calls=3)


def reset_point(events: list[HistoryEvent]) -> int:
    """Where to resume a stopped run: the workflow task that scheduled the last activity that
    failed (so that the activity runs again), else the last completed workflow task."""
    by_id = {event.event_id: event for event in events}
    for event in reversed(events):
        if event.event_type in (
            EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
            EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
        ):
            attributes = (
                event.activity_task_failed_event_attributes
                if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
                else event.activity_task_timed_out_event_attributes
            )
            scheduled = by_id[attributes.scheduled_event_id]
            return scheduled.activity_task_scheduled_event_attributes.workflow_task_completed_event_id
    for event in reversed(events):
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            return event.event_id
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            return event.event_id
    raise ValueError("the run never started a workflow task")


def histories(public_id: object) -> list[dict[str, Any]]:
    """Every run of the request's workflow, oldest first, each with its whole event history as
    Temporal's JSON (the form `temporal workflow show --output json` prints). Runs are followed
    back from the latest through each one's "continued from" run, so none is missed however long
    visibility takes to list it."""
    workflow_id = workflow_id_for(public_id)

    async def run(client: Client) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        run_id: str | None = None
        while True:
            handle = client.get_workflow_handle(workflow_id, run_id=run_id)
            try:
                history = await handle.fetch_history(rpc_timeout=timeout())
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND and not found:
                    raise NoWorkflow(f"Temporal has no workflow {workflow_id}") from exc
                raise
            started = history.events[0].workflow_execution_started_event_attributes
            found.append({"run_id": history.run_id, "history": history.to_json_dict()})
            run_id = started.continued_execution_run_id
            if not run_id:
                return found[::-1]

    return call(run, calls=2 + 2 * 50)
