"""Fulfilment: the steps of what an approval sets in motion, and the record of how the saga goes
(staff retry one that was rolled back: services.staff).

Each step and compensation does its work once per key (the request, the attempt, the step), so
that a worker killed after the work and before Temporal heard of it never does it twice; each
answers with a note of what it did, for the request's page and timeline.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from approvals.exceptions import InvalidInput, NotFound
from approvals.live import Change
from approvals.models import ApprovalRequest, Fulfilment, RequestEvent
from approvals.selectors.budgets import money
from approvals.services.budgets import budget_release, budget_reserve
from approvals.services.notifications import notification_send
from approvals.services.projection import request_change
from approvals.services.purchase_orders import (
    purchase_order_cancel,
    purchase_order_cancel_unrecorded,
    purchase_order_place,
)
from approvals.services.webhooks import request_events_emit
from workflows.types import EventKind, FulfilmentReport, FulfilmentStatus, StepInput

# Whose approval counts as approving it: they hear how its fulfilment ended.
APPROVING_EVENTS = (EventKind.APPROVAL.value, EventKind.APPROVED.value)


def _request(request_id: str) -> ApprovalRequest:
    request = ApprovalRequest.objects.select_related("cost_centre").filter(public_id=request_id).first()
    if request is None:
        raise NotFound(f"No request {request_id}.")
    return request


def _purchase(request: ApprovalRequest) -> tuple[Decimal, str]:
    """What a purchase reserves and orders; refused (for good) when the request lacks it."""
    if request.amount is None or request.amount <= 0:
        raise InvalidInput("The request has no amount to buy for.")
    if request.cost_centre is None:
        raise InvalidInput("The request names no cost centre to pay from.")
    return money(request.amount), request.cost_centre.code


def fulfilment_budget_reserve(*, step: StepInput) -> str:
    request = _request(step.request_id)
    amount, code = _purchase(request)
    assert request.cost_centre is not None
    budget_reserve(cost_centre=request.cost_centre, amount=amount, key=step.key, request=request)
    return f"{amount} reserved from {code}"


def fulfilment_budget_release(*, step: StepInput) -> str:
    released = budget_release(key=step.key)
    return f"{released.amount} given back to {released.cost_centre.code}" if released else ""


def fulfilment_order_place(*, step: StepInput) -> str:
    request = _request(step.request_id)
    amount, _ = _purchase(request)
    order = purchase_order_place(request=request, amount=amount, key=step.key)
    return f"order {order.number} placed"


def fulfilment_order_cancel(*, step: StepInput) -> str:
    if order := purchase_order_cancel(key=step.key):
        return f"order {order.number} cancelled"
    if number := purchase_order_cancel_unrecorded(key=step.key):
        return f"order {number} cancelled (the endpoint had placed it, and its answer was lost)"
    return ""


def fulfilment_record(*, report: FulfilmentReport) -> Change | None:
    """Record where the saga stands, and its timeline event; then send the email it carries (to
    the requester and the approvers, once each). Idempotent and safe out of order: a report
    older than the one recorded changes nothing."""
    with transaction.atomic():
        request = ApprovalRequest.objects.select_for_update().filter(public_id=report.request_id).first()
        if request is None:
            raise NotFound(f"No request {report.request_id}.")
        new = _record(request, report)
    if report.notification is not None:
        notification_send(
            notification=dataclasses.replace(
                report.notification, recipient_ids=fulfilment_recipients(request)
            )
        )
    return request_change(request) if new else None


def _record(request: ApprovalRequest, report: FulfilmentReport) -> bool:
    event = report.event
    new = False
    if event is not None and not RequestEvent.objects.filter(request=request, seq=event.seq).exists():
        kept = RequestEvent.objects.create(
            request=request,
            seq=event.seq,
            kind=event.kind.value,
            actor_name=event.actor_name,
            detail=event.detail[:500],
            revision=request.revision,
            occurred_at=event.at,
        )
        request_events_emit(request=request, events=[kept])
        new = True
    ended = report.status in (FulfilmentStatus.FULFILLED, FulfilmentStatus.ROLLED_BACK)
    at = event.at if event is not None else timezone.now()
    fulfilment, created = Fulfilment.objects.get_or_create(
        request=request,
        attempt=report.attempt,
        defaults={"seq": 0, "status": report.status.value, "started_at": at, "updated_at": at},
    )
    if created or report.seq > fulfilment.seq:
        fulfilment.seq = report.seq
        fulfilment.status = report.status.value
        fulfilment.steps = [dataclasses.asdict(s) | {"status": s.status.value} for s in report.steps]
        fulfilment.failed_step = report.failed_step
        fulfilment.reason = report.reason
        fulfilment.updated_at = at
        fulfilment.ended_at = at if ended else None
        fulfilment.save()
        new = True
    latest = request.fulfilments.order_by("-attempt").values_list("status", flat=True).first() or ""
    if request.fulfilment != latest:
        request.fulfilment = latest
        request.save(update_fields=["fulfilment", "updated_at"])
    return new


def fulfilment_recipients(request: ApprovalRequest) -> list[int]:
    """The requester and everyone who approved the request."""
    approvers = request.events.filter(kind__in=APPROVING_EVENTS, actor__isnull=False).values_list(
        "actor_id", flat=True
    )
    return sorted({request.requester_id, *approvers})
