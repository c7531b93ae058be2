"""Every action on a request, from the browser's POST through the workflow to the read model."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone
from temporalio.client import Client as TemporalClient
from temporalio.client import WorkflowExecutionStatus

from approvals import client as temporal_client
from approvals import services
from approvals.exceptions import ActionRefused
from approvals.models import ApprovalRequest, OutboundEmail, PendingAction, RequestType
from approvals.services import actions
from tests.conftest import LoopThread, as_user, at_once, wait_until
from workflows.types import Action, ActionKind

pytestmark = pytest.mark.temporal_server
HTMX = {"HTTP_HX_REQUEST": "true"}


def submitted(people: dict[str, User], request_type: RequestType, **fields: Any) -> ApprovalRequest:
    request = services.request_submit(
        requester=people["requester"], request_type=request_type, title=fields.pop("title", "Desk"), **fields
    )
    wait_until(lambda: request.participants.filter(pending=True).exists(), what="the stage's approvers")
    request.refresh_from_db()
    return request


def post(user: User, request: ApprovalRequest, kind: str, **fields: Any) -> Any:
    data = {"kind": kind, "action_id": fields.pop("action_id", uuid.uuid4()), **fields}
    target = {"HTTP_HX_TARGET": f"actions-{request.public_id}"}
    return as_user(user).post(reverse("request_act", args=[request.public_id]), data, **HTMX, **target)


def status_of(request: ApprovalRequest) -> str:
    return ApprovalRequest.objects.get(pk=request.pk).status


def test_changes_requested_then_edited_and_resubmitted_then_approved(
    use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    request = submitted(people, purchase, amount=300)
    response = post(people["reviewer1"], request, "request_changes", comment="Which brand?")
    assert response.status_code == 200
    assert "Changes are requested from the requester." in response.content.decode()
    wait_until(lambda: status_of(request) == "changes_requested", what="changes requested")
    wait_until(lambda: OutboundEmail.objects.filter(kind="changes_requested").exists(), what="email")
    assert OutboundEmail.objects.get(kind="changes_requested").to == "requester@example.com"

    # While changes are requested, reviewers cannot decide, and only the requester resubmits.
    refused = post(people["reviewer2"], request, "approve")
    assert refused.status_code == 409
    assert "the requester has to resubmit" in refused.content.decode()
    page = as_user(people["requester"]).get(request.get_absolute_url()).content.decode()
    assert "Edit and resubmit" in page

    resubmit = as_user(people["requester"]).post(
        reverse("request_resubmit", args=[request.public_id]),
        {
            "title": "Desk, oak",
            "details": "Brand: Nordwood",
            "amount": "320.00",
            "comment": "Added the brand",
        },
        **HTMX,
        HTTP_HX_TARGET=f"actions-{request.public_id}",
    )
    assert resubmit.status_code == 400  # the form token is missing: nothing is sent
    resubmit = as_user(people["requester"]).post(
        reverse("request_resubmit", args=[request.public_id]),
        {
            "action_id": uuid.uuid4(),
            "title": "Desk, oak",
            "details": "Brand: Nordwood",
            "amount": "320.00",
            "comment": "Added the brand",
        },
        **HTMX,
        HTTP_HX_TARGET=f"actions-{request.public_id}",
    )
    assert resubmit.status_code == 200, resubmit.content.decode()
    assert "review starts again" in resubmit.content.decode()
    wait_until(lambda: ApprovalRequest.objects.get(pk=request.pk).revision == 2, what="revision 2")
    request.refresh_from_db()
    assert (request.title, request.details, str(request.amount)) == ("Desk, oak", "Brand: Nordwood", "320.00")
    assert list(request.revisions.values_list("number", "title")) == [(1, "Desk"), (2, "Desk, oak")]
    wait_until(lambda: request.participants.filter(pending=True).count() == 2, what="stage restarted")

    assert post(people["reviewer2"], request, "approve").status_code == 200
    wait_until(lambda: status_of(request) == "approved", what="approved")
    kinds = list(request.events.values_list("kind", flat=True))
    assert kinds.count("stage_started") == 2
    assert "resubmitted" in kinds


def test_withdraw_stops_the_request_and_later_decisions_are_told_why(
    use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    request = submitted(people, purchase)
    assert post(people["reviewer1"], request, "withdraw").status_code == 403  # only the requester
    response = post(people["requester"], request, "withdraw", comment="Bought it myself")
    assert response.status_code == 200
    assert "The request is withdrawn." in response.content.decode()
    wait_until(lambda: status_of(request) == "withdrawn", what="withdrawn")
    wait_until(
        lambda: OutboundEmail.objects.filter(kind="withdrawn").count() == 2, what="emails to reviewers"
    )

    late = post(people["reviewer1"], request, "approve")
    assert late.status_code == 409
    assert "already withdrawn by requester" in late.content.decode()


def test_comments_from_participants_only(
    use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    request = submitted(people, purchase)
    assert post(people["requester"], request, "comment", comment="It is urgent").status_code == 200
    assert post(people["reviewer2"], request, "comment", comment="Looking at it").status_code == 200
    assert (
        post(people["outsider"], request, "comment", comment="Spam").status_code == 404
    )  # not theirs to see
    assert post(people["reviewer2"], request, "comment", comment="  ").status_code == 400
    wait_until(lambda: request.events.filter(kind="comment").count() == 2, what="comments")
    assert list(request.events.filter(kind="comment").values_list("actor_name", "comment")) == [
        ("requester", "It is urgent"),
        ("reviewer2", "Looking at it"),
    ]


def test_delegate_then_the_delegate_decides(
    use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    request = submitted(people, purchase)
    refused = post(people["reviewer1"], request, "delegate", delegate=people["requester"].pk)
    assert refused.status_code == 400
    assert "cannot approve their own request" in refused.content.decode()

    # Only someone who reviews requests here (a policy asks them) may take a stage.
    for nobody in ("outsider", "admin"):
        refused = post(people["reviewer1"], request, "delegate", delegate=people[nobody].pk)
        assert refused.status_code == 400
        assert f"{nobody} does not review requests here" in refused.content.decode()
    page = as_user(people["reviewer1"]).get(request.get_absolute_url()).content.decode()
    options = page.split('name="delegate"')[1].split("</select>")[0]
    assert ">manager<" in options and ">outsider<" not in options and ">admin<" not in options

    response = post(
        people["reviewer1"], request, "delegate", delegate=people["manager"].pk, comment="On leave"
    )
    assert response.status_code == 200
    assert "manager now acts in your place." in response.content.decode()
    wait_until(
        lambda: request.participants.filter(user=people["manager"], pending=True).exists(), what="delegate"
    )
    assert not request.participants.get(user=people["reviewer1"]).pending
    inbox = as_user(people["manager"]).get(reverse("inbox")).content.decode()
    assert f'id="request-{request.public_id}"' in inbox and "Approve" in inbox

    assert post(people["manager"], request, "approve", comment="Approved for reviewer1").status_code == 200
    wait_until(lambda: status_of(request) == "approved", what="approved")
    assert request.events.filter(kind="delegated", actor_name="reviewer1", detail="to manager").exists()


def test_need_more_time_moves_the_deadline_with_an_audit_entry(
    use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    request = submitted(people, purchase)
    before = request.deadline
    response = post(people["reviewer2"], request, "extend", extend_by="86400", comment="Waiting for a quote")
    assert response.status_code == 200
    wait_until(lambda: ApprovalRequest.objects.get(pk=request.pk).deadline != before, what="new deadline")
    request.refresh_from_db()
    assert request.deadline - before == timedelta(days=1)
    entry = request.events.get(kind="extended")
    assert (entry.actor_name, entry.comment) == ("reviewer2", "Waiting for a quote")
    assert post(people["reviewer2"], request, "extend").status_code == 400  # how long is required


def test_the_same_approval_posted_twice_counts_once(
    use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    purchase.stages.update(rule="all")  # both reviewers: the request stays open after one approval
    request = submitted(people, purchase)
    action_id = uuid.uuid4()
    first = post(people["reviewer1"], request, "approve", action_id=action_id)
    second = post(people["reviewer1"], request, "approve", action_id=action_id)  # a double click
    assert first.status_code == second.status_code == 200
    assert "Your approval is recorded (1 of 2)." in second.content.decode()
    again = post(people["reviewer1"], request, "approve")  # a new form, the same person
    assert again.status_code == 409
    assert "You already approved stage “Review”" in again.content.decode()
    wait_until(lambda: request.events.filter(kind="approval").exists(), what="the approval")
    assert request.events.filter(kind="approval").count() == 1
    assert status_of(request) == "in_review"


def test_editing_the_policy_does_not_change_requests_in_flight(
    use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    request = submitted(people, purchase)
    stage = purchase.stages.get()
    stage.approver_users.set([people["manager"]])
    stage.deadline = timedelta(minutes=5)
    stage.save()

    state = temporal_client.query_state(request.public_id)
    assert sorted(a.name for a in state.pending()) == ["reviewer1", "reviewer2"]
    assert state.stage.deadline - state.stage.started_at == timedelta(days=3)
    later = submitted(people, purchase, title="Chair")
    assert list(later.participants.values_list("user__username", flat=True)) == ["manager"]


def test_bulk_approve_goes_through_each_workflow_and_reports_each_request(
    use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    first = submitted(people, purchase, title="Desk", amount=300)
    second = submitted(people, purchase, title="Chair", amount=100)
    taken = submitted(people, purchase, title="Lamp", amount=40)
    assert post(people["reviewer2"], taken, "approve").status_code == 200
    wait_until(lambda: status_of(taken) == "approved", what="the lamp approved")

    bulk_id = uuid.uuid4()
    data = {
        "kind": "approve",
        "bulk_id": bulk_id,
        "comment": "Fine by me",
        "ids": [first.public_id, second.public_id, taken.public_id],
    }
    reviewer = as_user(people["reviewer1"])
    response = reviewer.post(reverse("inbox_bulk"), data, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "2 of 3 done, 1 refused" in html
    assert "already approved by reviewer2" in html
    wait_until(lambda: status_of(first) == status_of(second) == "approved", what="both approved")
    assert ApprovalRequest.objects.get(pk=first.pk).decision_comment == "Fine by me"

    # The same bulk form sent again (a double click) counts once per request.
    again = reviewer.post(reverse("inbox_bulk"), data, **HTMX).content.decode()
    approvals = first.events.filter(kind="approval").count() + second.events.filter(kind="approval").count()
    assert approvals == 2
    assert "Refused" not in again and "did not answer" not in again


def test_a_double_click_sent_at_once_counts_once(
    use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    purchase.stages.update(rule="all")
    request = submitted(people, purchase)
    action_id = uuid.uuid4()
    responses = at_once(*(lambda: post(people["reviewer1"], request, "approve", action_id=action_id),) * 2)
    assert [r.status_code for r in responses] == [200, 200]
    assert all("Your approval is recorded (1 of 2)." in r.content.decode() for r in responses)
    wait_until(lambda: request.events.filter(kind="approval").exists(), what="the approval")
    assert request.events.filter(kind="approval").count() == 1


def test_two_reviewers_deciding_a_one_of_two_stage_at_once_one_wins_the_other_is_told(
    use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    request = submitted(people, purchase)
    first, second = at_once(
        lambda: post(people["reviewer1"], request, "approve", comment="Yes"),
        lambda: post(people["reviewer2"], request, "reject", comment="No"),
    )
    codes = sorted([first.status_code, second.status_code])
    assert codes == [200, 409], codes
    loser = first if first.status_code == 409 else second
    wait_until(lambda: status_of(request) in ("approved", "rejected"), what="the decision")
    request.refresh_from_db()
    assert (
        f"This request is already {request.status} by {request.decided_by_name} at " in loser.content.decode()
    )
    decisions = request.events.filter(kind__in=["approval", "rejected"])
    assert decisions.count() == 1 and decisions.get().actor == request.decided_by


@pytest.mark.parametrize("start", [-0.3, 0.0, 0.3], ids=["before", "at", "after"])
def test_a_decision_racing_the_deadline_has_one_outcome_and_the_late_one_is_told(
    start: float,
    use_dev_server: TemporalClient,
    loop: LoopThread,
    monkeypatch: pytest.MonkeyPatch,
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    purchase.stages.update(deadline=timedelta(seconds=3))
    purchase.stages.get().escalation_levels.all().delete()
    request = submitted(people, purchase)
    read_before_the_deadline = [ApprovalRequest.objects.get(pk=request.pk) for _ in range(2)]

    # Reviewers keep approving from just before the deadline until the request closes: whichever
    # reaches the workflow first decides, and every later answer says plainly that it is closed.
    time.sleep(max(0.0, (request.deadline - timezone.now()).total_seconds() + start))
    answers = []
    while not answers or (status_of(request) == "in_review" and len(answers) < 200):
        answers.append(post(people["reviewer1"], request, "approve"))
    wait_until(lambda: status_of(request) != "in_review", what="the request to close")
    request.refresh_from_db()
    decisions = request.events.filter(kind__in=["approval", "expired"])
    assert decisions.count() == 1 and request.status in ("approved", "expired")
    accepted = [a for a in answers if a.status_code == 200]
    assert len(accepted) == (request.status == "approved")
    for late in answers[len(accepted) :]:
        assert late.status_code == 409 and "This request is already" in late.content.decode()

    # An action built from what was seen before the close reaches a workflow that has finished:
    # it is told the request is closed, not that Temporal did not answer.
    handle = use_dev_server.get_workflow_handle(request.workflow_id)
    wait_until(lambda: loop.run(handle.describe()).status != WorkflowExecutionStatus.RUNNING, what="the end")
    closed = f"This request is already {request.status}"
    with pytest.raises(ActionRefused, match=closed):
        services.request_act(
            request=read_before_the_deadline[0], actor=people["reviewer2"], kind=ActionKind.APPROVE
        )
    monkeypatch.setattr(actions, "requests_visible", lambda **_: read_before_the_deadline[1:])
    [bulk] = services.requests_act_bulk(
        actor=people["reviewer2"],
        public_ids=[request.public_id],
        kind=ActionKind.APPROVE,
        comment="",
        bulk_id=uuid.uuid4(),
    )
    assert not bulk.ok and bulk.message.startswith(closed)
    assert request.events.filter(kind__in=["approval", "expired"]).count() == 1
    outcome_emails = OutboundEmail.objects.filter(request=request, kind__in=["decided", "expired"])
    wait_until(outcome_emails.exists, what="the requester's email")
    assert list(outcome_emails.values_list("kind", "to")) == [
        ("decided" if request.status == "approved" else "expired", "requester@example.com")
    ]


def test_a_bulk_decision_is_held_and_undone_at_once_and_each_row_offers_its_own_undo(
    use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    purchase.undo_seconds = 60
    purchase.save()
    first = submitted(people, purchase, title="Desk", amount=300)
    second = submitted(people, purchase, title="Chair", amount=100)
    bulk_id = uuid.uuid4()
    reviewer = as_user(people["reviewer1"])
    ids = [first.public_id, second.public_id]
    data = {"kind": "approve", "bulk_id": bulk_id, "comment": "Fine", "ids": ids}

    html = reviewer.post(reverse("inbox_bulk"), data, **HTMX).content.decode()

    assert "2 of 2 done" in html and "2 decisions take effect" in html and "Undo all 2" in html
    assert html.count('data-testid="held"') == 2  # each row: its own Undo
    assert status_of(first) == status_of(second) == "in_review"
    # Nobody else may undo them, and a bulk undo without its decision's id is refused.
    other = as_user(people["reviewer2"]).post(
        reverse("inbox_bulk"),
        {"kind": "undo", "bulk_id": uuid.uuid4(), "undo_of": bulk_id, "ids": ids},
        **HTMX,
    )
    assert (
        other.content.decode().count("not an approver") + other.content.decode().count("Only the person") == 2
    )
    refused = reviewer.post(
        reverse("inbox_bulk"), {"kind": "undo", "bulk_id": uuid.uuid4(), "ids": ids}, **HTMX
    )
    assert refused.status_code == 400 and "Say which bulk decision to undo." in refused.content.decode()

    undo = {"kind": "undo", "bulk_id": uuid.uuid4(), "undo_of": bulk_id, "ids": ids}
    html = reviewer.post(reverse("inbox_bulk"), undo, **HTMX).content.decode()

    assert "2 of 2 undone" in html and html.count("Your approval is undone") == 2
    for request in (first, second):
        assert list(request.events.values_list("kind", flat=True))[-2:] == ["held", "undone"]
        assert status_of(request) == "in_review"
    assert not OutboundEmail.objects.filter(kind="decided").exists()


def test_an_email_link_decision_says_where_it_stands_until_it_settles(
    use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    purchase.undo_seconds = 60
    purchase.save()
    request = submitted(people, purchase)
    link = services.email_link_make(user=people["reviewer1"], request=request, action=ActionKind.APPROVE)
    reviewer = as_user(people["reviewer1"])

    page = reviewer.post(urlsplit(link).path, {"comment": "ok"}).content.decode()
    assert 'data-testid="decision-status"' in page
    wait_until(lambda: request.events.filter(kind="held").exists(), what="the decision held")
    action_id = request.events.get(kind="held").action_id
    status = reverse("decision_status", args=[request.public_id, action_id])

    held = reviewer.get(status).content.decode()
    assert 'data-status="held"' in held and "takes effect" in held and "Undo" in held
    # Someone else who may see the request learns nothing of another's decision.
    assert 'data-status="unknown"' in as_user(people["reviewer2"]).get(status).content.decode()
    assert as_user(people["outsider"]).get(status).status_code == 404

    undone = reviewer.post(
        reverse("request_act", args=[request.public_id]),
        {"kind": "undo", "target": action_id, "action_id": uuid.uuid4()},
    )
    assert undone.status_code == 302
    assert 'data-status="undone"' in reviewer.get(status).content.decode()


def test_an_email_link_decision_that_arrives_after_the_request_moved_on_is_let_go_not_left_pending(
    use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    """The link was checked, and its approval noted as pending and signalled, while another
    reviewer's request for changes was on its way: the workflow takes the changes first and cannot
    take the approval. It says so in the timeline, so the approval is not shown as on its way for
    good (the request waits on its requester, and nothing else would clear it)."""
    request = submitted(people, purchase)
    services.request_signal(
        request=request,
        actor=people["reviewer1"],
        kind=ActionKind.REQUEST_CHANGES,
        comment="Which brand?",
        action_id=uuid.uuid4(),
    )
    wait_until(lambda: status_of(request) == "changes_requested", what="changes requested")
    # The approval in flight: noted and sent as request_signal does, once its check had passed.
    late = Action(ActionKind.APPROVE, people["reviewer2"].pk, "reviewer2", "", action_id=str(uuid.uuid4()))
    actions.pending_action_note(request=request, action=late, via=PendingAction.Via.EMAIL)
    temporal_client.send_signal(request.public_id, late)

    wait_until(lambda: not PendingAction.objects.filter(action_id=late.action_id).exists(), what="let go")
    lapsed = request.events.get(action_id=late.action_id)
    assert lapsed.kind == "lapsed" and lapsed.detail.startswith("reviewer2's approval, made at ")
    assert "did not take effect: " in lapsed.detail
    assert status_of(request) == "changes_requested"  # nothing else changed
    status = reverse("decision_status", args=[request.public_id, late.action_id])
    page = as_user(people["reviewer2"]).get(status).content.decode()
    assert 'data-status="lapsed"' in page and "did not take effect" in page
