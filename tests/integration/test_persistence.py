"""The embedded default's Temporal keeps its state in a file: stop it, start it, nothing is lost."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from temporalio.testing import WorkflowEnvironment

from approvals.models import AccessGrant, ApprovalRequest, OutboundEmail, RequestStatus, RequestType, Resource
from approvals.services import approval_input_for
from tests.conftest import (
    LoopThread,
    RunningWorker,
    binary,
    free_port,
    make_access_request,
    make_request,
    wait_until,
)
from workflows.approval import ApprovalWorkflow
from workflows.grant import GrantWorkflow
from workflows.types import GrantInput, grant_id_for

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


def test_an_access_grant_survives_a_server_restart_and_still_ends_on_time(
    loop: LoopThread, tmp_path: Path, people: dict[str, User], access: RequestType, payroll: Resource
) -> None:
    request = make_access_request(people, access, payroll)
    request.access_days = None  # the grant ends when it says, seconds from now
    request.save()
    now = timezone.now()
    grant = AccessGrant.objects.create(
        key=f"{request.public_id}:fulfilment:1:grant",
        request=request,
        holder=people["requester"],
        resource=payroll,
        role="read",
        starts_at=now,
        ends_at=now + timedelta(seconds=8),
    )
    db_file, port, queue = tmp_path / "temporal.sqlite", free_port(), "persistence-grant-test"

    env = start_server(loop, db_file, port)
    worker = RunningWorker(loop, env.client, task_queue=queue)
    workflow_id = grant_id_for(request.public_id)
    loop.run(
        env.client.start_workflow(
            GrantWorkflow.run, GrantInput(str(request.public_id)), id=workflow_id, task_queue=queue
        )
    )
    wait_until(lambda: grant.events.filter(kind="granted").exists(), what="the grant recorded")
    worker.stop()
    loop.run(env.shutdown())  # the server process is gone, the grant's timer not yet fired

    env = start_server(loop, db_file, port)
    worker = RunningWorker(loop, env.client, task_queue=queue)
    try:
        wait_until(
            lambda: grant.events.filter(kind="expired").exists(),
            timeout=30,
            what="the grant's timer to fire after the restart",
        )
        assert list(grant.events.values_list("kind", flat=True)) == ["granted", "expired"]
        assert AccessGrant.objects.get(pk=grant.pk).status == "expired"
        ended = OutboundEmail.objects.filter(kind="access_ended", to="requester@example.com")
        wait_until(ended.exists, what="the email that it ended")
        assert ended.count() == 1
    finally:
        worker.stop()
        loop.run(env.shutdown())
