"""An access grant's workflow: send it an action (a validated update)."""

from __future__ import annotations

from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.exceptions import ApplicationError

from approvals.client.connection import Refused, Unanswered, call, timeout
from workflows.grant import GrantWorkflow
from workflows.types import GrantAction, grant_id_for


def send_grant_action(public_id: object, action: GrantAction) -> str:
    """Send the action to the grant of this access request; its answer (Refused when refused)."""

    async def update(client: Client) -> str:
        handle = client.get_workflow_handle(grant_id_for(public_id))
        try:
            return await handle.execute_update(
                GrantWorkflow.act, action, id=action.action_id, rpc_timeout=timeout()
            )
        except WorkflowUpdateRPCTimeoutOrCancelledError as exc:
            raise Unanswered(accepted=False) from exc
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            raise Refused(
                cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
            ) from exc

    return call(update, calls=2)
