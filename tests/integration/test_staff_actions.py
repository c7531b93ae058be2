"""Workflows in trouble, on a real Temporal dev server: listed on the staff dashboard with why and
a link to Temporal's UI, then cancelled or retried from there, each with an audit entry."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client as TemporalClient
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from approvals import activities, services
from approvals import client as temporal_client
from approvals.activities import ACTIVITIES
from approvals.models import ApprovalRequest, RequestEvent, RequestStatus, RequestType, StaffAction
from tests.conftest import LoopThread, RunningWorker, as_user, make_request, wait_until
from tests.workflows.test_engine import activities_held
from workflows.approval import ApprovalWorkflow
from workflows.types import ActionKind, ApprovalInput, Projection, RequestState

pytestmark = pytest.mark.temporal_server
HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "troubles"}


def troubles(people: dict[str, User]) -> str:
    response = as_user(people["admin"]).get(reverse("dashboard_workflows"), **HTMX)
    assert response.status_code == 200
    return response.content.decode()


def post(people: dict[str, User], name: str, request: ApprovalRequest, **data: str) -> str:
    url = reverse(name, args=[request.public_id])
    return as_user(people["admin"]).post(url, data, **HTMX).content.decode()


def status_of(request: ApprovalRequest) -> str:
    return ApprovalRequest.objects.get(pk=request.pk).status


def run_status(loop: LoopThread, client: TemporalClient, request: ApprovalRequest) -> WorkflowExecutionStatus:
    return loop.run(client.get_workflow_handle(request.workflow_id).describe()).status


def submitted(people: dict[str, User], request_type: RequestType, title: str = "Laptop") -> ApprovalRequest:
    return services.request_submit(requester=people["requester"], request_type=request_type, title=title)


def test_staff_cancel_a_running_request_with_a_reason_everyone_is_told(
    use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    request = submitted(people, purchase)
    wait_until(lambda: status_of(request) == RequestStatus.IN_REVIEW, what="review")
    url = reverse("dashboard_cancel", args=[request.public_id])

    # Not staff: nothing happens. No reason: refused, and said why.
    assert as_user(people["reviewer1"]).post(url, {"reason": "No"}).status_code == 403
    assert "Say why the request is cancelled" in post(people, "dashboard_cancel", request, reason="  ")
    # Nor can anyone cancel through the ordinary action form.
    action = {"kind": "cancel", "comment": "Mine", "action_id": uuid.uuid4()}
    assert (
        as_user(people["requester"])
        .post(reverse("request_act", args=[request.public_id]), action)
        .status_code
        == 400
    )
    assert status_of(request) == RequestStatus.IN_REVIEW
    # The refused attempt without a reason is on record; the others were not staff's.
    assert list(StaffAction.objects.values_list("kind", "ok")) == [("cancel", False)]

    page = post(people, "dashboard_cancel", request, reason="Duplicate of the March order")
    assert "“Laptop”: The request is cancelled." in page
    wait_until(lambda: status_of(request) == RequestStatus.CANCELLED, what="cancelled")
    event = RequestEvent.objects.get(request=request, kind="cancelled")
    assert (event.actor, event.comment) == (people["admin"], "Duplicate of the March order")
    wait_until(lambda: len([m for m in mail.outbox if m.subject == "Cancelled: Laptop"]) == 3, what="emails")
    told = sorted(m.to[0] for m in mail.outbox if m.subject == "Cancelled: Laptop")
    assert told == ["requester@example.com", "reviewer1@example.com", "reviewer2@example.com"]
    assert "Duplicate of the March order" in next(
        m.body for m in mail.outbox if m.subject.startswith("Cancelled")
    )
    record = StaffAction.objects.get(ok=True)
    assert (record.kind, record.ok, record.actor, record.workflow_status) == (
        "cancel",
        True,
        people["admin"],
        "Running",
    )
    assert record.reason == "Duplicate of the March order" and record.run_id

    again = post(people, "dashboard_cancel", request, reason="Twice")
    assert "This request is already cancelled by admin at " in again
    assert list(StaffAction.objects.order_by("pk").values_list("ok", flat=True)) == [False, True, False]


def test_a_request_never_started_is_listed_and_retry_starts_it_once_temporal_is_back(
    settings: Any,
    use_dev_server: TemporalClient,
    temporal_unreachable: str,
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    request = submitted(people, purchase, "Standing desk")
    assert ApprovalRequest.objects.get(pk=request.pk).workflow_started_at is None
    ApprovalRequest.objects.filter(pk=request.pk).update(created_at=timezone.now() - timedelta(minutes=5))

    page = troubles(people)
    assert "Never started: Temporal could not be reached" in page
    assert "Temporal could not be reached, so only what the database shows is listed." in page
    assert "Retry" in page and "Open in Temporal" not in page  # no run to link to yet
    refused = post(people, "dashboard_retry", request)
    assert "Temporal still cannot be reached" in refused

    settings.TEMPORAL_ADDRESS = use_dev_server.service_client.config.target_host
    temporal_client.reset()
    assert "“Standing desk”: The workflow is started." in post(people, "dashboard_retry", request)
    wait_until(lambda: status_of(request) == RequestStatus.IN_REVIEW, what="review")
    assert "Every workflow is doing what it should." in troubles(people)
    outcomes = list(StaffAction.objects.order_by("created_at").values_list("kind", "ok"))
    assert outcomes == [("retry", False), ("retry", True)]


def test_a_request_temporal_refuses_to_start_is_told_as_such_and_the_outbox_goes_on(
    settings: Any, use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    # Saved before details had a limit: 2.5 MB, more than Temporal takes in one payload. The
    # outbox retried it every few seconds forever, and told its requester Temporal was away.
    huge = make_request(people, purchase, title="Time off")
    ApprovalRequest.objects.filter(pk=huge.pk).update(details="x" * 2_500_000)
    later = make_request(people, purchase, title="Monitor")

    assert services.requests_start_pending() == 1  # the other one starts; the relay goes on
    huge.refresh_from_db()
    assert huge.workflow_started_at is None
    assert huge.workflow_stopped.startswith("Temporal refused to start it:")
    assert "exceeds" in huge.workflow_stopped or "size" in huge.workflow_stopped
    assert services.requests_start_pending() == 0  # and it is not tried again and again
    wait_until(lambda: status_of(later) == RequestStatus.IN_REVIEW, what="the other request's review")

    page = as_user(people["requester"]).get(huge.get_absolute_url()).content.decode()
    assert "Its review could not start (Temporal refused to start it:" in page
    assert "workflow service is back" not in page and "not reachable" not in page
    assert "Never started: Temporal refused it" in troubles(people)
    assert "Temporal refused to start it" in post(people, "dashboard_retry", huge)
    cancelled = post(people, "dashboard_cancel", huge, reason="Too large to review; please resubmit")
    assert "The request is cancelled." in cancelled
    assert status_of(huge) == RequestStatus.CANCELLED


# A bug shipped in the projection: it fails for good (not retryable), so the workflow fails.
projection_broken = threading.Event()


@activity.defn(name="project_state")
async def project_state_with_a_bug(projection: Projection) -> None:
    if projection_broken.is_set():
        raise ApplicationError(
            "relation approvals_stagerun does not exist", type="ProgrammingError", non_retryable=True
        )
    await activities.project_state(projection)


def test_a_failed_workflow_is_listed_with_its_error_and_retry_resumes_it_where_it_stopped(
    loop: LoopThread,
    settings: Any,
    use_dev_server: TemporalClient,
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    queue = f"buggy-{uuid.uuid4()}"
    settings.TEMPORAL_TASK_QUEUE = queue
    activities_with_bug = [a for a in ACTIVITIES if a is not activities.project_state] + [
        project_state_with_a_bug
    ]
    worker = RunningWorker(loop, use_dev_server, task_queue=queue, activities=activities_with_bug)
    projection_broken.set()
    try:
        request = submitted(people, purchase, "Monitor arm")
        wait_until(
            lambda: run_status(loop, use_dev_server, request) == WorkflowExecutionStatus.FAILED,
            what="failure",
        )
        assert status_of(request) == RequestStatus.SUBMITTED  # nothing was projected

        page = troubles(people)
        assert "Its workflow stopped" in page and "relation approvals_stagerun does not exist" in page
        failed_run = loop.run(use_dev_server.get_workflow_handle(request.workflow_id).describe()).run_id
        link = (
            f"http://127.0.0.1:8233/namespaces/default/workflows/{request.workflow_id}/{failed_run}/history"
        )
        settings.TEMPORAL_UI_URL = "http://127.0.0.1:8233"
        assert f'href="{link}"' in troubles(people)

        projection_broken.clear()  # the fix is deployed
        page = post(people, "dashboard_retry", request)
        assert "“Monitor arm”: The workflow resumes from before the step that stopped it (failed)." in page
        wait_until(lambda: status_of(request) == RequestStatus.IN_REVIEW, what="the projection, retried")
        # Resumed, not restarted: one submission, one stage start, and the approvers asked once.
        kinds = list(RequestEvent.objects.filter(request=request).values_list("kind", flat=True))
        assert kinds == ["submitted", "stage_started"]
        wait_until(lambda: len([m for m in mail.outbox if "Please review" in m.subject]) == 2, what="emails")
        record = StaffAction.objects.get()
        assert (record.kind, record.ok, record.workflow_status) == ("retry", True, "Failed")
        assert record.run_id and record.run_id != failed_run
        assert "Every workflow is doing what it should." in troubles(people)

        # The retried run goes on as usual.
        services.request_act(
            request=ApprovalRequest.objects.get(pk=request.pk),
            actor=people["reviewer1"],
            kind=ActionKind.APPROVE,
        )
        wait_until(lambda: status_of(request) == RequestStatus.APPROVED, what="approved")
        assert "already approved; there is nothing to retry" in post(people, "dashboard_retry", request)
    finally:
        projection_broken.clear()
        worker.stop()


@workflow.defn(name="ApprovalWorkflow", sandboxed=False)
class ApprovalWorkflowWithABug(ApprovalWorkflow):
    """A release whose workflow code raises: every workflow task fails, and Temporal retries it."""

    @workflow.run
    async def run(self, input: ApprovalInput) -> RequestState:
        raise RuntimeError("NameError: name 'stage' is not defined")


def test_a_workflow_whose_tasks_keep_failing_is_flagged_then_cancelled_once_stopped(
    loop: LoopThread,
    settings: Any,
    use_dev_server: TemporalClient,
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    queue = f"broken-{uuid.uuid4()}"
    settings.TEMPORAL_TASK_QUEUE = queue
    settings.TEMPORAL_RPC_TIMEOUT = timedelta(seconds=2)

    async def make() -> Worker:
        return Worker(
            use_dev_server,
            task_queue=queue,
            workflows=[ApprovalWorkflowWithABug],
            workflow_runner=UnsandboxedWorkflowRunner(),
        )

    worker = loop.run(make())
    running = asyncio.run_coroutine_threadsafe(worker.run(), loop.loop)
    try:
        request = submitted(people, purchase, "Docking station")
        wait_until(
            lambda: "Keeps failing in Temporal" in troubles(people), timeout=40, interval=1, what="the flag"
        )
        page = troubles(people)
        assert "time(s) in a row" in page and ">Running<" in page

        # It cannot answer, so it cannot cancel itself: staff are told, and it is recorded.
        page = post(people, "dashboard_cancel", request, reason="Broken release")
        assert "its tasks are failing" in page
        assert status_of(request) == RequestStatus.SUBMITTED
        assert list(StaffAction.objects.values_list("kind", "ok", "workflow_status")) == [
            ("cancel", False, "Running")
        ]
    finally:
        loop.run(worker.shutdown())
        running.result(10)

    # An operator terminates it in Temporal; now it has stopped, and the request is closed here.
    loop.run(use_dev_server.get_workflow_handle(request.workflow_id).terminate(reason="bad release"))
    # (Temporal's visibility catches up with the termination within a moment.)
    wait_until(lambda: "Terminated: bad release" in troubles(people), what="the stopped run listed")
    page = troubles(people)
    assert "Its workflow stopped" in page
    page = post(people, "dashboard_cancel", request, reason="Broken release, asked to submit again")
    assert "Its workflow had stopped (Terminated), so it was closed here." in page
    request.refresh_from_db()
    assert (request.status, request.decided_by, request.decision_comment) == (
        RequestStatus.CANCELLED,
        people["admin"],
        "Broken release, asked to submit again",
    )
    assert list(request.events.values_list("kind", flat=True)) == ["submitted", "cancelled"]
    assert [m.to for m in mail.outbox if m.subject == "Cancelled: Docking station"] == [
        ["requester@example.com"]
    ]
    assert StaffAction.objects.filter(ok=True, workflow_status="Terminated").count() == 1
    assert "Every workflow is doing what it should." in troubles(people)


def test_an_operator_cancelling_in_temporal_while_a_projection_runs_ends_the_request_as_cancelled(
    loop: LoopThread, use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    """(On the dev server: the time-skipping test server stops skipping for good when an activity
    it cancelled completes anyway.)"""
    request = submitted(people, purchase, "Webcam")
    wait_until(lambda: status_of(request) == RequestStatus.IN_REVIEW, what="review")
    wait_until(lambda: request.emails.filter(status="sent").count() == 2, what="the review emails")
    request.refresh_from_db()
    handle = use_dev_server.get_workflow_handle(request.workflow_id, result_type=RequestState)

    def scheduled() -> int:
        events = loop.run(handle.fetch_history()).events
        return sum(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED for e in events)

    before = scheduled()
    with activities_held(request):
        services.request_signal(
            request=request,
            actor=people["reviewer1"],
            kind=ActionKind.COMMENT,
            comment="Hmm",
            action_id=uuid.uuid4(),
        )
        wait_until(lambda: scheduled() > before, what="the comment's projection")
        # The comment's projection is under way (held by the row lock) when an operator cancels.
        loop.run(handle.cancel())
        wait_until(
            lambda: any(
                e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED
                for e in loop.run(handle.fetch_history()).events
            ),
            what="the cancellation to reach the projection",
        )

    final = loop.run(handle.result())
    assert (final.status, final.decided.by_name) == (RequestStatus.CANCELLED, "Temporal")
    assert loop.run(handle.describe()).status == WorkflowExecutionStatus.COMPLETED  # it ended itself
    wait_until(lambda: status_of(request) == RequestStatus.CANCELLED, what="projected")
    kinds = list(RequestEvent.objects.filter(request=request).values_list("kind", flat=True))
    assert kinds[-2:] == ["comment", "cancelled"]  # the interrupted projection is kept
    assert (
        RequestEvent.objects.get(request=request, kind="cancelled").comment
        == "The workflow was cancelled in Temporal"
    )
    wait_until(lambda: len([m for m in mail.outbox if m.subject == "Cancelled: Webcam"]) == 3, what="emails")
