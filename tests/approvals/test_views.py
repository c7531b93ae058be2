"""Views: full pages and HTMX fragments, bad input, permissions, and Temporal being away."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from approvals import services
from approvals.exceptions import ActionRefused, InvalidInput
from approvals.models import (
    ApprovalRequest,
    OutboundEmail,
    RequestEvent,
    RequestStatus,
    RequestType,
    StaffAction,
)
from tests.conftest import PASSWORD, make_request, project_action
from tests.workflows.helpers import action
from workflows import rules
from workflows.types import ActionKind

HTMX = {"HTTP_HX_REQUEST": "true"}


def login(client: Client, user: User) -> Client:
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_anonymous_users_are_sent_to_log_in(
    client: Client, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase, started=True)
    for url in ("/", "/inbox/", "/requests/new/", request.get_absolute_url()):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    response = client.post(
        reverse("request_act", args=[request.public_id]), {"kind": "approve", "action_id": uuid.uuid4()}
    )
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.status == RequestStatus.IN_REVIEW


def test_invalid_form_shows_field_errors_and_starts_nothing(
    client: Client, people: dict[str, User], purchase: RequestType, temporal_unreachable: str
) -> None:
    login(client, people["requester"])
    response = client.post(
        reverse("request_create"),
        {"submission_id": uuid.uuid4(), "request_type": purchase.pk, "title": "  ", "amount": "-5"},
    )
    assert response.status_code == 400
    body = response.content.decode()
    # The title (blank after trimming) and the amount, each said at the top and at its field.
    assert body.count("This field is required.") == 2
    assert "2 things to fix before this can be sent" in body
    assert '<a href="#id_title">Title: This field is required.</a>' in body
    assert '<a href="#id_amount">Amount: The amount cannot be negative.</a>' in body
    # The first bad field takes the cursor; each says it is invalid and what is wrong.
    title = body[body.index('name="title"') - 200 : body.index('name="title"') + 300]
    assert (
        "autofocus" in title
        and 'aria-invalid="true"' in title
        and 'aria-describedby="id_title-error"' in title
    )
    amount = body[body.index('name="amount"') - 200 : body.index('name="amount"') + 300]
    assert "autofocus" not in amount and 'aria-describedby="id_amount-error"' in amount
    response = client.post(
        reverse("request_create"),
        {"submission_id": uuid.uuid4(), "request_type": "9999", "title": "x", "amount": "ten"},
    )
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert "Enter a number." in response.content.decode()
    assert ApprovalRequest.objects.count() == 0


def test_request_type_without_a_policy_is_refused_clearly(
    client: Client, people: dict[str, User], purchase: RequestType
) -> None:
    purchase.stages.all().delete()
    login(client, people["requester"])
    response = client.post(
        reverse("request_create"),
        {"submission_id": uuid.uuid4(), "request_type": purchase.pk, "title": "Chair"},
    )
    assert response.status_code == 400
    assert "has no approval stages yet" in response.content.decode()
    assert ApprovalRequest.objects.count() == 0


def test_every_field_has_a_limit_that_the_form_shows_and_the_service_keeps(
    client: Client, people: dict[str, User], purchase: RequestType, temporal_unreachable: str
) -> None:
    login(client, people["requester"])
    form = client.get(reverse("request_create")).content.decode()
    assert f'maxlength="{rules.MAX_TITLE}"' in form and f'maxlength="{rules.MAX_DETAILS}"' in form
    # Two million characters of details: once accepted, every later change of the request
    # failed in Temporal (PAYLOADS_TOO_LARGE), and at 2.5 MB its workflow never started.
    for details in ("x" * 2_090_000, "x" * (rules.MAX_DETAILS + 1)):
        response = client.post(
            reverse("request_create"),
            {
                "submission_id": uuid.uuid4(),
                "request_type": purchase.pk,
                "title": "Time off",
                "details": details,
            },
        )
        assert response.status_code == 400
        assert f"Ensure this value has at most {rules.MAX_DETAILS} characters" in response.content.decode()
    assert not ApprovalRequest.objects.exists()
    with pytest.raises(InvalidInput, match=f"Details are limited to {rules.MAX_DETAILS} characters."):
        services.request_submit(
            requester=people["requester"], request_type=purchase, title="Time off", details="x" * 900_000
        )
    with pytest.raises(InvalidInput, match="Titles are limited"):
        services.request_submit(requester=people["requester"], request_type=purchase, title="x" * 201)


def test_submit_while_temporal_is_unreachable_keeps_the_request_and_says_so(
    client: Client, people: dict[str, User], purchase: RequestType, temporal_unreachable: str
) -> None:
    login(client, people["requester"])
    response = client.post(
        reverse("request_create"),
        {
            "submission_id": uuid.uuid4(),
            "request_type": purchase.pk,
            "title": "Standing desk",
            "details": "For my back",
            "amount": "450.00",
        },
        follow=True,
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "review will start as soon as it is back" in body
    request = ApprovalRequest.objects.get()
    assert response.redirect_chain == [(request.get_absolute_url(), 302)]
    assert request.workflow_started_at is None
    assert request.start_attempts == 1
    assert request.last_start_error
    assert request.policy["stages"][0]["name"] == "Review"  # the policy snapshot travels with it
    assert request.events.get().kind == "submitted"

    # Its reviewers are assigned by the workflow, so nobody can act on it yet; the requester
    # sees that it is waiting.
    home = client.get(reverse("home")).content.decode()
    assert "Standing desk" in home and "waiting for the workflow service" in home
    login(client, people["reviewer1"])
    assert "Standing desk" not in client.get(reverse("inbox")).content.decode()
    response = client.post(
        reverse("request_act", args=[request.public_id]), {"kind": "approve", "action_id": uuid.uuid4()}
    )
    assert response.status_code == 404  # not assigned yet, so not theirs to see, let alone decide


@pytest.mark.parametrize(
    ("who", "status", "expected", "logged"),
    [
        ("outsider", 404, "There is no such request, or you may not see it.", "not theirs to see"),
        ("manager", 404, "There is no such request, or you may not see it.", "not theirs to see"),
        ("requester", 403, "You cannot decide on your own request.", "to requester: approve: You cannot"),
        ("admin", 403, "You are not an approver of this request", "to admin: approve: You are not"),
    ],
)
def test_decision_from_someone_who_may_not_decide_is_refused_and_logged(
    client: Client,
    people: dict[str, User],
    purchase: RequestType,
    who: str,
    status: int,
    expected: str,
    logged: str,
    caplog: Any,
) -> None:
    request = make_request(people, purchase, started=True)
    version = request.version
    login(client, people[who])
    url = reverse("request_act", args=[request.public_id])
    with caplog.at_level(logging.WARNING, logger="approvals.refused"):
        response = client.post(url, {"kind": "approve", "comment": "sneaky", "action_id": uuid.uuid4()})
    assert response.status_code == status
    assert expected in response.content.decode()
    assert logged in caplog.text

    response = client.post(url, {"kind": "approve", "action_id": uuid.uuid4()}, **HTMX)
    assert response.status_code == status
    if status == 403:  # someone who may see the request is told why, where they acted
        assert response["HX-Retarget"] == f"#answer-{request.public_id}"
        assert "<html" not in response.content.decode()
    request.refresh_from_db()
    assert (request.status, request.version, request.decided_by) == (RequestStatus.IN_REVIEW, version, None)


def test_rejection_without_comment_and_decided_requests_are_refused(
    client: Client, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase, started=True)
    login(client, people["reviewer1"])
    url = reverse("request_act", args=[request.public_id])
    response = client.post(url, {"kind": "reject", "comment": " ", "action_id": uuid.uuid4()}, **HTMX)
    assert response.status_code == 400
    assert "A comment is required to reject or to request changes." in response.content.decode()
    response = client.post(url, {"kind": "maybe", "action_id": uuid.uuid4()}, **HTMX)
    assert response.status_code == 400

    project_action(request, action(ActionKind.APPROVE, people["reviewer2"]))
    response = client.post(url, {"kind": "approve", "action_id": uuid.uuid4()}, **HTMX)
    assert response.status_code == 409
    assert "already approved by reviewer2" in response.content.decode()


def test_a_refused_staff_cancel_is_on_record_too(people: dict[str, User], purchase: RequestType) -> None:
    request = make_request(people, purchase, started=True)
    admin = people["admin"]
    url = reverse("dashboard_cancel", args=[request.public_id])
    without_reason = login(Client(), admin).post(
        url, {"reason": " "}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="troubles"
    )
    assert "Say why the request is cancelled" in without_reason.content.decode()
    # A reason no database keeps as it is (NUL): refused, and on record as near as it can be.
    with pytest.raises(InvalidInput, match="cannot be kept"):
        services.request_cancel_by_staff(request=request, actor=admin, reason="Dup\x00licate")
    project_action(request, action(ActionKind.APPROVE, people["reviewer2"]))
    with pytest.raises(ActionRefused, match="already approved by reviewer2"):
        services.request_cancel_by_staff(request=request, actor=admin, reason="Not needed")

    records = StaffAction.objects.filter(request=request).order_by("pk")
    assert [(r.kind, r.ok, r.actor, r.reason) for r in records] == [
        (StaffAction.Kind.CANCEL, False, admin, ""),
        (StaffAction.Kind.CANCEL, False, admin, "Dup\ufffdlicate"),
        (StaffAction.Kind.CANCEL, False, admin, "Not needed"),
    ]
    assert records[0].outcome == "Say why the request is cancelled: the requester will read it."
    assert records[2].outcome.startswith("This request is already approved by reviewer2")


def test_full_pages_and_htmx_fragments(
    client: Client, people: dict[str, User], purchase: RequestType, temporal_unreachable: str
) -> None:
    request = make_request(people, purchase, started=True)
    login(client, people["reviewer1"])

    page = client.get(reverse("inbox")).content.decode()
    assert page.startswith("<!doctype html>")
    assert f'id="request-{request.public_id}"' in page
    fragment = client.get(reverse("inbox"), **HTMX).content.decode()
    assert "<html" not in fragment
    assert fragment.strip().startswith('<div id="inbox-list"')
    assert f'id="request-{request.public_id}"' in fragment

    page = client.get(request.get_absolute_url()).content.decode()
    assert "<html" in page and "New laptop" in page
    fragment = client.get(request.get_absolute_url(), **HTMX).content.decode()
    assert "<html" not in fragment
    assert fragment.strip().startswith(f'<div id="heading-{request.public_id}"')
    assert f'<section id="status-{request.public_id}"' in fragment
    assert "every" not in fragment  # no polling: changes arrive over the websocket


def test_only_the_requester_approvers_and_staff_see_a_request(
    client: Client, people: dict[str, User], purchase: RequestType, temporal_unreachable: str
) -> None:
    request = make_request(people, purchase, started=True)
    for who, status in [
        ("outsider", 404),
        ("manager", 404),
        ("requester", 200),
        ("reviewer2", 200),
        ("admin", 200),
    ]:
        login(client, people[who])
        assert client.get(request.get_absolute_url()).status_code == status, who


def test_mailbox_is_for_staff_only(client: Client, people: dict[str, User]) -> None:
    assert client.get(reverse("mailbox"))["Location"] == "/accounts/login/?next=/mailbox/"
    login(client, people["reviewer1"])
    refused = client.get(reverse("mailbox"))
    assert refused.status_code == 403
    assert "This page is for staff, and reviewer1 is not staff." in refused.content.decode()
    login(client, people["admin"])
    response = client.get(reverse("mailbox"))
    assert response.status_code == 200
    assert "No email yet." in response.content.decode()


def test_a_staff_page_sends_people_who_are_not_staff_to_a_page_that_says_so(
    client: Client, people: dict[str, User]
) -> None:
    login(client, people["requester"])
    for name in ("dashboard", "mailbox"):
        page = client.get(reverse(name))
        assert page.status_code == 403
        text = page.content.decode()
        assert "For staff only" in text and "requester is not staff" in text
        assert 'name="password"' not in text  # not a login form for someone logged in


@pytest.mark.parametrize("debug", [False, True])
def test_a_request_someone_may_not_see_is_our_not_found_page_with_debug_on_too(
    client: Client, people: dict[str, User], purchase: RequestType, settings: Any, debug: bool
) -> None:
    settings.DEBUG = debug
    request = make_request(people, purchase)
    login(client, people["outsider"])
    page = client.get(request.get_absolute_url())
    assert page.status_code == 404
    text = page.content.decode()
    assert "<h1>Not found</h1>" in text
    assert "URLconf" not in text and "request_act" not in text  # not Django's list of every route


def test_the_timeline_says_who_acted_once() -> None:
    stage_approved = RequestEvent(kind="stage_approved", actor_name="reviewer1", detail="by reviewer1")
    assert stage_approved.note == ""
    how = "automatically, as the policy allows"
    assert RequestEvent(kind="stage_approved", actor_name="policy", detail=how).note == how
    assert RequestEvent(kind="comment", actor_name="", detail="by reviewer1").note == "by reviewer1"


def test_staff_follow_a_request_into_temporals_ui_and_others_see_no_link(
    client: Client, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase, started=True)
    every_run = f"/namespaces/default/workflows?query=WorkflowId%3D%22{request.workflow_id}%22"
    login(client, people["admin"])
    assert every_run in client.get(request.get_absolute_url()).content.decode()
    login(client, people["requester"])
    assert "/namespaces/" not in client.get(request.get_absolute_url()).content.decode()


def test_the_admin_has_the_apps_icon(client: Client, people: dict[str, User], purchase: RequestType) -> None:
    login(client, people["admin"])
    for url in ("/admin/", f"/admin/approvals/requesttype/{purchase.pk}/change/", "/admin/login/"):
        assert 'rel="icon" href="/static/approvals/favicon.svg"' in client.get(url).content.decode(), url


def test_the_dashboards_dates_are_written_year_first(client: Client, people: dict[str, User]) -> None:
    login(client, people["admin"])
    page = client.get(reverse("dashboard"), {"since": "2026-05-01", "until": "2026-05-31"}).content.decode()
    assert 'value="2026-05-01"' in page and 'placeholder="YYYY-MM-DD"' in page
    assert 'type="date"' not in page  # the browser's locale would write it 05/01/2026


def test_the_navigation_marks_the_page_the_person_is_on(client: Client, people: dict[str, User]) -> None:
    login(client, people["admin"])
    pages = [("home", "My requests"), ("inbox", "Inbox"), ("dashboard", "Dashboard"), ("mailbox", "Mailbox")]
    for name, label in pages:
        page = client.get(reverse(name)).content.decode()
        nav = page[page.index('<nav aria-label="Main"') :]
        nav = nav[: nav.index("</nav>")]
        assert f'href="{reverse(name)}" aria-current="page">{label}' in nav, name
        assert nav.count('aria-current="page"') == 1, name


def test_the_mailbox_pages_searches_and_links(client: Client, people: dict[str, User]) -> None:
    link = "http://127.0.0.1:8000/email/act/" + "x" * 120 + "/"
    for n in range(30):
        OutboundEmail.objects.create(
            idempotency_key=f"k{n}",
            kind="assigned" if n % 2 else "decided",
            to=f"person{n}@example.com",
            subject=f"Subject {n}",
            body_text=f"Hello {n}.\nApprove: {link}\n",
            status=OutboundEmail.Status.SENT if n != 7 else OutboundEmail.Status.FAILED,
        )
    login(client, people["admin"])
    first = client.get(reverse("mailbox")).content.decode()
    assert first.count('<details class="mail card"') == 25 and "Page 1 of 2" in first and "30 emails" in first
    assert "Subject 29" in first and "Subject 4<" not in first  # newest first
    assert f'<a href="{link}"' in first  # links work
    second = client.get(reverse("mailbox"), {"page": "2"}).content.decode()
    assert second.count('<details class="mail card"') == 5
    found = client.get(reverse("mailbox"), {"q": "person12@"}).content.decode()
    assert found.count('<details class="mail card"') == 1 and "Subject 12" in found
    failed = client.get(reverse("mailbox"), {"status": "failed"}).content.decode()
    assert failed.count('<details class="mail card"') == 1 and "Subject 7" in failed
    assert "No email matches." in client.get(reverse("mailbox"), {"q": "nobody"}).content.decode()


def test_the_request_page_gives_the_deadline_exactly_and_as_people_say_it(
    client: Client, people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase, started=True)  # the purchase stage takes 3 days
    login(client, people["reviewer1"])
    page = client.get(request.get_absolute_url()).content.decode()
    assert "Deadline: <time" in page and ">in 3 days</time>" in page


def test_submitting_the_same_form_twice_makes_one_request(
    client: Client, people: dict[str, User], purchase: RequestType, temporal_unreachable: str
) -> None:
    login(client, people["requester"])
    form = {"submission_id": uuid.uuid4(), "request_type": purchase.pk, "title": "Desk lamp"}
    first = client.post(reverse("request_create"), form)
    second = client.post(reverse("request_create"), form)
    request = ApprovalRequest.objects.get()
    assert first["Location"] == second["Location"] == request.get_absolute_url()
    assert request.start_attempts == 1  # one workflow start attempted, by the first submission

    login(client, people["reviewer1"])
    response = client.post(reverse("request_create"), {**form, "title": "Hijack"})
    assert response.status_code == 400
    assert "already used by someone else" in response.content.decode()
    response = client.post(reverse("request_create"), {"request_type": purchase.pk, "title": "No token"})
    assert response.status_code == 400
    assert "reload the page and submit again" in response.content.decode()
    assert ApprovalRequest.objects.count() == 1


def test_lists_are_paginated_and_bad_page_numbers_are_harmless(
    client: Client, people: dict[str, User], purchase: RequestType, temporal_unreachable: str
) -> None:
    for _ in range(30):
        make_request(people, purchase, started=True)
    login(client, people["reviewer1"])
    first = client.get(reverse("inbox")).content.decode()
    assert first.count('<tr id="request-') == 25
    assert "Page 1 of 2" in first and 'data-testid="inbox-count">(30)</span>' in first
    assert client.get(reverse("inbox"), {"page": "2"}).content.decode().count('<tr id="request-') == 5
    assert client.get(reverse("inbox"), {"page": "999"}).content.decode().count('<tr id="request-') == 5
    assert client.get(reverse("inbox"), {"page": "x'; drop"}).status_code == 200
    login(client, people["requester"])
    mine = client.get(reverse("home"), {"page": "2"}).content.decode()
    assert mine.count('<tr id="mine-') == 5 and "Page 2 of 2" in mine


def test_the_staff_dashboard_counts_states_and_shows_what_is_late(
    client: Client, people: dict[str, User], purchase: RequestType, temporal_unreachable: str
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    late = make_request(people, purchase, started=True)
    ApprovalRequest.objects.filter(pk=late.pk).update(deadline=timezone.now() - timedelta(hours=2))
    make_request(people, purchase, started=True)
    make_request(people, purchase)  # not started yet
    login(client, people["reviewer1"])
    assert client.get(reverse("dashboard")).status_code == 403
    login(client, people["admin"])
    page = client.get(reverse("dashboard")).content.decode()
    assert 'data-testid="count-in_review">2<' in page
    assert 'data-testid="count-submitted">1<' in page
    assert 'data-testid="count-overdue">1<' in page
    assert "Waiting for Temporal" in page
