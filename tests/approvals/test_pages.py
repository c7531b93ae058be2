"""The reviewer inbox's filters and bulk form, the requester's pages and the routing preview."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse
from django.utils import timezone

from approvals.models import (
    ApprovalRequest,
    Delegation,
    Participant,
    RequestRevision,
    RequestType,
    Stage,
)
from approvals.templatetags.approvals_tags import relative_due
from approvals.views import fragments
from tests.conftest import as_user, make_request, project, project_action
from tests.workflows.helpers import action
from workflows.types import ActionKind, Assignee, Content

HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "inbox-list"}


def rows(html: str) -> int:
    return html.count('<tr id="request-')


def titled(request: ApprovalRequest, title: str, **fields: object) -> ApprovalRequest:
    ApprovalRequest.objects.filter(pk=request.pk).update(title=title, **fields)
    request.refresh_from_db()
    return request


def test_inbox_filters_search_and_sort(people: dict[str, User], purchase: RequestType) -> None:
    other_type = RequestType.objects.create(name="Travel", slug="travel")
    Stage.objects.create(request_type=other_type, name="Review", deadline=timedelta(days=1))
    laptop = make_request(people, purchase, started=True, title="Laptop", amount=900)
    chair = make_request(people, purchase, started=True, title="Chair", amount=150)
    trip = make_request(people, purchase, started=True, title="Trip to Lyon", amount=None)
    ApprovalRequest.objects.filter(pk=trip.pk).update(request_type=other_type)
    now = timezone.now()
    # The chair is overdue and escalated to reviewer1; the laptop is due later; the trip is done.
    Participant.objects.filter(request=chair).update(deadline=now - timedelta(hours=2), level=1)
    ApprovalRequest.objects.filter(pk=chair.pk).update(deadline=now - timedelta(hours=2))
    Participant.objects.filter(request=laptop).update(deadline=now + timedelta(days=2))
    ApprovalRequest.objects.filter(pk=laptop.pk).update(deadline=now + timedelta(days=2))
    project_action(trip, action(ActionKind.APPROVE, people["reviewer2"]))
    reviewer = as_user(people["reviewer1"])
    inbox = reverse("inbox")

    page = reviewer.get(inbox).content.decode()
    assert rows(page.split("Recently on your desk")[0]) == 2
    assert page.index("Chair") < page.index("Laptop"), "soonest deadline first"
    assert 'class="overdue"' in page and ">2 h late</time>" in page and ">in 2 days</time>" in page
    exact = timezone.localtime(now - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M")
    assert f'title="{exact} ' in page  # the exact time, on hover
    assert "Escalated to you" in page

    def titles(**query: str) -> list[str]:
        html = reviewer.get(inbox, query, **HTMX).content.decode()
        return [t for t in ("Laptop", "Chair", "Trip to Lyon") if f">{t}</a>" in html]

    assert titles(q="lapt") == ["Laptop"]
    assert titles(q="requester") == ["Laptop", "Chair"]
    assert titles(state="overdue") == ["Chair"]
    assert titles(state="escalated") == ["Chair"]
    assert titles(state="done") == ["Trip to Lyon"]
    assert titles(state="all", type="travel") == ["Trip to Lyon"]
    assert titles(state="all", requester="REQUESTER") == ["Laptop", "Chair", "Trip to Lyon"]
    assert titles(requester="nobody") == []
    html = reviewer.get(inbox, {"sort": "amount"}, **HTMX).content.decode()
    assert html.index("Laptop") < html.index("Chair"), "largest amount first"
    html = reviewer.get(inbox, {"sort": "newest"}, **HTMX).content.decode()
    assert html.index("Chair") < html.index("Laptop"), "newest first"

    # Bad filters are reported and ignored; never a server error.
    response = reviewer.get(
        inbox, {"state": "<script>", "sort": "drop table", "type": "nope", "q": "x" * 500}
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "These filters were ignored." in body and "<script>" not in body
    assert rows(body.split("Recently on your desk")[0]) == 2

    # New rows arrive live on the first page, where they belong: a push marks a row to be added
    # only for a page whose filters it matches.
    assert "data-live-insert-here" in reviewer.get(inbox).content.decode()

    def pushed(request: ApprovalRequest, filters: str) -> str:
        return fragments.pushed_html(
            user=people["reviewer1"], public_id=str(request.public_id), view="inbox", filters=filters
        )

    assert "data-live-insert" in pushed(chair, "") and "data-live-insert" in pushed(chair, "q=chair")
    assert "data-live-insert" not in pushed(laptop, "q=chair")
    assert "data-live-insert" not in pushed(trip, "")  # no longer waiting for this reviewer
    assert "data-live-insert" in pushed(trip, "state=done")


def test_the_requester_filter_suggests_whose_requests_wait_once_it_is_used(
    people: dict[str, User], purchase: RequestType
) -> None:
    """The suggestions are not on the page (a busy inbox would look for them on every load): the
    field's first use asks for them, and they are whose requests wait for this person."""
    make_request(people, purchase, started=True, title="Laptop")
    page = as_user(people["reviewer1"]).get(reverse("inbox")).content.decode()
    suggestions = reverse("inbox_requesters")
    assert f'hx-get="{suggestions}" hx-trigger="focus from:#id_requester once"' in page
    assert "<option" not in page.split('id="inbox-requesters"')[1].split("</datalist>")[0]
    mine = as_user(people["reviewer1"]).get(suggestions, **HTMX).content.decode()
    assert mine.strip() == '<option value="requester">'
    assert "<option" not in as_user(people["outsider"]).get(suggestions, **HTMX).content.decode()


def test_the_pager_keeps_the_filters(people: dict[str, User], purchase: RequestType) -> None:
    for _ in range(27):
        make_request(people, purchase, started=True)
    html = (
        as_user(people["reviewer1"]).get(reverse("inbox"), {"q": "laptop", "sort": "newest"}).content.decode()
    )
    assert "?q=laptop&amp;sort=newest&amp;page=2" in html


def test_bulk_form_errors_are_clear_and_change_nothing(
    people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase, started=True)
    reviewer = as_user(people["reviewer1"])
    bulk = reverse("inbox_bulk")
    cases = [
        ({"kind": "approve", "bulk_id": uuid.uuid4()}, "Select at least one request."),
        ({"kind": "reject", "bulk_id": uuid.uuid4(), "ids": [request.public_id]}, "A comment is required"),
        ({"kind": "approve", "bulk_id": uuid.uuid4(), "ids": ["not-a-uuid"]}, "The selection is not valid"),
        ({"kind": "delete", "bulk_id": uuid.uuid4(), "ids": [request.public_id]}, "Select a valid choice"),
        ({"kind": "approve", "ids": [request.public_id]}, "reload the page"),
        (
            {"kind": "approve", "bulk_id": uuid.uuid4(), "ids": [uuid.uuid4() for _ in range(101)]},
            "at most 100",
        ),
    ]
    for data, message in cases:
        response = reviewer.post(bulk, data, **HTMX)
        assert response.status_code == 400, data
        assert message in response.content.decode(), data
    assert reviewer.get(bulk).status_code == 405
    request.refresh_from_db()
    assert request.status == "in_review"
    response = as_user(people["outsider"]).post(
        bulk, {"kind": "approve", "bulk_id": uuid.uuid4(), "ids": [request.public_id]}, **HTMX
    )
    assert response.status_code == 200
    # Someone who may not see the request learns nothing of it, not even that it exists.
    assert "There is no such request." in response.content.decode()
    assert request.title not in response.content.decode()
    assert "0 of 1 done, 1 refused" in response.content.decode()


def test_bulk_refuses_each_request_that_cannot_be_decided_and_says_why(
    people: dict[str, User], purchase: RequestType, temporal_unreachable: str
) -> None:
    waiting = make_request(people, purchase, started=True)
    not_started = make_request(people, purchase)
    Participant.objects.create(request=not_started, user=people["reviewer1"])
    decided = project_action(
        make_request(people, purchase, started=True), action(ActionKind.APPROVE, people["reviewer2"])
    )
    missing = uuid.uuid4()
    response = as_user(people["reviewer1"]).post(
        reverse("inbox_bulk"),
        {
            "kind": "approve",
            "bulk_id": uuid.uuid4(),
            "ids": [waiting.public_id, not_started.public_id, decided.public_id, missing],
        },
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "0 of 4 done, 4 refused" in html
    assert "The workflow service did not answer, so this was not recorded." in html
    assert "Review has not started yet" in html
    assert "This request is already approved by reviewer2 at " in html
    assert "There is no such request." in html


def test_my_requests_say_who_we_are_waiting_for(people: dict[str, User], purchase: RequestType) -> None:
    open_one = titled(make_request(people, purchase, started=True), "Open one")
    closed = titled(make_request(people, purchase, started=True), "Closed one")
    ApprovalRequest.objects.filter(pk=closed.pk).update(status="rejected")
    Participant.objects.filter(request=closed).update(pending=False)
    Participant.objects.filter(request=open_one, user=people["reviewer2"]).update(
        acting_for=people["manager"]
    )
    requester = as_user(people["requester"])
    html = requester.get(reverse("home")).content.decode()
    row = html[html.index(f'id="mine-{open_one.public_id}"') :]
    row = row[: row.index("</tr>")]
    assert "reviewer1" in row and "reviewer2" in row and "(for manager)" in row
    assert "Open one" in requester.get(reverse("home"), {"state": "open"}).content.decode()
    assert "Closed one" not in requester.get(reverse("home"), {"state": "open"}).content.decode()
    closed_page = requester.get(reverse("home"), {"state": "closed"}).content.decode()
    assert "Closed one" in closed_page and "Open one" not in closed_page
    assert requester.get(reverse("home"), {"state": "bogus"}).status_code == 200


def test_routing_preview_names_people_and_deadlines_from_the_policy(
    people: dict[str, User], purchase: RequestType
) -> None:
    finance = Group.objects.create(name="Finance")
    people["manager"].groups.add(finance)
    people["requester"].groups.add(finance)  # never asked to approve their own request
    stage = Stage.objects.create(
        request_type=purchase,
        order=2,
        name="Finance",
        deadline=timedelta(days=2),
        condition_field="amount",
        condition_operator="gt",
        condition_value="1000",
    )
    stage.approver_groups.set([finance])
    Delegation.objects.create(
        user=people["reviewer2"],
        delegate=people["outsider"],
        starts_at=timezone.now() - timedelta(days=1),
        ends_at=timezone.now() + timedelta(days=1),
    )
    client = as_user(people["requester"])
    preview = reverse("request_preview")

    html = client.get(preview, {"request_type": purchase.pk, "amount": "5000"}).content.decode()
    assert html.count('data-testid="preview-stage"') == 2
    review, finance_part = html.split('data-testid="preview-stage"')[1:]
    assert "reviewer1" in review and "outsider" in review and "(for reviewer2, who is away)" in review
    assert "one approval decides" in review and "also manager" in review
    assert "the request expires" in review
    assert "manager" in finance_part and "requester" not in finance_part.split("</div>")[0]
    assert "skipped" not in finance_part
    assert "Each stage needs a different person" in html
    purchase.distinct_approvers = False
    purchase.save()
    html = client.get(preview, {"request_type": purchase.pk, "amount": "5000"}).content.decode()
    assert "Each stage needs a different person" not in html

    html = client.get(preview, {"request_type": purchase.pk, "amount": "20"}).content.decode()
    assert "skipped: only when the amount is more than 1000" in html

    empty = RequestType.objects.create(name="Empty", slug="empty")
    html = client.get(preview, {"request_type": empty.pk}).content.decode()
    assert "has no approval stages yet" in html
    html = client.get(preview, {"request_type": purchase.pk, "amount": "-3"}).content.decode()
    assert "Enter a valid amount" in html
    html = client.get(preview, {"request_type": "999999"}).content.decode()
    assert "Enter a valid amount" in html or "Choose a type" in html
    assert client.get(preview).status_code == 200
    assert "Who will be asked" in client.get(reverse("request_create")).content.decode()


def test_each_decision_shows_the_request_as_the_approver_saw_it(
    people: dict[str, User], purchase: RequestType, temporal_unreachable: str
) -> None:
    request = make_request(people, purchase, started=True)
    ApprovalRequest.objects.filter(pk=request.pk).update(details="13 inch")
    RequestRevision.objects.filter(request=request).update(details="13 inch")
    request.refresh_from_db()
    changed = Content("New laptop", "15 inch", "1500")
    for kind, who, fields in [
        (ActionKind.REQUEST_CHANGES, "reviewer1", {"comment": "Which size?"}),
        (ActionKind.RESUBMIT, "requester", {"content": changed}),
    ]:
        project_action(request, action(kind, people[who], **fields))
    reviewers = [Assignee(people[name].pk, name) for name in ("reviewer1", "reviewer2")]
    project(request, lambda review: review.assign(reviewers))  # as the workflow asks them again
    project_action(request, action(ActionKind.APPROVE, people["reviewer2"]))
    html = as_user(people["requester"]).get(request.get_absolute_url()).content.decode()
    changes = html[html.index('data-testid="seen-2"') : html.index('id="event-3"')]
    assert (
        "revision 1" in changes
        and "13 inch" in changes
        and "1200" in changes
        and "earlier version" in changes
    )
    approval = html[html.index('data-testid="seen-5"') :]
    assert (
        "revision 2" in approval
        and "15 inch" in approval
        and "earlier version" not in approval.split("</summary>")[0]
    )
    assert 'data-testid="seen-1"' not in html and 'data-testid="seen-3"' not in html


@pytest.mark.parametrize(
    "seconds, said",
    [
        (30, "in under a minute"),
        (90, "in 2 min"),
        (3 * 3600 + 50, "in 3 h"),
        (86400, "in 1 day"),
        (5 * 86400 + 7200, "in 5 days"),
        (-20, "late by a moment"),
        (-300, "5 min late"),
        (-2 * 86400, "2 days late"),
    ],
)
def test_a_deadline_reads_as_people_say_it(seconds: int, said: str) -> None:
    now = timezone.now()
    assert relative_due(now + timedelta(seconds=seconds), now) == said
