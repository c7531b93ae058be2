"""Fulfilment on the Django side: a purchase must say what it costs and who pays; the saga's
reports are recorded once and in order, with one email per person; staff retry only a
rolled-back fulfilment, and every attempt is on the record."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail

from approvals import services
from approvals.exceptions import ActionRefused, InvalidInput, NotAllowed, PartnerUnavailable
from approvals.models import (
    AccessGrant,
    ApprovalRequest,
    CostCentre,
    Fulfilment,
    RequestType,
    Resource,
    StaffAction,
)
from approvals.selectors.dashboard import fulfilments_failed
from tests.conftest import as_user, make_access_request, make_request
from workflows.types import (
    EventKind,
    FulfilmentReport,
    FulfilmentStatus,
    NotificationInput,
    NotificationKind,
    StepInput,
    StepState,
    StepStatus,
    TimelineEntry,
)

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def purchase(purchase: RequestType) -> RequestType:
    purchase.fulfilment = "purchase"
    purchase.save()
    return purchase


@pytest.fixture
def it(people: dict[str, User]) -> CostCentre:
    return CostCentre.objects.create(code="it", name="IT")


def test_a_purchase_without_an_amount_or_a_cost_centre_is_refused_by_field(
    people: dict[str, User], purchase: RequestType, it: CostCentre
) -> None:
    client = as_user(people["requester"])
    form = {"request_type": purchase.pk, "title": "Desk", "submission_id": str(uuid.uuid4())}
    page = client.post("/requests/new/", form)
    assert page.status_code == 400
    errors = page.context["form"].errors
    assert errors["amount"] == ["A “Purchase” request needs the amount it will cost."]
    assert errors["cost_centre"] == ["A “Purchase” request needs the cost centre that pays for it."]
    it.is_active = False
    it.save()
    with pytest.raises(InvalidInput, match="The cost centre it is closed"):
        services.request_submit(
            requester=people["requester"],
            request_type=purchase,
            title="Desk",
            amount=Decimal("1"),
            cost_centre=it,
        )
    assert not ApprovalRequest.objects.exists()

    it.is_active = True
    it.save()
    page = client.post("/requests/new/", form | {"amount": "300", "cost_centre": it.pk})
    assert page.status_code == 302
    request = ApprovalRequest.objects.get()
    assert (request.cost_centre, request.amount, request.policy["fulfilment"]) == (
        it,
        Decimal("300"),
        "purchase",
    )


def test_a_request_type_without_fulfilment_keeps_no_cost_centre(
    people: dict[str, User], purchase: RequestType, it: CostCentre
) -> None:
    purchase.fulfilment = ""
    purchase.save()
    request = services.request_submit(
        requester=people["requester"], request_type=purchase, title="Desk", cost_centre=it
    )
    assert request.cost_centre is None and request.policy["fulfilment"] == ""


def report(
    request: ApprovalRequest, seq: int, status: FulfilmentStatus, kind: EventKind, **extra: Any
) -> FulfilmentReport:
    steps = [StepState("reserve", "Reserve the budget", StepStatus.DONE, "1200.00 reserved from it")]
    return FulfilmentReport(
        request_id=str(request.public_id),
        attempt=1,
        seq=seq,
        status=status,
        steps=steps,
        event=TimelineEntry(seq=seq, at=AT, kind=kind, detail=f"event {seq}"),
        **extra,
    )


def test_reports_are_recorded_once_and_in_order_and_their_email_goes_once_to_requester_and_approvers(
    people: dict[str, User], purchase: RequestType, it: CostCentre
) -> None:
    request = make_request(people, purchase, started=True)
    request.events.create(seq=5, kind=EventKind.APPROVAL, actor=people["reviewer1"], occurred_at=AT)
    started = report(request, 6, FulfilmentStatus.RUNNING, EventKind.FULFILMENT_STARTED)
    done = report(
        request,
        7,
        FulfilmentStatus.FULFILLED,
        EventKind.FULFILLED,
        notification=NotificationInput(
            request_id=str(request.public_id),
            kind=NotificationKind.FULFILLED,
            recipient_ids=[],
            idempotency_key=f"{request.public_id}:fulfilment:1:fulfilled",
        ),
    )

    assert services.fulfilment_record(report=started) is not None
    assert services.fulfilment_record(report=done) is not None
    assert services.fulfilment_record(report=done) is None  # retried: nothing new, no email again
    assert services.fulfilment_record(report=started) is None  # late: overwrites nothing

    request.refresh_from_db()
    assert request.fulfilment == "fulfilled"
    fulfilment = Fulfilment.objects.get()
    assert (fulfilment.seq, fulfilment.status, fulfilment.ended_at) == (7, "fulfilled", AT)
    assert list(request.events.filter(seq__gt=5).values_list("kind", flat=True)) == [
        "fulfilment_started",
        "fulfilled",
    ]
    assert sorted(m.to[0] for m in mail.outbox) == ["requester@example.com", "reviewer1@example.com"]
    assert "Reserve the budget: 1200.00 reserved from it" in mail.outbox[0].body


def test_staff_retry_only_a_rolled_back_fulfilment_and_every_attempt_is_on_the_record(
    people: dict[str, User], purchase: RequestType, it: CostCentre, temporal_unreachable: str
) -> None:
    request = make_request(people, purchase, started=True)
    with pytest.raises(NotAllowed):
        services.fulfilment_retry_by_staff(request=request, actor=people["requester"])
    with pytest.raises(ActionRefused, match="no fulfilment to retry"):
        services.fulfilment_retry_by_staff(request=request, actor=people["admin"])
    services.fulfilment_record(
        report=report(request, 6, FulfilmentStatus.RUNNING, EventKind.FULFILMENT_STARTED)
    )
    with pytest.raises(ActionRefused, match="being fulfilled; only one that was rolled back can be retried"):
        services.fulfilment_retry_by_staff(request=request, actor=people["admin"])
    services.fulfilment_record(
        report=report(
            request,
            7,
            FulfilmentStatus.ROLLED_BACK,
            EventKind.ROLLED_BACK,
            failed_step="Place the purchase order",
            reason="refused (422)",
        )
    )
    assert [f.request for f in fulfilments_failed()] == [request]
    # Temporal is away: nothing starts, and the person is told so.
    with pytest.raises(ActionRefused, match="did not answer"):
        services.fulfilment_retry_by_staff(request=request, actor=people["admin"], reason="Fixed")
    assert list(StaffAction.objects.values_list("kind", "ok", flat=False)) == [("fulfil", False)] * 3

    page = as_user(people["admin"]).get("/dashboard/")
    assert "Failed at <strong>Place the purchase order</strong>: refused (422)" in page.content.decode()
    assert f"/dashboard/requests/{request.public_id}/fulfil/" in page.content.decode()
    answer = as_user(people["admin"]).post(
        f"/dashboard/requests/{request.public_id}/fulfil/", {"reason": "Fixed"}, HTTP_HX_REQUEST="true"
    )
    assert answer.status_code == 200 and "did not answer" in answer.content.decode()
    assert as_user(people["requester"]).post(
        f"/dashboard/requests/{request.public_id}/fulfil/"
    ).status_code in (
        302,
        403,
    )


class AccessEndpoint:
    """An access service on loopback: it grants once per Idempotency-Key, records what it gets,
    and can grant and lose its answer."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, dict[str, Any]]] = []
        self.granted: dict[str, dict[str, Any]] = {}
        self.lose_next = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.received.append((self.path, self.headers["Idempotency-Key"], body))
                if self.path == "/access":
                    endpoint.granted.setdefault(self.headers["Idempotency-Key"], body)
                status = 503 if endpoint.lose_next else 200
                endpoint.lose_next = max(0, endpoint.lose_next - 1)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/access"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_access_is_granted_at_the_endpoint_once_per_key_and_taken_back_there(
    people: dict[str, User], access: RequestType, payroll: Resource, settings: Any
) -> None:
    endpoint = AccessEndpoint()
    settings.ACCESS_GRANT_URL = endpoint.url
    try:
        request = make_access_request(people, access, payroll)
        step = StepInput(str(request.public_id), 1, f"{request.public_id}:fulfilment:1:grant")
        endpoint.lose_next = 1  # granted there, and its answer lost: the activity retries
        with pytest.raises(PartnerUnavailable, match="The access endpoint failed \\(503\\)"):
            services.access_grant(step=step)
        note = services.access_grant(step=step)
        assert services.access_grant(step=step) == note  # asked again: the grant made, no call
        assert note == "read on Payroll for 30 days"
        assert [(path, key) for path, key, _ in endpoint.received] == [("/access", step.key)] * 2
        assert list(endpoint.granted) == [step.key]
        assert endpoint.received[0][2] == {
            "request": str(request.public_id),
            "holder": "requester",
            "resource": "payroll",
            "role": "read",
            "until": endpoint.received[0][2]["until"],
        }
        grant = AccessGrant.objects.get()
        assert (grant.external, grant.status) == (True, "active")

        # Rolled back: taken back there too, under a key of its own.
        assert services.access_take_back(step=step) == "read on Payroll taken back"
        assert endpoint.received[-1][:2] == ("/access/revoke", f"{step.key}:revoke")
        grant.refresh_from_db()
        assert (grant.status, grant.end_reason) == ("revoked", "The request's fulfilment was rolled back.")
    finally:
        endpoint.server.shutdown()


def test_an_access_request_must_name_a_resource_a_role_it_has_and_a_period_within_its_limit(
    people: dict[str, User], access: RequestType, payroll: Resource
) -> None:
    client = as_user(people["requester"])
    form = {"request_type": access.pk, "title": "Payroll", "submission_id": str(uuid.uuid4())}
    errors = client.post("/requests/new/", form).context["form"].errors
    assert errors["resource"] == ["A “Access” request needs the resource it is for."]
    assert errors["access_days"] == ["Ask for 1 to 365 days."]
    errors = (
        client.post(
            "/requests/new/", form | {"resource": payroll.pk, "access_role": "admin", "access_days": "91"}
        )
        .context["form"]
        .errors
    )
    assert errors["access_role"] == ["Choose one of the roles of Payroll: read, write."]
    assert errors["access_days"] == ["Ask for 1 to 90 days."]
    page = client.post(
        "/requests/new/", form | {"resource": payroll.pk, "access_role": "write", "access_days": "14"}
    )
    assert page.status_code == 302
    request = ApprovalRequest.objects.get()
    assert (request.resource, request.access_role, request.access_days) == (payroll, "write", 14)
    assert request.policy["fulfilment"] == "access"
