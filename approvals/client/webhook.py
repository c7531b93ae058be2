"""Webhook deliveries: start a round of one (the worker's relay does, once it is recorded)."""

from __future__ import annotations

from django.conf import settings

from approvals.client.connection import start_once
from workflows.types import WebhookDeliveryInput
from workflows.webhook import WebhookDeliveryWorkflow


def start_webhook_delivery(delivery: WebhookDeliveryInput, workflow_id: str) -> bool:
    """Start this round of the delivery under its id (WebhookDelivery.workflow_id); False when
    it was started already (by this relay before it could note so, or by another)."""
    return start_once(
        WebhookDeliveryWorkflow.run,
        delivery,
        id=workflow_id,
        task_queue=settings.TEMPORAL_WEBHOOK_TASK_QUEUE,
    )
