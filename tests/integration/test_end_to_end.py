"""From the Django views to a real `temporal server start-dev` and back to the database."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import override_settings
from django.urls import reverse
from temporalio.client import Client as TemporalClient
from temporalio.client import WorkflowExecutionStatus

from approvals import client as temporal_client
from approvals import services
from approvals.models import ApprovalRequest, OutboundEmail, RequestStatus, RequestType
from approvals.worker import relay_outbox
from tests.conftest import LoopThread, as_user, free_port, wait_until
from workflows.approval import ApprovalWorkflow

pytestmark = pytest.mark.temporal_server
HTMX = {"HTTP_HX_REQUEST": "true"}


def test_submit_review_approve_and_see_the_outcome(
    loop: LoopThread, use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    requester = as_user(people["requester"])
    response = requester.post(
        reverse("request_create"),
        {
            "submission_id": uuid.uuid4(),
            "request_type": purchase.pk,
            "title": "Conference ticket",
            "amount": "800",
        },
        follow=True,
    )
    assert "submitted and waiting for review" in response.content.decode()
    request = ApprovalRequest.objects.get()
    assert request.workflow_started_at is not None
    description = loop.run(use_dev_server.get_workflow_handle(request.workflow_id).describe())
    assert description.status == WorkflowExecutionStatus.RUNNING

    # The worker's activity projects "in review" into the read model and emails both reviewers.
    wait_until(
        lambda: ApprovalRequest.objects.get(pk=request.pk).status == RequestStatus.IN_REVIEW, what="in review"
    )
    wait_until(
        lambda: OutboundEmail.objects.filter(kind="assigned", status="sent").count() == 2, what="emails"
    )

    reviewer = as_user(people["reviewer1"])
    inbox = reviewer.get(reverse("inbox")).content.decode()
    assert f'id="request-{request.public_id}"' in inbox

    row = reviewer.post(
        reverse("request_act", args=[request.public_id]),
        {"kind": "approve", "comment": "Enjoy the talks", "action_id": uuid.uuid4()},
        HTTP_HX_CURRENT_URL="http://testserver/inbox/",
        **HTMX,
    )
    assert row.status_code == 200
    fragment = row.content.decode()
    assert "<html" not in fragment
    assert fragment.strip().startswith(f'<tr id="request-{request.public_id}"')
    # The update answers once the read model shows it: the row is drawn from there, settled.
    assert 'class="badge approved">Approved<' in fragment and "by reviewer1" in fragment
    assert "Stage “Review” is approved." in fragment

    wait_until(
        lambda: ApprovalRequest.objects.get(pk=request.pk).status == RequestStatus.APPROVED, what="approved"
    )
    request.refresh_from_db()
    assert (request.decided_by, request.decision_comment) == (people["reviewer1"], "Enjoy the talks")
    kinds = list(request.events.values_list("kind", flat=True))
    assert kinds == ["submitted", "stage_started", "approval", "stage_approved", "approved"]
    wait_until(
        lambda: OutboundEmail.objects.filter(kind="decided", status="sent").exists(), what="decision email"
    )
    assert [m.to for m in mail.outbox if "was approved" in m.subject] == [["requester@example.com"]]

    page = requester.get(request.get_absolute_url()).content.decode()
    assert "Approved by reviewer1" in page
    assert "Enjoy the talks" in page
    home = requester.get(reverse("home")).content.decode()
    assert "Conference ticket" in home and "Approved" in home

    # The same reviewer, or the other one, deciding again is told it is already decided.
    again = as_user(people["reviewer2"]).post(
        reverse("request_act", args=[request.public_id]),
        {"kind": "reject", "comment": "no", "action_id": uuid.uuid4()},
        **HTMX,
    )
    assert again.status_code == 409
    assert "already approved by reviewer1" in again.content.decode()


def test_request_page_shows_the_state_its_workflow_projected(
    loop: LoopThread, use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    request = services.request_submit(requester=people["requester"], request_type=purchase, title="Monitor")
    wait_until(lambda: request.participants.filter(pending=True).count() == 2, what="the stage's approvers")
    state = temporal_client.query_state(request.public_id)
    assert state.status.value == "in_review"
    assert sorted(a.user_id for a in state.pending()) == sorted(
        [people["reviewer1"].pk, people["reviewer2"].pk]
    )

    # The page draws the same facts from the read model, without asking Temporal.
    temporal_client.reset()
    with override_settings(TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}"):
        fragment = as_user(people["requester"]).get(request.get_absolute_url(), **HTMX).content.decode()
    temporal_client.reset()
    assert 'data-testid="live-status">In review</span>' in fragment
    assert "Deadline:" in fragment
    assert 'data-testid="approvals">Approvals: 0 of 1<' in fragment
    assert "Waiting for" in fragment and "reviewer1" in fragment and "reviewer2" in fragment


def test_request_saved_while_temporal_was_down_starts_by_itself_when_it_is_back(
    loop: LoopThread,
    settings: Any,
    use_dev_server: TemporalClient,
    temporal_unreachable: str,
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    response = as_user(people["requester"]).post(
        reverse("request_create"),
        {"submission_id": uuid.uuid4(), "request_type": purchase.pk, "title": "Headset"},
        follow=True,
    )
    assert "as soon as it is back" in response.content.decode()
    request = ApprovalRequest.objects.get()
    assert request.workflow_started_at is None

    # Temporal comes back: the worker process's outbox relay starts the workflow, nobody acts.
    settings.TEMPORAL_ADDRESS = use_dev_server.service_client.config.target_host
    temporal_client.reset()
    stop = asyncio.Event()
    relay = asyncio.run_coroutine_threadsafe(relay_outbox(stop, interval=0.2), loop.loop)
    try:
        wait_until(
            lambda: ApprovalRequest.objects.get(pk=request.pk).workflow_started_at, what="outbox start"
        )
        wait_until(
            lambda: ApprovalRequest.objects.get(pk=request.pk).status == RequestStatus.IN_REVIEW,
            what="review",
        )
    finally:
        loop.loop.call_soon_threadsafe(stop.set)
        relay.result(10)
    handle = use_dev_server.get_workflow_handle(request.workflow_id)
    assert loop.run(handle.query(ApprovalWorkflow.state)).status.value == "in_review"
    # Starting again (a second relay, a double submit) finds the running workflow and starts no other.
    assert services.request_start_workflow(public_id=request.public_id) is True
    ApprovalRequest.objects.filter(pk=request.pk).update(workflow_started_at=None)
    assert services.request_start_workflow(public_id=request.public_id) is True
    runs = wait_until(lambda: loop.run(_count_runs(use_dev_server, request.workflow_id)), what="visibility")
    assert runs == 1


async def _count_runs(client: TemporalClient, workflow_id: str) -> int:
    return len([w async for w in client.list_workflows(f'WorkflowId = "{workflow_id}"')])
