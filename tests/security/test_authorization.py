"""Who may do what: every route tried by an anonymous visitor, an unrelated user, the requester,
a reviewer of another stage and staff; CSRF on every POST, htmx ones included; nothing changes
on GET; ids that cannot be guessed."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from approvals import services
from approvals.models import (
    EmailLinkUse,
    RequestEvent,
    RequestStatus,
    RequestType,
    StaffAction,
    Stage,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscriber,
)
from approvals.services import tokens
from tests.conftest import PASSWORD, make_request
from workflows.types import ActionKind

HTMX = {"HTTP_HX_REQUEST": "true"}
ACTORS = ["anonymous", "outsider", "requester", "manager", "admin"]


@pytest.fixture
def travel(people: dict[str, User]) -> RequestType:
    """Two stages: reviewer1 first, then the manager (so the manager reviews another stage)."""
    travel = RequestType.objects.create(name="Travel", slug="travel")
    first = Stage.objects.create(request_type=travel, order=1, name="Team", deadline=timedelta(days=2))
    first.approver_users.set([people["reviewer1"]])
    second = Stage.objects.create(request_type=travel, order=2, name="Finance", deadline=timedelta(days=2))
    second.approver_users.set([people["manager"]])
    return travel


def failing_delivery(people: dict[str, User]) -> tuple[WebhookSubscriber, WebhookDelivery]:
    """A subscriber staff registered, and a delivery to it that gave up."""
    subscriber = services.subscriber_save(
        subscriber=None,
        url="https://erp.example.com/",
        description="",
        events=["request.decided"],
        is_active=True,
        by=people["admin"],
    )
    event = WebhookEvent.objects.create(
        type="request.decided", source="test", payload={}, occurred_at=timezone.now()
    )
    return subscriber, WebhookDelivery.objects.create(event=event, subscriber=subscriber, status="failing")


def client_for(people: dict[str, User], who: str, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    if who != "anonymous":
        assert client.login(username=people[who].username, password=PASSWORD)
    return client


def outcome(response: Any) -> str:
    """What happened, in a word: the status, and where a redirect went."""
    if response.status_code == 302:
        location = response["Location"]
        return (
            "admin login"
            if location.startswith("/admin/login/")
            else ("login" if location.startswith("/accounts/login/") else f"302 {location}")
        )
    return str(response.status_code)


def test_every_route_refuses_whoever_should_not_use_it_and_nothing_changes(
    people: dict[str, User], travel: RequestType, temporal_unreachable: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    request = make_request(people, travel, started=True)  # in its first stage: reviewer1's
    rid = request.public_id
    link = services.email_link_make(user=people["reviewer1"], request=request, action=ActionKind.APPROVE)
    token, _ = tokens.token_create(user=people["requester"], name="bot", scopes=["read"])
    email_path = link.removeprefix("http://127.0.0.1:8000")
    subscriber, delivery = failing_delivery(people)

    def act(kind: str, **extra: Any) -> tuple[str, str, dict[str, Any]]:
        return (
            "post",
            reverse("request_act", args=[rid]),
            {"kind": kind, "action_id": uuid.uuid4(), **extra},
        )

    not_there = "404"  # not theirs to see: exactly as if it did not exist
    routes: list[tuple[tuple[str, str, dict[str, Any]], dict[str, str]]] = [
        (
            ("get", request.get_absolute_url(), {}),
            {"anonymous": "login", "outsider": not_there, "manager": not_there},
        ),
        (
            act("approve"),
            {
                "anonymous": "login",
                "outsider": not_there,
                "manager": not_there,
                "requester": "403",
                "admin": "403",
            },
        ),
        (
            act("reject", comment="no"),
            {
                "anonymous": "login",
                "outsider": not_there,
                "manager": not_there,
                "requester": "403",
                "admin": "403",
            },
        ),
        (
            act("request_changes", comment="why"),
            {
                "anonymous": "login",
                "outsider": not_there,
                "manager": not_there,
                "requester": "403",
                "admin": "403",
            },
        ),
        (
            act("delegate", delegate=people["outsider"].pk),
            {
                "anonymous": "login",
                "outsider": not_there,
                "manager": not_there,
                "requester": "403",
                "admin": "403",
            },
        ),
        (
            act("extend", extend_by="86400"),
            {
                "anonymous": "login",
                "outsider": not_there,
                "manager": not_there,
                "requester": "403",
                "admin": "403",
            },
        ),
        (
            act("comment", comment="hi"),
            {"anonymous": "login", "outsider": not_there, "manager": not_there, "admin": "403"},
        ),
        (
            act("withdraw"),
            {"anonymous": "login", "outsider": not_there, "manager": not_there, "admin": "403"},
        ),
        # Not a kind the form knows: only staff cancel, from the dashboard.
        (
            act("cancel", comment="mine now"),
            {
                "anonymous": "login",
                "outsider": not_there,
                "manager": not_there,
                "requester": "400",
                "admin": "400",
            },
        ),
        (
            (
                "post",
                reverse("request_resubmit", args=[rid]),
                {"action_id": uuid.uuid4(), "title": "Changed"},
            ),
            {"anonymous": "login", "outsider": not_there, "manager": not_there, "admin": "403"},
        ),
        (
            ("get", email_path, {}),
            {"anonymous": "login", "outsider": "403", "requester": "403", "manager": "403", "admin": "403"},
        ),
        (
            ("post", email_path, {}),
            {"anonymous": "login", "outsider": "403", "requester": "403", "manager": "403", "admin": "403"},
        ),
        (("get", reverse("inbox_requesters"), {}), {"anonymous": "login"}),
        (
            ("get", reverse("dashboard"), {}),
            {
                "anonymous": "login",
                "outsider": "403",
                "requester": "403",
                "manager": "403",
            },
        ),
        (
            ("get", reverse("dashboard_export"), {}),
            {
                "anonymous": "login",
                "outsider": "403",
                "requester": "403",
                "manager": "403",
            },
        ),
        (
            ("get", reverse("dashboard_workflows"), {}),
            {
                "anonymous": "login",
                "outsider": "403",
                "requester": "403",
                "manager": "403",
            },
        ),
        (
            ("post", reverse("dashboard_cancel", args=[rid]), {"reason": "x"}),
            {
                "anonymous": "login",
                "outsider": "403",
                "requester": "403",
                "manager": "403",
            },
        ),
        (
            ("post", reverse("dashboard_retry", args=[rid]), {}),
            {
                "anonymous": "login",
                "outsider": "403",
                "requester": "403",
                "manager": "403",
            },
        ),
        (
            ("get", reverse("mailbox"), {}),
            {
                "anonymous": "login",
                "outsider": "403",
                "requester": "403",
                "manager": "403",
            },
        ),
        *(
            (route, {"anonymous": "login", "outsider": "403", "requester": "403", "manager": "403"})
            for route in [
                ("get", reverse("webhooks"), {}),
                (
                    "post",
                    reverse("webhooks"),
                    {"url": "https://x.example.com/", "events": ["request.decided"]},
                ),
                ("get", reverse("webhook_detail", args=[subscriber.pk]), {}),
                ("post", reverse("webhook_detail", args=[subscriber.pk]), {"url": "https://y.example.com/"}),
                ("post", reverse("webhook_redeliver", args=[delivery.pk]), {}),
            ]
        ),
        (
            ("get", "/admin/approvals/webhooksubscriber/", {}),
            {
                "anonymous": "admin login",
                "outsider": "admin login",
                "requester": "admin login",
                "manager": "admin login",
            },
        ),
        (("get", reverse("tokens"), {}), {"anonymous": "login"}),
        (
            ("post", reverse("token_revoke", args=[token.pk]), {}),
            {"anonymous": "login", "outsider": "404", "manager": "404"},
        ),
        (
            ("get", "/admin/approvals/apitoken/", {}),
            {
                "anonymous": "admin login",
                "outsider": "admin login",
                "requester": "admin login",
                "manager": "admin login",
            },
        ),
        (
            ("get", "/admin/", {}),
            {
                "anonymous": "admin login",
                "outsider": "admin login",
                "requester": "admin login",
                "manager": "admin login",
            },
        ),
        (
            ("get", f"/admin/approvals/approvalrequest/{request.pk}/change/", {}),
            {
                "anonymous": "admin login",
                "outsider": "admin login",
                "requester": "admin login",
                "manager": "admin login",
            },
        ),
    ]
    for (method, url, data), refusals in routes:
        for who in ACTORS:
            caplog.clear()
            response = getattr(client_for(people, who), method)(url, data)
            if who in refusals:
                assert outcome(response) == refusals[who], (who, method, url, data.get("kind"))
                if who != "anonymous" and refusals[who] != "400":  # a logged-in person refused: on record
                    refused = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
                    assert any(people[who].username in m for m in refused), (who, method, url, refused)

    # The lists show each person their own and nothing else.
    for who, sees in [("outsider", False), ("manager", False), ("requester", True), ("reviewer1", True)]:
        page = (
            client_for(people, who).get(reverse("home" if who == "requester" else "inbox")).content.decode()
        )
        assert (request.title in page) is sees, who
    bulk = {"kind": "approve", "bulk_id": uuid.uuid4(), "ids": [rid]}
    for who in ("outsider", "manager"):
        answer = client_for(people, who).post(reverse("inbox_bulk"), bulk, **HTMX).content.decode()
        assert "There is no such request." in answer and request.title not in answer

    # After all of that, nothing happened to the request.
    before = (request.status, request.title, request.version)
    request.refresh_from_db()
    assert before == (RequestStatus.IN_REVIEW, "New laptop", request.version)
    assert list(RequestEvent.objects.values_list("kind", flat=True)) == ["submitted", "stage_started"]
    assert not EmailLinkUse.objects.exists()
    # Only staff changed a subscriber or redelivered (and staff only reached the staff actions;
    # Temporal being away, they were refused, on record).
    subscriber.refresh_from_db()
    delivery.refresh_from_db()
    assert WebhookSubscriber.objects.count() == 2  # staff's one
    assert (subscriber.url, delivery.round, delivery.redelivered_by) == (
        "https://erp.example.com/",
        2,
        people["admin"],
    )
    assert set(StaffAction.objects.values_list("actor__username", "ok")) == {("admin", False)}


def test_requests_are_addressed_by_random_ids_only(people: dict[str, User], purchase: RequestType) -> None:
    first, second = make_request(people, purchase), make_request(people, purchase)
    for request in (first, second):
        assert uuid.UUID(str(request.public_id)).version == 4
        assert request.get_absolute_url() == f"/requests/{request.public_id}/"  # 122 random bits
    client = client_for(people, "requester")
    assert client.get(f"/requests/{first.pk}/").status_code == 404  # no route by database id
    assert client.get(first.get_absolute_url()).status_code == 200


def test_changes_need_a_post_and_every_post_needs_the_csrf_token(
    people: dict[str, User], purchase: RequestType, temporal_unreachable: str
) -> None:
    request = make_request(people, purchase, started=True)
    rid = request.public_id
    token, _ = tokens.token_create(user=people["admin"], name="bot", scopes=["read"])
    subscriber, delivery = failing_delivery(people)
    posts = {
        reverse("request_act", args=[rid]): {"kind": "comment", "comment": "hi", "action_id": uuid.uuid4()},
        reverse("request_resubmit", args=[rid]): {"title": "x", "action_id": uuid.uuid4()},
        reverse("inbox_bulk"): {"kind": "approve", "bulk_id": uuid.uuid4(), "ids": [rid]},
        reverse("request_create"): {"submission_id": uuid.uuid4(), "request_type": purchase.pk, "title": "t"},
        reverse("dashboard_cancel", args=[rid]): {"reason": "x"},
        reverse("dashboard_retry", args=[rid]): {},
        reverse("logout"): {},
        reverse("tokens"): {"name": "bot", "scopes": ["read"], "expires": "30"},
        reverse("token_revoke", args=[token.pk]): {},
        reverse("webhooks"): {"url": "https://x.example.com/", "events": ["request.decided"]},
        reverse("webhook_detail", args=[subscriber.pk]): {
            "url": "https://y.example.com/",
            "events": ["request.decided"],
        },
        reverse("webhook_redeliver", args=[delivery.pk]): {},
    }
    admin = client_for(people, "admin", enforce_csrf_checks=True)
    for url in posts:
        pages = [reverse(name) for name in ("request_create", "tokens", "webhooks")]
        if url not in [*pages, reverse("webhook_detail", args=[subscriber.pk])]:
            assert admin.get(url).status_code == 405, url  # a link or a prefetch can never change anything
    for url, data in posts.items():
        for headers in ({}, HTMX):
            refused = admin.post(url, data, **headers)
            assert refused.status_code == 403, url
            assert "This form has expired" in refused.content.decode()
    login = Client(enforce_csrf_checks=True).post(
        "/accounts/login/", {"username": "admin", "password": PASSWORD}
    )
    assert login.status_code == 403
    request.refresh_from_db()
    assert request.status == RequestStatus.IN_REVIEW and not StaffAction.objects.exists()

    # htmx sends the token in a header, taken from the page (hx-headers on <body>): that passes.
    reviewer = client_for(people, "reviewer1", enforce_csrf_checks=True)
    page = reviewer.get(reverse("inbox")).content.decode()
    token = page.split('"X-CSRFToken": "', 1)[1].split('"', 1)[0]
    url = reverse("request_act", args=[rid])
    allowed = reviewer.post(url, posts[url], HTTP_X_CSRFTOKEN=token, **HTMX)
    assert allowed.status_code == 409  # on to the workflow, which is away in this test
    assert "The workflow service did not answer" in allowed.content.decode()
