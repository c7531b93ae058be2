"""The embedded default's Temporal keeps its state in a file: stop it, start it, nothing is lost."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from temporalio.testing import WorkflowEnvironment

from approvals.models import ApprovalRequest, OutboundEmail, RequestStatus, RequestType
from approvals.services import approval_input_for
from tests.conftest import LoopThread, RunningWorker, binary, free_port, make_request, wait_until
from workflows.approval import ApprovalWorkflow

pytestmark = pytest.mark.temporal_server


def start_server(loop: LoopThread, db_file: Path, port: int) -> WorkflowEnvironment:
    return loop.run(
        WorkflowEnvironment.start_local(
            dev_server_existing_path=binary("temporal"),
            dev_server_database_filename=str(db_file),
            port=port,
            ui=False,
            dev_server_log_level="error",
        )
    )


def test_in_flight_request_survives_a_server_restart_and_its_deadline_still_fires(
    loop: LoopThread, tmp_path: Path, people: dict[str, User], purchase: RequestType
) -> None:
    purchase.stages.update(deadline=timedelta(seconds=6))
    request = make_request(people, purchase, started=True)
    db_file, port, queue = tmp_path / "temporal.sqlite", free_port(), "persistence-test"

    env = start_server(loop, db_file, port)
    worker = RunningWorker(loop, env.client, task_queue=queue)
    loop.run(
        env.client.start_workflow(
            ApprovalWorkflow.run, approval_input_for(request), id=request.workflow_id, task_queue=queue
        )
    )
    wait_until(
        lambda: ApprovalRequest.objects.get(pk=request.pk).status == RequestStatus.IN_REVIEW, what="review"
    )
    worker.stop()
    loop.run(env.shutdown())  # the server process is gone, its timer not yet fired

    env = start_server(loop, db_file, port)
    worker = RunningWorker(loop, env.client, task_queue=queue)
    try:
        handle = env.client.get_workflow_handle(request.workflow_id)
        assert loop.run(handle.query(ApprovalWorkflow.state)).status.value == "in_review"
        wait_until(
            lambda: request.events.filter(kind="escalated").exists(),
            timeout=30,
            what="the deadline timer to fire after the restart",
        )
        assert request.participants.get(user=people["manager"]).pending
        escalations = OutboundEmail.objects.filter(kind="escalated", to="manager@example.com", status="sent")
        wait_until(escalations.exists, what="the escalation email")
        assert escalations.count() == 1
        assert OutboundEmail.objects.filter(kind="assigned").count() == 2  # none sent twice
    finally:
        worker.stop()
        loop.run(env.shutdown())
