"""Approve and reject from an email: every good and every bad use of a link."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.utils import timezone
from temporalio.client import Client as TemporalClient

from approvals import services
from approvals.models import ApprovalRequest, EmailLinkUse, RequestType
from tests.conftest import as_user, wait_until
from workflows.types import ActionKind

pytestmark = pytest.mark.temporal_server


def path(url: str) -> str:
    return url.removeprefix("http://127.0.0.1:8000")


def submitted(people: dict[str, User], request_type: RequestType) -> ApprovalRequest:
    request = services.request_submit(
        requester=people["requester"], request_type=request_type, title="Laptop"
    )
    wait_until(lambda: len([m for m in mail.outbox if "Please review" in m.subject]) == 2, what="emails")
    request.refresh_from_db()
    return request


def links_in_email(to: str) -> dict[str, str]:
    body = next(m.body for m in mail.outbox if m.to == [to] and "Please review" in m.subject)
    return {kind.lower(): path(url) for kind, url in re.findall(r"(Approve|Reject): +(\S+)", body)}


def status_of(request: ApprovalRequest) -> str:
    return ApprovalRequest.objects.get(pk=request.pk).status


def test_approve_from_the_email_confirms_first_then_works_once(
    use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    request = submitted(people, purchase)
    links = links_in_email("reviewer1@example.com")
    assert set(links) == {"approve", "reject"}

    # A mail scanner (no session) opens the link: it is sent to log in, and nothing changes.
    scanner = Client().get(links["approve"])
    assert scanner.status_code == 302 and scanner["Location"].startswith("/accounts/login/")

    reviewer = as_user(people["reviewer1"])
    page = reviewer.get(links["approve"])
    assert page.status_code == 200
    assert "Approve “Laptop”?" in page.content.decode()
    assert not EmailLinkUse.objects.exists()
    assert status_of(request) == "in_review"

    done = reviewer.post(links["approve"], {"comment": "From my phone"})
    assert done.status_code == 200
    assert "Your approval of “Laptop” was sent. It counts as soon as" in done.content.decode()
    wait_until(lambda: status_of(request) == "approved", what="approved through the signal")
    assert request.events.get(kind="approval").comment == "From my phone"

    again = reviewer.post(links["approve"])
    assert again.status_code == 409
    assert "already used" in again.content.decode()


def test_bad_links_get_a_clear_page_and_change_nothing(
    use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    request = submitted(people, purchase)
    links = links_in_email("reviewer1@example.com")
    reviewer1, reviewer2 = as_user(people["reviewer1"]), as_user(people["reviewer2"])

    forged = (
        links["approve"][:-6] + ("AAAAAA" if not links["approve"].endswith("AAAAAA/") else "BBBBBB") + "/"
    )
    response = reviewer1.post(forged)
    assert response.status_code == 400 and "This link is not valid" in response.content.decode()

    response = reviewer2.post(links["approve"])  # reviewer1's link
    assert response.status_code == 403 and "sent to someone else" in response.content.decode()

    response = reviewer1.post(links["reject"], {"comment": "  "})
    assert response.status_code == 400 and "A comment is required to reject" in response.content.decode()

    ApprovalRequest.objects.filter(pk=request.pk).update(deadline=timezone.now() - timedelta(minutes=1))
    request.refresh_from_db()
    expired = path(
        services.email_link_make(user=people["reviewer1"], request=request, action=ActionKind.APPROVE)
    )
    response = reviewer1.get(expired)
    assert response.status_code == 410 and "expired" in response.content.decode()

    assert not EmailLinkUse.objects.exists()
    assert status_of(request) == "in_review"

    # The other reviewer decides in the app: reviewer1's links stop working.
    services.request_act(
        request=request, actor=people["reviewer2"], kind=ActionKind.REJECT, comment="No budget"
    )
    wait_until(lambda: status_of(request) == "rejected", what="rejected")
    response = reviewer1.post(links["approve"])
    assert response.status_code == 409
    assert "This request is rejected by reviewer2" in response.content.decode()


def test_a_link_for_a_stage_that_started_again_no_longer_works(
    use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    request = submitted(people, purchase)
    links = links_in_email("reviewer1@example.com")
    services.request_act(
        request=request, actor=people["reviewer2"], kind=ActionKind.REQUEST_CHANGES, comment="More detail"
    )
    wait_until(lambda: status_of(request) == "changes_requested", what="changes requested")
    request.refresh_from_db()
    services.request_act(
        request=request, actor=people["requester"], kind=ActionKind.RESUBMIT, title="Laptop, 14in"
    )
    wait_until(lambda: ApprovalRequest.objects.get(pk=request.pk).stage_version == 2, what="stage restarted")

    response = as_user(people["reviewer1"]).post(links["approve"])
    assert response.status_code == 409
    assert "closed or has started again" in response.content.decode()
    assert status_of(request) == "in_review"
