"""A request's workflow: start it, send it an action (a signal, or a validated update), ask it."""

from __future__ import annotations

import asyncio
from typing import Any

from django.conf import settings
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from approvals.client.connection import (
    Refused,
    TemporalError,
    Unanswered,
    Unreachable,
    call,
    start_once,
    timeout,
    translated,
)
from workflows.approval import ApprovalWorkflow
from workflows.types import Action, ActionResult, ApprovalInput, RequestState, workflow_id_for


def start_approval(workflow_input: ApprovalInput) -> None:
    """Start the request's workflow; starting one that already started is no error."""
    start_once(
        ApprovalWorkflow.run,
        workflow_input,
        id=workflow_id_for(workflow_input.request_id),
        task_queue=settings.TEMPORAL_TASK_QUEUE,
    )


def send_signal(public_id: object, action: Action) -> None:
    """Send the action as a signal: Temporal keeps it even while no worker runs."""

    async def signal(client: Client) -> None:
        handle = client.get_workflow_handle(workflow_id_for(public_id))
        await handle.signal(ApprovalWorkflow.act, action, rpc_timeout=timeout())

    call(signal)


async def _update(client: Client, public_id: object, action: Action) -> ActionResult:
    handle = client.get_workflow_handle(workflow_id_for(public_id))
    try:
        update = await handle.start_update(
            ApprovalWorkflow.submit_action,
            action,
            id=action.action_id,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            rpc_timeout=timeout(),
        )
    except WorkflowUpdateRPCTimeoutOrCancelledError as exc:
        raise Unanswered(accepted=False) from exc
    try:
        return await update.result(rpc_timeout=timeout())
    except WorkflowUpdateRPCTimeoutOrCancelledError as exc:
        raise Unanswered(accepted=True) from exc
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        raise Refused(cause.message if isinstance(cause, ApplicationError) else str(cause or exc)) from exc


def send_update(public_id: object, action: Action) -> ActionResult:
    """Send the action as a validated update and return the workflow's answer (Refused when the
    workflow refuses it). The answer comes once the read model shows what the action did."""
    return call(lambda client: _update(client, public_id, action), calls=2)


def send_updates(actions: dict[Any, Action], concurrency: int) -> dict[Any, ActionResult | TemporalError]:
    """Send many updates at once (at most `concurrency` at a time), each to its own request's
    workflow: every request gets its own answer or error, and one never stops the others."""

    async def one(client: Client, limit: asyncio.Semaphore, public_id: Any) -> ActionResult | TemporalError:
        async with limit:
            try:
                return await _update(client, public_id, actions[public_id])
            except TemporalError as exc:
                return exc
            except RPCError as exc:
                return translated(exc)

    async def all_of(client: Client) -> list[ActionResult | TemporalError]:
        limit = asyncio.Semaphore(concurrency)
        return await asyncio.gather(*(one(client, limit, public_id) for public_id in actions))

    rounds = 2 * -(-len(actions) // concurrency)
    try:
        answers = call(all_of, calls=rounds)
    except Unreachable as exc:
        answers = [exc] * len(actions)
    return dict(zip(actions, answers, strict=True))


def query_state(public_id: object) -> RequestState:
    """The workflow's own state (for operators and tests; pages read the read model)."""

    async def query(client: Client) -> RequestState:
        handle = client.get_workflow_handle(workflow_id_for(public_id))
        return await handle.query(ApprovalWorkflow.state, rpc_timeout=timeout())

    return call(query)
