"""A request's fulfilment: start an attempt at it (staff retrying one that was rolled back; the
first attempt is started by the request's approval workflow)."""

from __future__ import annotations

from django.conf import settings

from approvals.client.connection import start_once
from workflows.fulfilment import FulfilmentWorkflow
from workflows.types import FulfilmentInput, fulfilment_id_for


def start_fulfilment(workflow_input: FulfilmentInput) -> bool:
    """Start this attempt at the request's fulfilment; False when it was started already."""
    return start_once(
        FulfilmentWorkflow.run,
        workflow_input,
        id=fulfilment_id_for(workflow_input.request_id, workflow_input.attempt),
        task_queue=settings.TEMPORAL_TASK_QUEUE,
    )
