"""Fulfilment on a real Temporal dev server, through the services the web calls: an approved
access request's fulfilment grants the access and starts the grant's own workflow, which the
holder revokes; a purchase rolled back for want of budget is retried by staff once the budget is
there, on the record."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from temporalio.client import Client, WorkflowExecutionStatus

from approvals import services
from approvals.models import (
    AccessGrant,
    ApprovalRequest,
    CostCentre,
    RequestType,
    Resource,
    StaffAction,
    WebhookEvent,
    WebhookSubscriber,
)
from tests.conftest import LoopThread, wait_until
from workflows.types import ActionKind, GrantActionKind, fulfilment_id_for, grant_id_for

pytestmark = pytest.mark.temporal_server


def approve(people: dict[str, User], request: ApprovalRequest) -> None:
    wait_until(lambda: request.participants.filter(pending=True).exists(), what="review")
    request.refresh_from_db()
    services.request_act(request=request, actor=people["reviewer1"], kind=ActionKind.APPROVE)


def fulfilment_of(request: ApprovalRequest) -> str:
    return ApprovalRequest.objects.get(pk=request.pk).fulfilment


def test_an_approved_access_request_is_granted_by_its_fulfilment_kept_by_its_workflow_and_revoked(
    loop: LoopThread, use_dev_server: Client, people: dict[str, User], access: RequestType, payroll: Resource
) -> None:
    events = [WebhookSubscriber.Event.FULFILLED, WebhookSubscriber.Event.GRANT_REVOKED]
    services.subscriber_save(
        subscriber=None,
        url="https://erp.example.com/hooks",
        description="",
        events=events,
        is_active=True,
        by=people["admin"],
    )
    request = services.request_submit(
        requester=people["requester"],
        request_type=access,
        title="Payroll for the audit",
        resource=payroll,
        access_role="read",
        access_days=30,
    )
    approve(people, request)
    wait_until(
        lambda: AccessGrant.objects.filter(request=request, events__kind="granted").exists(),
        timeout=30,
        what="the grant's workflow to record it",
    )
    assert fulfilment_of(request) == "fulfilled"
    grant = AccessGrant.objects.get(request=request)
    assert (grant.holder, grant.role, grant.status) == (people["requester"], "read", "active")
    assert grant.ends_at - grant.starts_at == timedelta(days=30)  # by the grant workflow's clock
    fulfilment = use_dev_server.get_workflow_handle(fulfilment_id_for(request.public_id, 1))
    # The grant's own record can come before the saga's last task completes: wait for its end.
    loop.run(asyncio.wait_for(fulfilment.result(), timeout=30))
    assert loop.run(fulfilment.describe()).status == WorkflowExecutionStatus.COMPLETED
    handle = use_dev_server.get_workflow_handle(grant_id_for(request.public_id))
    assert loop.run(handle.describe()).status == WorkflowExecutionStatus.RUNNING

    said = services.grant_act(
        grant=grant, actor=people["requester"], kind=GrantActionKind.REVOKE, reason="Done"
    )

    assert said == "The access is revoked."
    grant.refresh_from_db()
    assert (grant.status, grant.end_reason) == ("revoked", "Done")
    wait_until(
        lambda: loop.run(handle.describe()).status == WorkflowExecutionStatus.COMPLETED, what="grant ends"
    )
    # Its webhook events, each once: the fulfilment's end, and the grant's revocation.
    sent = list(WebhookEvent.objects.order_by("pk"))
    assert [e.type for e in sent] == events
    assert sent[1].payload["data"]["grant"] | {"ends_at": None} == {
        "holder": "requester",
        "resource": str(payroll),
        "role": "read",
        "status": "revoked",
        "ends_at": None,
    }


def test_a_purchase_rolled_back_for_want_of_budget_is_retried_by_staff_and_fulfilled(
    loop: LoopThread, use_dev_server: Client, people: dict[str, User], purchase: RequestType, settings: object
) -> None:
    purchase.fulfilment = "purchase"
    purchase.save()
    centre = CostCentre.objects.create(code="ops", name="Operations")
    services.budget_allocate(cost_centre=centre, amount=Decimal("100"), by=people["admin"])
    request = services.request_submit(
        requester=people["requester"],
        request_type=purchase,
        title="Chair",
        amount=Decimal("300"),
        cost_centre=centre,
    )
    approve(people, request)
    wait_until(lambda: fulfilment_of(request) == "rolled_back", timeout=30, what="rolled back")
    reason = request.fulfilments.get().reason
    assert "ops" in reason and "300" in reason

    services.budget_allocate(cost_centre=centre, amount=Decimal("500"), by=people["admin"])
    done = services.fulfilment_retry_by_staff(
        request=request, actor=people["admin"], reason="Budget topped up"
    )

    assert (done.ok, done.outcome, done.reason) == (True, "Fulfilment attempt 2 started.", "Budget topped up")
    wait_until(
        lambda: fulfilment_of(request) == "fulfilled", timeout=30, what="fulfilled at the second attempt"
    )
    assert list(request.fulfilments.values_list("attempt", "status")) == [
        (2, "fulfilled"),
        (1, "rolled_back"),
    ]
    seqs = list(request.events.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(len(seqs)))  # the second attempt's events follow the first's
    assert request.purchase_orders.count() == 1
    # A retry of a fulfilled one is refused, and on the record too.
    with pytest.raises(Exception, match="only one that was rolled back can be retried"):
        services.fulfilment_retry_by_staff(request=request, actor=people["admin"])
    assert list(StaffAction.objects.order_by("pk").values_list("ok", flat=True)) == [True, False]
