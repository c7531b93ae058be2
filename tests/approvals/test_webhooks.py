"""Webhooks without Temporal: which events are recorded for whom (once), how a delivery is
signed, what one attempt does with each kind of answer, redelivery, and staff's pages."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from approvals import services
from approvals.exceptions import ActionRefused, WebhookNotAccepted, WebhookUndeliverable
from approvals.metrics import exposition
from approvals.models import RequestType, WebhookAttempt, WebhookDelivery, WebhookEvent, WebhookSubscriber
from approvals.services import webhooks
from tests.conftest import WebhookListener, as_user, free_port, make_request, project_action
from workflows.types import Action, ActionKind, WebhookDeliveryInput, WebhookFailure

Event = WebhookSubscriber.Event
Status = WebhookDelivery.Status


def subscribe(people: dict[str, User], url: str, events: list[str], **extra: Any) -> WebhookSubscriber:
    return services.subscriber_save(
        subscriber=None,
        url=url,
        description="ERP",
        events=events,
        is_active=True,
        by=people["admin"],
        **extra,
    )


def submitted(
    people: dict[str, User], purchase: RequestType, url: str
) -> tuple[WebhookSubscriber, WebhookDelivery]:
    """A subscriber of submissions at `url`, and the delivery of a request's submission to it."""
    subscriber = subscribe(people, url, [Event.SUBMITTED])
    make_request(people, purchase, started=True)
    return subscriber, WebhookDelivery.objects.get()


def approve(request: Any, people: dict[str, User]) -> None:
    project_action(request, Action(ActionKind.APPROVE, people["reviewer1"].pk, "reviewer1", "Fine"))


def attempt(delivery: WebhookDelivery, number: int = 1) -> str:
    return services.webhook_attempt(
        delivery=WebhookDeliveryInput(delivery_id=delivery.pk, round=delivery.round), attempt=number
    )


def test_each_event_is_recorded_once_for_each_subscriber_that_wants_it(
    people: dict[str, User], purchase: RequestType
) -> None:
    everything = subscribe(people, "https://erp.example.com/hooks", list(Event.values))
    decisions = subscribe(people, "https://audit.example.com/hooks", [Event.DECIDED])
    subscribe(people, "https://off.example.com/hooks", list(Event.values)).__class__.objects.filter(
        url="https://off.example.com/hooks"
    ).update(is_active=False)

    request = make_request(people, purchase, started=True)  # submitted, and its stage started
    approve(request, people)  # reviewer1's approval (not an event that goes out), then approved
    webhooks.request_events_emit(request=request, events=request.events.all())  # again: nothing new

    events = WebhookEvent.objects.order_by("pk")
    assert [e.type for e in events] == [Event.SUBMITTED, Event.STAGE_STARTED, Event.DECIDED]
    assert {(d.subscriber, d.event.type) for d in WebhookDelivery.objects.all()} == {
        (everything, Event.SUBMITTED),
        (everything, Event.STAGE_STARTED),
        (everything, Event.DECIDED),
        (decisions, Event.DECIDED),
    }
    assert set(WebhookDelivery.objects.values_list("status", "round", "started_at")) == {
        (Status.PENDING, 1, None)
    }
    decided = events.get(type=Event.DECIDED).payload
    assert decided["id"] == events.get(type=Event.DECIDED).event_id and decided["id"].startswith("evt_")
    assert decided["type"] == "request.decided" and decided["timestamp"].endswith("Z")
    assert decided["data"]["request"] | {"url": "…"} == {
        "id": str(request.public_id),
        "url": "…",
        "type": "Purchase",
        "title": "New laptop",
        "status": "approved",
        "requester": "requester",
        "amount": "1200.00",
        "stage": "",  # none now: it is over
        "revision": 1,
    }
    assert decided["data"]["request"]["url"].endswith(request.get_absolute_url())
    assert decided["data"]["event"]["kind"] == "approved" and decided["data"]["event"]["actor"] == "reviewer1"


def test_no_subscriber_no_rows(people: dict[str, User], purchase: RequestType) -> None:
    request = make_request(people, purchase, started=True)
    approve(request, people)
    assert not WebhookEvent.objects.exists() and not WebhookDelivery.objects.exists()


def test_a_delivery_is_signed_as_standard_webhooks_says_and_a_forgery_or_a_replay_is_recognised() -> None:
    secret = webhooks.secret_make()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    body = json.dumps({"type": "request.decided"}).encode()
    now = timezone.now()
    headers = webhooks.signed_headers(secret=secret, event_id="evt_1", at=now, body=body)
    assert headers["webhook-id"] == "evt_1" and headers["webhook-timestamp"] == str(int(now.timestamp()))
    # The signature, worked out by hand from the spec: HMAC-SHA256 over "id.timestamp.body".
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"evt_1.{headers['webhook-timestamp']}.".encode() + body
    assert (
        headers["webhook-signature"]
        == "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    )
    assert Webhook(secret).verify(body, headers) == {"type": "request.decided"}

    forged = [
        (body.replace(b"decided", b"approved"), headers),  # the body changed
        (body, headers | {"webhook-id": "evt_2"}),  # another event's id
        (body, webhooks.signed_headers(secret=webhooks.secret_make(), event_id="evt_1", at=now, body=body)),
    ]
    for data, sent in forged:
        with pytest.raises(WebhookVerificationError, match="No matching signature"):
            Webhook(secret).verify(data, sent)
    old = webhooks.signed_headers(secret=secret, event_id="evt_1", at=now - timedelta(minutes=10), body=body)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(body, old)  # signed right, but sent again long after: a replay


def test_an_attempt_posts_the_signed_event_and_records_each_kind_of_answer(
    people: dict[str, User], purchase: RequestType, listener: WebhookListener
) -> None:
    subscriber, delivery = submitted(people, purchase, listener.url)

    listener.status = 503
    with pytest.raises(WebhookNotAccepted, match="Answered 503"):
        attempt(delivery, 1)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (Status.DELIVERING, 1, 503)

    listener.status = 204
    assert attempt(delivery, 2) == "delivered (204)"
    assert attempt(delivery, 3) == "delivered already"  # an activity retried after its record
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (Status.DELIVERED, 2, 204)
    assert list(WebhookAttempt.objects.order_by("number").values_list("number", "status_code")) == [
        (1, 503),
        (2, 204),
    ]

    # Its workflow's id is unique in the namespace, whatever database numbers the deliveries.
    assert delivery.workflow_id == f"webhook-{delivery.event.event_id}-{subscriber.pk}-1"
    events = listener.events(subscriber.secret)  # both verify; the same event id, the same body
    assert len(events) == 2 and events[0] == events[1] == delivery.event.payload
    assert listener.ids() == [delivery.event.event_id] * 2
    headers = listener.received[0][0]
    assert headers["content-type"] == "application/json" and headers["user-agent"].startswith(
        "approvals-webhooks/"
    )


def test_a_subscriber_gone_or_away_or_off(
    people: dict[str, User], purchase: RequestType, listener: WebhookListener
) -> None:
    subscriber, delivery = submitted(people, purchase, listener.url)

    listener.status = 410
    with pytest.raises(WebhookUndeliverable, match="410"):
        attempt(delivery)
    subscriber.url = f"http://127.0.0.1:{free_port()}/nobody"
    subscriber.save()
    with pytest.raises(WebhookNotAccepted, match="No answer"):
        attempt(delivery, 2)
    assert WebhookAttempt.objects.filter(delivery=delivery).count() == 2

    subscriber.is_active = False
    subscriber.save()
    assert attempt(delivery, 3) == "not sent: the subscriber is off"
    delivery.refresh_from_db()
    assert delivery.status == Status.CANCELLED


def test_a_round_that_gives_up_is_failing_until_staff_redeliver_it(
    people: dict[str, User], purchase: RequestType, listener: WebhookListener
) -> None:
    _, delivery = submitted(people, purchase, listener.url)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(started_at=timezone.now(), status=Status.DELIVERING)

    with pytest.raises(ActionRefused, match="still being delivered"):
        services.webhook_redeliver(delivery_id=delivery.pk, by=people["admin"])

    services.webhook_failing(
        failure=WebhookFailure(delivery.pk, 1, "Still not delivered after 24 hours of retries")
    )
    delivery.refresh_from_db()
    assert delivery.status == Status.FAILING and "24 hours" in delivery.failure_reason
    assert b"approvals_webhooks_failing 1.0" in exposition()

    again = services.webhook_redeliver(delivery_id=delivery.pk, by=people["admin"])
    assert (again.round, again.status, again.started_at, again.redelivered_by) == (
        2,
        Status.PENDING,
        None,
        people["admin"],
    )
    assert attempt(delivery, 1) == "superseded by round 2"  # the old round's workflow, late
    services.webhook_failing(failure=WebhookFailure(delivery.pk, 1, "late"))  # changes nothing now
    again.refresh_from_db()
    assert again.status == Status.PENDING
    assert attempt(again, 1) == "delivered (200)"
    assert len(listener.ids()) == 1


def test_a_delivery_that_no_round_carries_on_can_be_redelivered(
    people: dict[str, User], purchase: RequestType, settings: Any
) -> None:
    """A round stopped out of band (its workflow terminated) leaves a delivery that looks under
    way for ever: once its round's time is over, it can be redelivered."""
    subscribe(people, "https://erp.example.com/hooks", [Event.SUBMITTED])
    make_request(people, purchase, started=True)
    long_ago = timezone.now() - timedelta(hours=settings.WEBHOOK_RETRY_HOURS + 2)
    WebhookDelivery.objects.update(started_at=long_ago, status=Status.DELIVERING)
    delivery = services.webhook_redeliver(delivery_id=WebhookDelivery.objects.get().pk, by=people["admin"])
    assert delivery.round == 2


def test_staff_register_a_subscriber_read_its_secret_and_redeliver_from_the_log(
    people: dict[str, User], purchase: RequestType
) -> None:
    staff = as_user(people["admin"])
    refused = staff.post(reverse("webhooks"), {"url": "ftp://x", "events": []})
    assert refused.status_code == 400
    page = refused.content.decode()
    assert "Enter an address that starts with https://" in page and "Choose at least one event" in page
    assert not WebhookSubscriber.objects.exists()

    made = staff.post(
        reverse("webhooks"),
        {
            "url": "https://erp.example.com/hooks",
            "description": "ERP",
            "events": [Event.SUBMITTED, Event.DECIDED],
            "is_active": "on",
        },
    )
    subscriber = WebhookSubscriber.objects.get()
    assert made["Location"] == subscriber.get_absolute_url()
    assert (subscriber.events, subscriber.created_by) == ([Event.SUBMITTED, Event.DECIDED], people["admin"])
    detail = staff.get(subscriber.get_absolute_url()).content.decode()
    assert subscriber.secret in detail and "is registered" in detail

    make_request(people, purchase, started=True)
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.update(started_at=timezone.now(), status=Status.FAILING, failure_reason="Gave up")
    listed = staff.get(reverse("webhooks"), {"status": "failing"}).content.decode()
    assert delivery.event.event_id in listed and "Gave up" in listed and "Redeliver" in listed
    assert "Failing webhooks" in staff.get(reverse("dashboard")).content.decode()

    answer = staff.post(reverse("webhook_redeliver", args=[delivery.pk]), follow=True)
    assert "goes to https://erp.example.com/hooks again" in answer.content.decode()
    delivery.refresh_from_db()
    assert (delivery.round, delivery.status) == (2, Status.PENDING)
    again = staff.post(reverse("webhook_redeliver", args=[delivery.pk]), follow=True)
    assert "still being delivered" in again.content.decode()
    assert staff.post(reverse("webhook_redeliver", args=[delivery.pk + 999])).status_code == 404

    changed = staff.post(
        subscriber.get_absolute_url(), {"url": "https://erp.example.com/v2", "events": [Event.GRANT_REVOKED]}
    )
    assert changed.status_code == 302
    subscriber.refresh_from_db()
    assert (subscriber.url, subscriber.events, subscriber.is_active) == (
        "https://erp.example.com/v2",
        [Event.GRANT_REVOKED],
        False,
    )
