"""Webhooks through Temporal: on the dev server, a request's events reach a real listener on
loopback, signed, after the listener was down for a while, each once; on the time-skipping
server, a listener down for good is retried for a whole day, and the delivery is then failing."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.contrib.auth.models import User
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from approvals import services
from approvals.models import RequestType, WebhookAttempt, WebhookDelivery, WebhookEvent, WebhookSubscriber
from approvals.worker import build_webhook_worker
from tests.conftest import LoopThread, RunningWorker, WebhookListener, free_port, make_request, wait_until
from workflows.types import ActionKind, WebhookDeliveryInput
from workflows.webhook import WebhookDeliveryWorkflow

Event = WebhookSubscriber.Event
Status = WebhookDelivery.Status


def subscribe(people: dict[str, User], url: str) -> WebhookSubscriber:
    return services.subscriber_save(
        subscriber=None,
        url=url,
        description="",
        events=list(Event.values),
        is_active=True,
        by=people["admin"],
    )


@pytest.mark.temporal_server
def test_a_listener_down_for_a_while_gets_every_event_once_it_is_back_each_once(
    use_dev_server: Client,
    webhook_worker: RunningWorker,
    people: dict[str, User],
    purchase: RequestType,
    listener: WebhookListener,
) -> None:
    subscriber = subscribe(people, listener.url)
    listener.down()
    request = services.request_submit(requester=people["requester"], request_type=purchase, title="Desk")
    wait_until(lambda: request.participants.filter(pending=True).exists(), what="review")
    request.refresh_from_db()
    services.request_act(request=request, actor=people["reviewer1"], kind=ActionKind.APPROVE)
    wait_until(lambda: WebhookEvent.objects.filter(type=Event.DECIDED).exists(), what="the decision's event")
    wait_until(
        lambda: not WebhookDelivery.objects.filter(attempts=0).exists(),
        timeout=30,
        what="a first attempt at each delivery, refused",
    )
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {Status.DELIVERING}
    assert WebhookAttempt.objects.filter(error__startswith="No answer").exists()

    listener.up()
    wait_until(
        lambda: set(WebhookDelivery.objects.values_list("status", flat=True)) == {Status.DELIVERED},
        timeout=60,
        what="every delivery, once the listener is back",
    )

    events = {e.event_id: e for e in WebhookEvent.objects.all()}
    assert [events[i].type for i in sorted(events, key=lambda i: events[i].pk)] == [
        Event.SUBMITTED,
        Event.STAGE_STARTED,
        Event.DECIDED,
    ]
    received = listener.ids()
    assert Counter(received) == Counter(set(events)), received  # every event, and none twice
    verified = listener.events(subscriber.secret)  # every one signed with the subscriber's secret
    assert {v["id"] for v in verified} == set(events)
    assert all(v == events[v["id"]].payload for v in verified)
    assert all(d.attempts >= 2 for d in WebhookDelivery.objects.all())
    for delivery in WebhookDelivery.objects.all():
        handle = use_dev_server.get_workflow_handle(delivery.workflow_id)
        assert webhook_worker.loop.run(handle.result(), timeout=30) == "delivered (200)"


@pytest.fixture
def ts_webhook_worker(loop: LoopThread, time_skipping_env: WorkflowEnvironment, ts_cleanup: None) -> Any:
    worker = RunningWorker(
        loop, time_skipping_env.client, task_queue="ts-webhooks", build=build_webhook_worker
    )
    yield worker
    worker.stop()


def test_a_listener_down_for_good_is_retried_for_a_day_then_the_delivery_is_failing(
    loop: LoopThread,
    time_skipping_env: WorkflowEnvironment,
    ts_webhook_worker: RunningWorker,
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    subscribe(people, f"http://127.0.0.1:{free_port()}/nobody-listens")
    make_request(people, purchase, started=True)
    delivery = WebhookDelivery.objects.filter(event__type=Event.SUBMITTED).get()

    handle = loop.run(
        time_skipping_env.client.start_workflow(
            WebhookDeliveryWorkflow.run,
            WebhookDeliveryInput(delivery_id=delivery.pk, round=1, retry_seconds=24 * 3600),
            id=delivery.workflow_id,
            task_queue="ts-webhooks",
        )
    )
    said = loop.run(handle.result(), timeout=120)

    assert said.startswith(
        "failing: Still not delivered after 24 hours of retries; the last attempt: No answer"
    )
    delivery.refresh_from_db()
    assert delivery.status == Status.FAILING and delivery.failure_reason == said.removeprefix("failing: ")
    # By the server's clock (time skipped), the attempts backed off to an hour between them and
    # went on for the day: the history keeps the last attempt's number and when it failed.
    history = loop.run(handle.fetch_history())
    began = history.events[0].event_time.ToDatetime()
    started = next(e for e in history.events if e.HasField("activity_task_started_event_attributes"))
    failed = next(e for e in history.events if e.HasField("activity_task_failed_event_attributes"))
    assert 25 <= started.activity_task_started_event_attributes.attempt == delivery.attempts <= 40
    assert 22 * 3600 <= (failed.event_time.ToDatetime() - began).total_seconds() <= 24 * 3600
    assert WebhookAttempt.objects.filter(delivery=delivery).count() == delivery.attempts
