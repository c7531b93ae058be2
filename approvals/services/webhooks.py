"""Webhooks: subscribers staff register, the events recorded for them, and their delivery.

An event is recorded (with a delivery to each subscriber that wants it) in the same transaction
as what it tells of: the timeline event of a request, or of a grant, kept once. So an event is
never lost, and never recorded twice. The worker's relay starts a workflow for each round of each
delivery (workflows.webhook), whose activity makes the attempts: a POST of the event's JSON,
signed as the Standard Webhooks spec says:

    webhook-id: evt_…            the event's id, the same in every attempt and every redelivery
    webhook-timestamp: 1765000000  the attempt's time, in seconds
    webhook-signature: v1,<base64 of HMAC-SHA256(secret, f"{id}.{timestamp}.{body}")>

A receiver checks the signature with the subscriber's secret, refuses a timestamp more than a
few minutes old (a replay), and drops an id it has already seen (a retry after a lost answer).
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from approvals import client as temporal
from approvals.exceptions import ActionRefused, NotFound, WebhookNotAccepted, WebhookUndeliverable
from approvals.models import (
    AccessGrant,
    ApprovalRequest,
    GrantEvent,
    RequestEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscriber,
)
from approvals.selectors.requests import display_name
from workflows.types import EventKind, GrantEventKind, WebhookDeliveryInput, WebhookFailure

logger = logging.getLogger(__name__)

Event = WebhookSubscriber.Event
Status = WebhookDelivery.Status

# Which timeline events go out, as which event type: this map is the one place that says so.
REQUEST_EVENTS = {
    EventKind.SUBMITTED: Event.SUBMITTED,
    EventKind.STAGE_STARTED: Event.STAGE_STARTED,
    EventKind.APPROVED: Event.DECIDED,
    EventKind.REJECTED: Event.DECIDED,
    EventKind.ESCALATED: Event.ESCALATED,
    EventKind.EXPIRED: Event.EXPIRED,
    EventKind.WITHDRAWN: Event.WITHDRAWN,
    EventKind.FULFILLED: Event.FULFILLED,
    EventKind.ROLLED_BACK: Event.ROLLED_BACK,
}
GRANT_EVENTS = {GrantEventKind.REVOKED: Event.GRANT_REVOKED}
ANSWER_KEPT = 300  # characters of a subscriber's answer kept in the delivery log
SECRET_PREFIX = "whsec_"
USER_AGENT = "approvals-webhooks/1"


def secret_make() -> str:
    """A new signing secret: 32 random bytes, as Standard Webhooks writes them."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def subscriber_save(
    *,
    subscriber: WebhookSubscriber | None,
    url: str,
    description: str,
    events: list[str],
    is_active: bool,
    by: User,
) -> WebhookSubscriber:
    """Register a subscriber (with a new secret), or change one. Turning one off stops new
    events going to it; its deliveries under way give up at their next attempt."""
    if subscriber is None:
        subscriber = WebhookSubscriber(secret=secret_make(), created_by=by)
    subscriber.url, subscriber.description, subscriber.is_active = url, description.strip(), is_active
    chosen = set(events)
    subscriber.events = [e for e in Event.values if e in chosen]
    subscriber.save()
    return subscriber


# --- Recording events (inside the transaction that records what they tell of) ---------------


@dataclass(frozen=True)
class _Out:
    source: str
    type: str
    at: datetime
    data: dict[str, Any]


def request_events_emit(*, request: ApprovalRequest, events: Iterable[RequestEvent]) -> int:
    """Record, for the subscribers that want them, the events among these new timeline events
    of the request that go out. Returns how many deliveries it recorded."""
    outs = [
        _Out(
            source=f"request:{request.public_id}:{e.seq}",
            type=REQUEST_EVENTS[EventKind(e.kind)],
            at=e.occurred_at,
            data={"event": _entry(e.kind, e.seq, e.actor_name, e.comment, e.detail, e.occurred_at, e.stage)},
        )
        for e in events
        if e.kind in REQUEST_EVENTS
    ]
    return _emit(request, outs)


def grant_event_emit(*, grant: AccessGrant, event: GrantEvent) -> int:
    """Record the grant's new event, if it is one that goes out."""
    if event.kind not in GRANT_EVENTS:
        return 0
    data = {
        "grant": {
            "holder": display_name(grant.holder),
            "resource": str(grant.resource),
            "role": grant.role,
            "status": grant.status,
            "ends_at": _iso(grant.ends_at),
        },
        "event": _entry(event.kind, event.seq, event.actor_name, "", event.detail, event.occurred_at),
    }
    out = _Out(
        f"grant:{grant.request.public_id}:{event.seq}",
        GRANT_EVENTS[GrantEventKind(event.kind)],
        event.occurred_at,
        data,
    )
    return _emit(grant.request, [out])


def _emit(request: ApprovalRequest, outs: list[_Out]) -> int:
    if not outs:
        return 0
    subscribers = list(WebhookSubscriber.objects.filter(is_active=True).only("pk", "events"))
    made = 0
    for out in outs:
        wanted = [s for s in subscribers if out.type in s.events]
        if not wanted:
            continue
        if WebhookEvent.objects.filter(source=out.source).exists():
            continue  # recorded already: what it tells of was kept before
        event = WebhookEvent(
            source=out.source, type=out.type, request=request, occurred_at=out.at, payload={}
        )
        event.payload = {
            "id": event.event_id,
            "type": out.type,
            "timestamp": _iso(out.at),
            "data": {"request": _request_data(request), **out.data},
        }
        event.save()
        WebhookDelivery.objects.bulk_create([WebhookDelivery(event=event, subscriber=s) for s in wanted])
        made += len(wanted)
    return made


def _request_data(request: ApprovalRequest) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(request.public_id),
        "url": settings.SITE_URL + request.get_absolute_url(),
        "type": request.request_type.name,
        "title": request.title,
        "status": request.status,
        "requester": display_name(request.requester),
        "amount": None if request.amount is None else str(request.amount),
        "stage": request.stage_name,
        "revision": request.revision,
    }
    if request.is_agent_action:  # the exact action; its token goes to its requester alone, by the API
        data["action"] = {
            "agent": request.agent_name,
            "tool": request.tool,
            "risk": request.risk,
            "sha256": request.action_sha256,
        }
    return data


def _entry(
    kind: str, seq: int, actor: str, comment: str, detail: str, at: datetime, stage: str = ""
) -> dict[str, Any]:
    return {
        "kind": kind,
        "seq": seq,
        "actor": actor,
        "comment": comment,
        "detail": detail,
        "stage": stage,
        "at": _iso(at),
    }


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat().replace("+00:00", "Z")


# --- The relay, the attempts and the end of a round (the worker's side) ----------------------


def webhooks_start_pending(*, limit: int = 200) -> int:
    """Start the workflow of each round recorded and not yet started. Returns how many it
    started; stops at the first error, for the next round of the relay to go on from."""
    started = 0
    retry_seconds = int(settings.WEBHOOK_RETRY_HOURS * 3600)
    pending = (
        WebhookDelivery.objects.filter(started_at__isnull=True)
        .select_related("event")
        .only("pk", "round", "subscriber_id", "event__public_id")
        .order_by("created_at", "pk")
    )
    for delivery in pending[:limit]:
        try:
            temporal.start_webhook_delivery(
                WebhookDeliveryInput(
                    delivery_id=delivery.pk, round=delivery.round, retry_seconds=retry_seconds
                ),
                delivery.workflow_id,
            )
        except temporal.TemporalError as exc:
            logger.warning("Webhook deliveries left for the next round of the relay: %s", exc)
            break
        WebhookDelivery.objects.filter(pk=delivery.pk, round=delivery.round, started_at__isnull=True).update(
            started_at=timezone.now()
        )
        started += 1
    return started


def signed_headers(*, secret: str, event_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The headers that carry the event's id, the attempt's time and their signature."""
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, at, body),
    }


def body_of(event: WebhookEvent) -> bytes:
    """The event's JSON, the same bytes in every attempt."""
    return json.dumps(event.payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is the subscriber's answer, not somewhere else to post the event


_opener = urllib.request.build_opener(_NoRedirects)


def webhook_attempt(*, delivery: WebhookDeliveryInput, attempt: int) -> str:
    """One attempt at a round of the delivery: POST the event, signed, and record what came of
    it. Answers what became of it; raises WebhookNotAccepted (retry later) or
    WebhookUndeliverable (no retry can help)."""
    found = (
        WebhookDelivery.objects.select_related("event", "subscriber").filter(pk=delivery.delivery_id).first()
    )
    if found is None:
        raise NotFound(f"No webhook delivery {delivery.delivery_id}.")
    if found.round != delivery.round:
        return f"superseded by round {found.round}"
    if found.status == Status.DELIVERED:
        return "delivered already"
    if not found.subscriber.is_active:
        WebhookDelivery.objects.filter(pk=found.pk, round=found.round).update(status=Status.CANCELLED)
        return "not sent: the subscriber is off"
    body, at = body_of(found.event), timezone.now()
    headers = signed_headers(secret=found.subscriber.secret, event_id=found.event.event_id, at=at, body=body)
    call = urllib.request.Request(
        found.subscriber.url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
    )
    began = time.monotonic()
    code: int | None = None
    error, callable_ = "", True
    try:
        with _opener.open(call, timeout=settings.WEBHOOK_TIMEOUT) as response:
            code = response.status
            response.read(ANSWER_KEPT)
    except urllib.error.HTTPError as exc:
        code = exc.code
        error = f"Answered {exc.code}: {exc.read(ANSWER_KEPT).decode(errors='replace')}".strip()
    except ValueError as exc:  # no scheme, say: it cannot be called as it is
        error, callable_ = f"Its address cannot be called: {exc}", False
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        error = f"No answer: {getattr(exc, 'reason', exc)}"
    milliseconds = int((time.monotonic() - began) * 1000)
    ok = code is not None and 200 <= code < 300
    _attempt_record(found, attempt=attempt, at=at, code=code, error=error, milliseconds=milliseconds, ok=ok)
    if ok:
        return f"delivered ({code})"
    if code == 410 or not callable_:
        raise WebhookUndeliverable(error or "The subscriber said it is gone (410).")
    raise WebhookNotAccepted(error)


def _attempt_record(
    delivery: WebhookDelivery,
    *,
    attempt: int,
    at: datetime,
    code: int | None,
    error: str,
    milliseconds: int,
    ok: bool,
) -> None:
    with transaction.atomic():
        _, new = WebhookAttempt.objects.get_or_create(
            delivery=delivery,
            round=delivery.round,
            number=attempt,
            defaults={"at": at, "status_code": code, "error": error[:1000], "milliseconds": milliseconds},
        )
        changes: dict[str, Any] = {
            "last_attempt_at": at,
            "last_status_code": code,
            "last_error": error[:1000],
            "status": Status.DELIVERED if ok else Status.DELIVERING,
        }
        if ok:
            changes.update(delivered_at=at, failed_at=None, failure_reason="")
        rows = WebhookDelivery.objects.filter(pk=delivery.pk, round=delivery.round).exclude(
            status=Status.DELIVERED
        )
        rows.update(attempts=F("attempts") + 1, **changes) if new else rows.update(**changes)


def webhook_failing(*, failure: WebhookFailure) -> None:
    """The round gave up: its delivery is failing, for staff to see (unless a redelivery has
    begun meanwhile, or it was delivered after all)."""
    WebhookDelivery.objects.filter(pk=failure.delivery_id, round=failure.round).exclude(
        status__in=[Status.DELIVERED, Status.CANCELLED]
    ).update(status=Status.FAILING, failed_at=timezone.now(), failure_reason=failure.reason[:1000])


# --- Staff's side -----------------------------------------------------------------------------

STILL_TRYING = "It is still being delivered: its retries go on until {until:%Y-%m-%d %H:%M} UTC."


def webhook_redeliver(*, delivery_id: int, by: User) -> WebhookDelivery:
    """Begin a new round of the delivery: the same event, with the same id, from the first
    attempt again. Refused while a round is under way, and for a subscriber that is off."""
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update()
            .select_related("subscriber")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None:
            raise NotFound(f"No webhook delivery {delivery_id}.")
        if refusal := redelivery_refused(delivery):
            raise ActionRefused(refusal)
        delivery.round += 1
        delivery.status, delivery.started_at = Status.PENDING, None
        delivery.failed_at, delivery.failure_reason = None, ""
        delivery.redelivered_by, delivery.redelivered_at = by, timezone.now()
        delivery.save()
    return delivery


def redelivery_refused(delivery: WebhookDelivery) -> str:
    """Why the delivery cannot be redelivered now, for staff; empty when it can."""
    if not delivery.subscriber.is_active:
        return "Its subscriber is off: turn it on before redelivering."
    until = _round_ends(delivery)
    if until is not None and delivery.status in (Status.PENDING, Status.DELIVERING):
        return STILL_TRYING.format(until=until)
    return ""


def _round_ends(delivery: WebhookDelivery) -> datetime | None:
    """When the round under way gives up at the latest (with an hour's grace for its last
    attempt and its record); None once that has passed, as for a round stopped out of band."""
    start = delivery.started_at or delivery.redelivered_at or delivery.created_at
    ends = start + timedelta(hours=settings.WEBHOOK_RETRY_HOURS)
    return ends if timezone.now() < ends + timedelta(hours=1) else None
