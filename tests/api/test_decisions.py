"""Deciding through the API, with a real workflow on the dev server: the browser's rules and
answers, one decision per Idempotency-Key, and the truth when the outcome is not known yet."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from temporalio.client import Client as TemporalClient

from approvals.models import ApiIdempotency, ApprovalRequest, PendingAction, RequestEvent, RequestType
from tests.api.conftest import api_for, problem
from tests.conftest import at_once, wait_until

pytestmark = pytest.mark.temporal_server


def submitted_through_the_api(people: dict[str, User], title: str) -> ApprovalRequest:
    made = api_for(people["requester"], ["create"]).post("/requests", {"type": "purchase", "title": title})
    assert made.status_code == 201, made.content
    request = ApprovalRequest.objects.get(public_id=made.json()["id"])
    wait_until(lambda: request.participants.filter(pending=True).exists(), what="the stage's approvers")
    return request


def test_a_decision_sent_twice_with_one_key_counts_once_and_a_late_one_is_told_who_decided(
    use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    request = submitted_through_the_api(people, "Monitor arm")
    api = api_for(people["reviewer1"])
    key = {"Idempotency-Key": "approve-monitor-arm"}
    body = {"kind": "approve", "comment": "Within budget"}

    first, second = at_once(
        lambda: api.post(f"/requests/{request.public_id}/actions", body, headers=key),
        lambda: api.post(f"/requests/{request.public_id}/actions", body, headers=key),
    )
    for answer in (first, second):
        assert answer.status_code == 200, answer.content
        out: dict[str, Any] = answer.json()
        assert out["outcome"] == "done" and out["request"]["status"] == "approved"
        assert out["request"]["decided_by"] == "reviewer1"
    again = api.post(f"/requests/{request.public_id}/actions", body, headers=key)
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert RequestEvent.objects.filter(request=request, kind="approved").count() == 1

    # Another reviewer, a moment late, is told how it closed: the browser's very words.
    late = api_for(people["reviewer2"]).post(f"/requests/{request.public_id}/actions", {"kind": "approve"})
    refused = problem(late, 409, "refused")
    assert refused["detail"].startswith("This request is already approved by reviewer1 at ")
    assert RequestEvent.objects.filter(request=request, kind="approved").count() == 1

    timeline = api.get(f"/requests/{request.public_id}/timeline").json()
    assert [(e["kind"], e["actor"]) for e in timeline if e["kind"] == "approved"] == [
        ("approved", "reviewer1")
    ]
    assert [e["comment"] for e in timeline if e["kind"] == "approved"] == ["Within budget"]
    snapshots = api.get(f"/requests/{request.public_id}/snapshots").json()
    assert [r["title"] for r in snapshots["revisions"]] == ["Monitor arm"]
    assert snapshots["policy"]["stages"][0]["name"] == "Review"


def test_rules_refuse_through_the_api_as_in_the_browser(
    use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    request = submitted_through_the_api(people, "Office chair")
    reviewer = api_for(people["reviewer1"])
    path = f"/requests/{request.public_id}/actions"
    no_reason = problem(reviewer.post(path, {"kind": "reject"}), 422, "invalid")
    assert no_reason["errors"][0]["field"] == "comment"
    own = problem(api_for(people["requester"]).post(path, {"kind": "approve"}), 403, "not_allowed")
    assert own["detail"]
    problem(reviewer.post(path, {"kind": "delegate"}), 422, "invalid")  # not an API action
    commented = reviewer.post(path, {"kind": "comment", "comment": "Which model?"})
    assert commented.status_code == 200 and commented.json()["outcome"] == "done"
    wait_until(
        lambda: RequestEvent.objects.filter(request=request, kind="comment").exists(), what="the comment"
    )
    assert ApprovalRequest.objects.get(pk=request.pk).status == "in_review"


def test_with_temporal_away_a_decision_is_a_503_that_says_nothing_was_decided(
    people: dict[str, User], purchase: RequestType, temporal_unreachable: str
) -> None:
    from tests.conftest import make_request

    request = make_request(people, purchase, started=True)
    answer = api_for(people["reviewer1"]).post(
        f"/requests/{request.public_id}/actions", {"kind": "approve"}, headers={"Idempotency-Key": "k1"}
    )
    body = problem(answer, 503, "workflow_unavailable")
    assert (
        body["detail"] == "The workflow service did not answer, so this was not recorded. Please try again."
    )
    assert not PendingAction.objects.filter(request=request).exists()
    assert not ApiIdempotency.objects.exists()  # not an answer to keep: the same key may try again
    assert ApprovalRequest.objects.get(pk=request.pk).status == "in_review"
