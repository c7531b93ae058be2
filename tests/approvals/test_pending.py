"""An action whose outcome is not known yet is told so, and shows as pending to its sender until
the read model confirms it: from the request's page, from a bulk action and from an email link.

Temporal's answers are played here by the client door (approvals.client) raising what it raises
when no answer comes in time; tests/integration/test_faults.py stops a real worker instead."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from approvals import client as temporal
from approvals import services
from approvals.models import ApprovalRequest, EmailLinkUse, PendingAction, RequestType
from approvals.services.actions import NOT_KNOWN_YET, pending_action_note
from tests.conftest import PASSWORD, make_request, project_action
from workflows.types import Action, ActionKind

HTMX = {"HTTP_HX_REQUEST": "true"}
PENDING = 'data-testid="pending-action"'


def login(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def page(client: Client, request: ApprovalRequest) -> str:
    return client.get(request.get_absolute_url()).content.decode()


@pytest.fixture
def no_answer(monkeypatch: pytest.MonkeyPatch) -> list[Action]:
    """Updates get no answer in time (as with the worker stopped); what was sent is kept."""
    sent: list[Action] = []

    def send_update(public_id: object, action: Action) -> Any:
        sent.append(action)
        raise temporal.Unanswered(accepted=False)

    def send_updates(actions: dict[Any, Action], concurrency: int) -> dict[Any, Any]:
        sent.extend(actions.values())
        return {key: temporal.Unanswered(accepted=False) for key in actions}

    monkeypatch.setattr(temporal, "send_update", send_update)
    monkeypatch.setattr(temporal, "send_updates", send_updates)
    return sent


def test_an_approval_with_no_answer_in_time_is_pending_until_the_read_model_confirms_it(
    people: dict[str, User], purchase: RequestType, no_answer: list[Action]
) -> None:
    request = make_request(people, purchase, started=True)
    reviewer = login(people["reviewer1"])
    url = reverse("request_act", args=[request.public_id])

    response = reviewer.post(url, {"kind": "approve", "action_id": uuid.uuid4()}, **HTMX)
    assert response.status_code == 202  # neither a failure nor a 500
    html = response.content.decode()
    assert PENDING in html and "Your approval, sent at" in html and "is pending" in html
    assert "Not recorded" not in html and "not recorded" not in html
    for shown in (page(reviewer, request), reviewer.get(reverse("inbox")).content.decode()):
        assert shown.count(PENDING) == 1
    assert PENDING not in page(login(people["reviewer2"]), request)  # the sender's own, only

    # Without htmx: the page, with the words and the pending action.
    response = reviewer.post(url, {"kind": "comment", "comment": "On it", "action_id": uuid.uuid4()})
    assert response.status_code == 302
    shown = reviewer.get(response["Location"]).content.decode()
    assert NOT_KNOWN_YET in shown and shown.count(PENDING) == 2

    # The workflow takes the comment (when the worker is back) and projects it: confirmed.
    approval, comment = no_answer
    assert PendingAction.objects.filter(action_id=comment.action_id).exists()
    project_action(request, comment)
    assert page(reviewer, request).count(PENDING) == 1  # the approval is still on its way
    # Long unconfirmed, it says so, and what to do.
    PendingAction.objects.update(sent_at=timezone.now() - timedelta(minutes=5))
    assert "is not confirmed yet" in page(reviewer, request)

    # The request ends before the approval arrives: nothing sent can count any more.
    project_action(request, Action(ActionKind.WITHDRAW, people["requester"].pk, "requester", "Not needed"))
    assert PENDING not in page(reviewer, request) and not PendingAction.objects.exists()


def test_an_action_the_read_model_shows_already_is_not_noted_as_pending(
    people: dict[str, User], purchase: RequestType
) -> None:
    """The projection may bring the action just before the answer times out: the note and the
    projection see each other (under the request's row lock)."""
    request = make_request(people, purchase, started=True)
    reviewer = people["reviewer1"]
    comment = Action(ActionKind.COMMENT, reviewer.pk, "reviewer1", "Hi", action_id=str(uuid.uuid4()))
    project_action(request, comment)
    pending_action_note(request=request, action=comment, via=PendingAction.Via.PAGE)
    assert not PendingAction.objects.exists()


def test_a_bulk_action_with_no_answer_in_time_is_pending_on_each_row(
    people: dict[str, User], purchase: RequestType, no_answer: list[Action]
) -> None:
    first, second = (make_request(people, purchase, started=True, title=t) for t in ("Desk", "Chair"))
    reviewer = login(people["reviewer1"])
    response = reviewer.post(
        reverse("inbox_bulk"),
        {"ids": [first.public_id, second.public_id], "kind": "approve", "bulk_id": uuid.uuid4()},
    )
    html = response.content.decode()
    assert response.status_code == 200 and "0 of 2 done, 2 not known yet" in html
    assert html.count(PENDING) == 2 and "(in a bulk action)" in html
    project_action(first, no_answer[0])
    assert reviewer.get(reverse("inbox")).content.decode().count(PENDING) == 1


@pytest.mark.parametrize("outcome", ["delivered", "timed out", "unreachable"])
def test_an_email_link_decision_is_pending_until_confirmed_and_told_as_it_went(
    people: dict[str, User], purchase: RequestType, monkeypatch: pytest.MonkeyPatch, outcome: str
) -> None:
    request = make_request(people, purchase, started=True)
    reviewer = login(people["reviewer1"])
    link = services.email_link_make(user=people["reviewer1"], request=request, action=ActionKind.APPROVE)
    signals: list[Action] = []

    def send_signal(public_id: object, action: Action) -> None:
        assert PendingAction.objects.filter(action_id=action.action_id).exists(), "noted before it is sent"
        signals.append(action)
        if outcome == "timed out":
            raise temporal.TimedOut("deadline exceeded")
        if outcome == "unreachable":
            raise temporal.Unreachable("connection refused")

    monkeypatch.setattr(temporal, "send_signal", send_signal)
    response = reviewer.post(urlsplit(link).path, {"comment": ""})
    html = response.content.decode()
    if outcome == "unreachable":
        assert response.status_code == 400 and "so this was not recorded" in html
        assert not PendingAction.objects.exists() and not EmailLinkUse.objects.exists()  # usable again
        return
    assert response.status_code == 200
    if outcome == "delivered":
        assert "Your approval of “New laptop” was sent. It counts as soon as" in html
    else:
        assert "did not confirm that it has it" in html
    shown = page(reviewer, request)
    assert PENDING in shown and "Your approval from an email link" in shown
    project_action(request, signals[0])
    assert PENDING not in page(reviewer, request)


def test_an_action_long_unconfirmed_that_can_no_longer_count_is_pending_no_more(
    people: dict[str, User], purchase: RequestType, no_answer: list[Action]
) -> None:
    """Its update never reached the workflow (Temporal lost it, say), and the reviewer approved
    again meanwhile: the first approval could not count any more, so it is not shown as pending.
    A comment still could, so it still is."""
    purchase.stages.update(rule="all")
    request = make_request(people, purchase, started=True)
    reviewer = login(people["reviewer1"])
    url = reverse("request_act", args=[request.public_id])
    reviewer.post(url, {"kind": "approve", "action_id": uuid.uuid4()}, **HTMX)
    reviewer.post(url, {"kind": "comment", "comment": "Later", "action_id": uuid.uuid4()}, **HTMX)
    assert page(reviewer, request).count(PENDING) == 2
    PendingAction.objects.update(sent_at=timezone.now() - timedelta(minutes=5))

    again = Action(ActionKind.APPROVE, people["reviewer1"].pk, "reviewer1", action_id=str(uuid.uuid4()))
    project_action(request, again)
    assert list(PendingAction.objects.values_list("kind", flat=True)) == ["comment"]
    assert "Your comment, sent at" in page(reviewer, request)
