"""Webhook deliveries: start a round of one (the worker's relay does, once it is recorded)."""

from __future__ import annotations

from django.conf import settings
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from approvals.client.connection import call, timeout
from workflows.types import WebhookDeliveryInput, webhook_id_for
from workflows.webhook import WebhookDeliveryWorkflow


def start_webhook_delivery(delivery: WebhookDeliveryInput) -> bool:
    """Start this round of the delivery; False when it was started already (by this relay
    before it could note so, or by another)."""

    async def start(client: Client) -> bool:
        try:
            await client.start_workflow(
                WebhookDeliveryWorkflow.run,
                delivery,
                id=webhook_id_for(delivery.delivery_id, delivery.round),
                task_queue=settings.TEMPORAL_WEBHOOK_TASK_QUEUE,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                rpc_timeout=timeout(),
            )
        except WorkflowAlreadyStartedError:
            return False
        return True

    return call(start)
