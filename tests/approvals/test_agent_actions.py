"""Agent actions in the read model, without Temporal: the canonical JSON and its hash, the
approval token and its one verification, the page reviewers read, the policy snapshot that trusts
an agent, and the API's answers to bad input. (The workflow's side: tests/workflows/test_agent_rules.py;
the whole loop on a dev server: tests/api/test_agent_actions.py.)"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import uuid
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, User
from django.core import signing
from django.urls import reverse

from approvals import services
from approvals.api.schemas import request_out
from approvals.exceptions import InvalidInput
from approvals.models import ActionArguments, ApprovalRequest, ApprovalTokenUse, RequestType
from approvals.services import agents, waiting
from approvals.services.policies import policy_snapshot
from approvals.services.projection import approvers_for
from tests.api.conftest import api_for, problem
from tests.conftest import as_user, project
from workflows import handlers
from workflows.review import Review
from workflows.types import Action, ActionKind, RequestStatus

REFUND = {"order": "A-1001", "amount": {"value": "25.00", "currency": "EUR"}, "notify": True}


def asked(people: dict[str, User], agent_type: RequestType, **overrides: Any) -> ApprovalRequest:
    """An agent action as submitted (its workflow not started: Temporal is away)."""
    fields: dict[str, Any] = dict(
        agent="support-bot",
        tool="payments.refund",
        arguments=REFUND,
        reason="The customer was charged twice.",
        risk="medium",
    )
    fields.update(overrides)
    return services.agent_action_submit(requester=people["requester"], request_type=agent_type, **fields)


def under_review(request: ApprovalRequest) -> ApprovalRequest:
    """Its first stage started and assigned, as its workflow would project it."""

    def first_stage(review: Review) -> None:
        review.submit()
        if review.state.stage is not None:
            spec = review.spec
            review.assign(
                approvers_for(
                    user_ids=spec.user_ids, group_ids=spec.group_ids, requester_id=request.requester_id
                )
            )

    request.workflow_started_at = request.created_at
    request.save()
    return project(request, first_stage)


def approved_by(
    request: ApprovalRequest, user: User, *, edited: dict[str, Any] | None = None
) -> ApprovalRequest:
    """Approved by `user`, as the workflow applies the approval (with `edited` arguments: approved
    with edits, the new version kept first as the web keeps it)."""
    content = None
    if edited is not None:
        sha = agents.action_version_keep(request=request, actor=user, arguments=edited)
        content = dataclasses.replace(request.content(), action_sha256=sha)
    action = Action(
        ActionKind.APPROVE,
        user.pk,
        user.username,
        action_id=str(uuid.uuid4()),
        action_sha256=request.action_sha256,
        content=content,
    )
    return project(request, lambda review: handlers.apply(review, action))


def test_the_hash_is_of_the_canonical_json_whatever_order_and_spacing_the_agent_sent() -> None:
    canonical, sha = agents.canonical_action(tool="payments.refund", arguments={"b": [1.0, "é"], "a": 2})
    assert canonical == '{"arguments":{"a":2,"b":[1,"é"]},"tool":"payments.refund"}'
    assert sha == hashlib.sha256(canonical.encode()).hexdigest()
    assert agents.canonical_action(tool="payments.refund", arguments={"a": 2, "b": [1, "é"]})[1] == sha
    assert agents.canonical_action(tool="payments.refund", arguments={"a": 2, "b": [1, "e"]})[1] != sha
    assert agents.canonical_action(tool="payments.refunds", arguments={"a": 2, "b": [1, "é"]})[1] != sha


@pytest.mark.parametrize(
    ("tool", "arguments", "words"),
    [
        ("pay ments", {}, "A tool's name is 1 to 100 letters"),
        ("", {}, "A tool's name is 1 to 100 letters"),
        ("payments.refund", ["A-1001"], "The arguments are a JSON object"),
        ("payments.refund", {"amount": float("nan")}, "These arguments have no canonical JSON"),
        ("payments.refund", {"id": 2**60}, "These arguments have no canonical JSON"),
        ("payments.refund", {"note": "x" * 20_000}, "An action is limited to 16,000 bytes"),
    ],
)
def test_an_action_that_cannot_be_hashed_is_refused_in_words(tool: str, arguments: Any, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        agents.canonical_action(tool=tool, arguments=arguments)


def test_an_agent_action_is_kept_with_its_exact_arguments_and_hash(
    people: dict[str, User], agent_type: RequestType, temporal_unreachable: str
) -> None:
    request = asked(people, agent_type, risk=None)
    canonical, sha = agents.canonical_action(tool="payments.refund", arguments=REFUND)
    assert (request.agent_name, request.tool, request.risk) == ("support-bot", "payments.refund", "medium")
    assert request.title == "payments.refund (asked by support-bot)"
    assert request.details == "The customer was charged twice."
    assert request.action_sha256 == sha and request.revisions.get().action_sha256 == sha
    assert ActionArguments.objects.get(request=request).canonical == canonical
    for bad, words in [
        (dict(reason="  "), "Say why the agent wants to do this"),
        (dict(risk="severe"), "A risk is one of low, medium, high, critical."),
        (dict(agent=""), "Name the agent"),
    ]:
        with pytest.raises(InvalidInput, match=words):
            asked(people, agent_type, **bad)


def test_agent_actions_come_through_their_own_operation_only(
    people: dict[str, User], agent_type: RequestType, purchase: RequestType, temporal_unreachable: str
) -> None:
    api = api_for(people["requester"])
    refused = problem(api.post("/requests", {"type": "agent-action", "title": "Refund"}), 422, "invalid")
    assert "requests come from agents, each naming an exact action" in refused["detail"]
    with pytest.raises(InvalidInput, match="is not a type of agent action"):
        asked(people, purchase)
    page = as_user(people["requester"]).get(reverse("request_create"))
    assert b"Agent action" not in page.content and b"Purchase" in page.content

    body = {"agent": "support-bot", "tool": "payments.refund", "arguments": REFUND, "reason": "Charged twice"}
    for change, field in [
        ({"risk": "severe"}, "risk"),
        ({"arguments": ["A-1001"]}, "arguments"),
        ({"reason": ""}, "reason"),
        ({"type": "purchase"}, "type"),
    ]:
        answer = problem(api.post("/agent-actions", {**body, **change}), 422, "invalid")
        assert answer["errors"][0]["field"] == field, answer
    key = {"Idempotency-Key": "refund-A-1001"}
    first = api.post("/agent-actions", body, headers=key)
    assert first.status_code == 201, first.content
    again = api.post("/agent-actions", body, headers=key)
    assert again.json()["id"] == first.json()["id"] and again["Idempotent-Replayed"] == "true"
    out = first.json()
    assert out["action"]["sha256"] == agents.canonical_action(tool="payments.refund", arguments=REFUND)[1]
    assert out["action"]["arguments"] == REFUND and out["action"]["risk"] == "medium"
    assert out["approval_token"] is None and out["status"] == "submitted"


def test_the_token_is_accepted_once_and_only_for_the_exact_arguments(
    people: dict[str, User], agent_type: RequestType, temporal_unreachable: str
) -> None:
    request = approved_by(under_review(asked(people, agent_type)), people["reviewer1"])
    assert request.status == RequestStatus.APPROVED
    token = agents.approval_token(request)
    assert token is not None
    # Only its requester reads it.
    assert request_out(user=people["requester"], request=request).approval_token == token
    assert request_out(user=people["reviewer1"], request=request).approval_token is None

    def verify(
        arguments: Any, tool: str = "payments.refund", with_token: str | None = None
    ) -> agents.Verdict:
        return agents.approval_verify(
            token=with_token or token, tool=tool, arguments=arguments, by=people["requester"]
        )

    assert verify({**REFUND, "amount": {"value": "2500.00", "currency": "EUR"}}).code == "arguments_differ"
    assert verify(REFUND, tool="payments.refund_all").code == "arguments_differ"
    assert verify(REFUND, with_token=token[:-2] + "xx").code == "not_a_token"
    assert verify(
        REFUND, with_token="apt_" + signing.Signer(salt="another").sign_object({"request": "x"})
    ).code == ("not_a_token")
    reordered = {"notify": True, "amount": {"currency": "EUR", "value": "25.00"}, "order": "A-1001"}
    yes = verify(reordered)
    assert (yes.valid, yes.code, yes.request) == (True, "approved", request)
    again = verify(REFUND)
    assert (again.valid, again.code) == (False, "used")
    assert again.message.startswith("This approval token was used already, at ")
    assert ApprovalTokenUse.objects.get(request=request).used_by == people["requester"]
    page = as_user(people["reviewer1"]).get(request.get_absolute_url())
    assert b'data-testid="token-used"' in page.content


def test_a_token_is_refused_after_its_expiry_and_for_an_action_not_approved(
    people: dict[str, User], agent_type: RequestType, temporal_unreachable: str, settings: Any
) -> None:
    request = approved_by(under_review(asked(people, agent_type)), people["reviewer1"])
    settings.AGENT_TOKEN_SECONDS = 0
    expired = agents.approval_verify(
        token=agents.approval_token(request) or "", tool="payments.refund", arguments=REFUND, by=None
    )
    assert (expired.valid, expired.code) == (False, "expired")
    settings.AGENT_TOKEN_SECONDS = 3600

    waiting = under_review(asked(people, agent_type, arguments={"order": "A-1002"}))
    assert agents.approval_token(waiting) is None
    # A token signed for it all the same (with the site's key, as if leaked from a test) is no yes.
    claims = {"request": str(waiting.public_id), "sha256": waiting.action_sha256, "exp": 2**40}
    forged = "apt_" + signing.Signer(salt=agents.TOKEN_SALT).sign_object(claims)
    refused = agents.approval_verify(
        token=forged, tool="payments.refund", arguments={"order": "A-1002"}, by=None
    )
    assert (refused.valid, refused.code) == (False, "not_approved")


def test_approved_with_edits_the_token_holds_for_the_edited_arguments_only(
    people: dict[str, User], agent_type: RequestType, temporal_unreachable: str
) -> None:
    request = under_review(asked(people, agent_type))
    first_sha = request.action_sha256
    smaller = {**REFUND, "amount": {"value": "20.00", "currency": "EUR"}}
    request = approved_by(request, people["reviewer2"], edited=smaller)
    assert request.status == RequestStatus.APPROVED and request.revision == 2
    assert request.action_sha256 == agents.canonical_action(tool="payments.refund", arguments=smaller)[1]
    assert [r.action_sha256 for r in request.revisions.all()] == [first_sha, request.action_sha256]
    token = agents.approval_token(request) or ""
    original = agents.approval_verify(token=token, tool="payments.refund", arguments=REFUND, by=None)
    assert original.code == "arguments_differ"
    assert agents.approval_verify(token=token, tool="payments.refund", arguments=smaller, by=None).valid

    out = request_out(user=people["requester"], request=request).action
    assert out is not None and out.arguments == smaller
    assert [(v.revision, v.proposed_by, v.arguments) for v in out.versions] == [
        (1, "", REFUND),
        (2, "reviewer2", smaller),
    ]
    page = as_user(people["reviewer1"]).get(request.get_absolute_url()).content.decode()
    assert request.action_sha256 in page and first_sha in page
    assert "Arguments edited" in page and "Revision 2, by reviewer2" in page


def test_reviewers_read_the_exact_arguments_and_the_hash_and_approve_that_version(
    people: dict[str, User], agent_type: RequestType, temporal_unreachable: str
) -> None:
    request = under_review(
        asked(people, agent_type, tool="db.migrate", arguments={"to": "0042"}, risk="high")
    )
    page = as_user(people["reviewer1"]).get(request.get_absolute_url()).content.decode()
    assert '<code data-testid="tool">db.migrate</code>' in page
    assert f'<code class="hash" data-testid="sha256">{request.action_sha256}</code>' in page
    assert "{\n  &quot;to&quot;: &quot;0042&quot;\n}" in page  # pretty-printed, as the reviewer reads it
    # Both forms name the version the reviewer has in front of them.
    assert page.count(f'name="action_sha256" value="{request.action_sha256}"') == 2
    assert "Approve with these arguments" in page
    edited = as_user(people["reviewer1"]).post(
        reverse("request_act", args=[request.public_id]),
        {"action_id": str(uuid.uuid4()), "kind": "reject", "comment": "no", "arguments": '{"to": "0041"}'},
    )
    assert edited.status_code == 400 and b"Edited arguments go with an approval only." in edited.content
    not_json = as_user(people["reviewer1"]).post(
        reverse("request_act", args=[request.public_id]),
        {"action_id": str(uuid.uuid4()), "kind": "approve", "arguments": "{to: 0041}"},
    )
    assert not_json.status_code == 400 and b"These arguments are not JSON" in not_json.content


def test_a_stage_trusts_an_agent_only_if_its_account_is_in_the_group_on_submission(
    people: dict[str, User], agent_type: RequestType
) -> None:
    untrusted = policy_snapshot(request_type=agent_type, requester=people["requester"])
    assert [s.auto_approve for s in untrusted.stages] == [False, False, False]
    Group.objects.get(name="Trusted agents").user_set.add(people["requester"])
    trusted = policy_snapshot(request_type=agent_type, requester=people["requester"])
    assert [s.auto_approve for s in trusted.stages] == [True, False, False]
    assert [s.condition and (s.condition.field, s.condition.value) for s in trusted.stages] == [
        ("risk", "low"),
        ("risk", "medium"),
        ("tool", "db.*"),
    ]
    assert policy_snapshot(request_type=agent_type).stages[0].auto_approve is False


def test_an_email_link_approves_the_version_the_email_was_sent_for_and_no_other(
    people: dict[str, User], agent_type: RequestType, temporal_unreachable: str
) -> None:
    request = under_review(asked(people, agent_type))
    reviewer = people["reviewer1"]
    link = services.email_link_make(user=reviewer, request=request, action=ActionKind.APPROVE)
    reject = services.email_link_make(user=reviewer, request=request, action=ActionKind.REJECT)
    token = link.rsplit("/", 2)[-2]
    assert services.email_link_check(token=token, user=reviewer).action_sha256 == request.action_sha256
    page = as_user(reviewer).get(link.removeprefix(django_settings.SITE_URL)).content.decode()
    assert request.action_sha256 in page and "&quot;order&quot;: &quot;A-1001&quot;" in page
    # The arguments are edited (another reviewer approved them with edits, say): the link is no yes.
    ApprovalRequest.objects.filter(pk=request.pk).update(action_sha256="e" * 64)
    with pytest.raises(services.LinkRefused, match="The action was edited since this email was sent"):
        services.email_link_check(token=token, user=reviewer)
    # A rejection still works: it says no to whatever version.
    rejected = services.email_link_check(token=reject.rsplit("/", 2)[-2], user=reviewer)
    assert rejected.action == ActionKind.REJECT


class UnreachableLayer:
    """A channel layer whose server is down."""

    async def new_channel(self) -> str:
        return "specific.waiter"

    async def group_add(self, group: str, channel: str) -> None:
        raise ConnectionError("Connection refused")

    async def group_discard(self, group: str, channel: str) -> None:
        raise ConnectionError("Connection refused")


def test_a_wait_with_the_channel_layer_down_looks_again_now_and_then_instead_of_failing(
    people: dict[str, User], agent_type: RequestType, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.AGENT_WAIT_RECHECK_SECONDS = 0.2
    monkeypatch.setattr(waiting, "get_channel_layer", UnreachableLayer)
    request = under_review(asked(people, agent_type))

    async def agent_waits_and_a_reviewer_approves() -> tuple[ApprovalRequest, ApprovalRequest]:
        undecided = await waiting.request_wait(
            user=people["requester"], public_id=request.public_id, timeout=0.5
        )
        wait = asyncio.create_task(
            waiting.request_wait(user=people["requester"], public_id=request.public_id, timeout=30)
        )
        await asyncio.sleep(0.3)
        assert not wait.done()
        await waiting.pooled(approved_by)(request, people["reviewer1"])
        return undecided, await asyncio.wait_for(wait, 10)

    undecided, decided = asyncio.run(agent_waits_and_a_reviewer_approves())
    assert undecided.status == RequestStatus.IN_REVIEW
    assert decided.status == RequestStatus.APPROVED
