"""Access grants on the time-skipping server, with the real activities and database: an approved
access request grants the access, whose own workflow reminds the holder before the end and takes
the access back on time; extensions go through the resource's approvers; early revoke; the
history stays bounded however many extensions it sees."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from approvals.models import AccessGrant, ApprovalRequest, RequestType, Resource
from approvals.services import access_grant
from tests.conftest import LoopThread, make_access_request, wait_until
from tests.workflows import helpers
from tests.workflows.helpers import sleep, wait_idle
from workflows.grant import GrantWorkflow
from workflows.types import (
    INTERACTIVE_TASK_QUEUE,
    GrantAction,
    GrantActionKind,
    GrantInput,
    GrantStatus,
    StepInput,
    grant_id_for,
)

pytestmark = pytest.mark.usefixtures("ts_worker", "ts_cleanup")


def granted(
    loop: LoopThread,
    env: WorkflowEnvironment,
    people: dict[str, User],
    access: RequestType,
    resource: Resource,
    **grant_input: Any,
) -> tuple[ApprovalRequest, WorkflowHandle[Any, Any]]:
    """30 days of reading `resource`, granted as the fulfilment's step grants it, and its
    workflow started as the fulfilment starts it, once the grant is recorded.

    (Started here, not by a fulfilment: the time-skipping test server stops skipping time for
    good once a child outlives its parent, temporalio/sdk-java#1540 and #1618, so the whole chain,
    approval to fulfilment to grant, is tested on the dev server:
    tests/integration/test_fulfilment.py.)"""
    request = make_access_request(people, access, resource)
    access_grant(step=StepInput(str(request.public_id), 1, f"{request.public_id}:fulfilment:1:grant"))
    handle = loop.run(
        env.client.start_workflow(
            GrantWorkflow.run,
            GrantInput(str(request.public_id), **grant_input),
            id=grant_id_for(request.public_id),
            task_queue=INTERACTIVE_TASK_QUEUE,
        )
    )
    helpers.STARTED.append(handle)
    wait_until(
        lambda: AccessGrant.objects.filter(request=request, events__kind="granted").exists(),
        timeout=30,
        what="the grant",
    )
    wait_idle(loop, handle)
    return request, handle


def send(
    loop: LoopThread, handle: WorkflowHandle[Any, Any], user: User, kind: GrantActionKind, **fields: Any
) -> str:
    """Send an action to the grant; its answer, or its refusal's message."""
    grant_action = GrantAction(kind, user.pk, user.username, str(uuid.uuid4()), **fields)
    try:
        return str(
            loop.run(handle.execute_update(GrantWorkflow.act, grant_action, id=grant_action.action_id))
        )
    except WorkflowUpdateFailedError as exc:
        return f"refused: {exc.cause.message}"  # type: ignore[union-attr]


def kinds(grant: AccessGrant) -> list[str]:
    return list(grant.events.order_by("seq").values_list("kind", flat=True))


def subjects(to: str) -> list[str]:
    return [m.subject for m in mail.outbox if to in m.to]


def test_access_is_granted_reminded_and_taken_back_when_its_period_ends(
    loop: LoopThread,
    time_skipping_env: WorkflowEnvironment,
    people: dict[str, User],
    access: RequestType,
    payroll: Resource,
) -> None:
    request, handle = granted(loop, time_skipping_env, people, access, payroll)
    grant = AccessGrant.objects.get(request=request)

    sleep(loop, time_skipping_env, days=27, hours=1)  # 3 days before the end
    wait_idle(loop, handle)
    assert kinds(grant) == ["granted", "reminded"]
    sleep(loop, time_skipping_env, days=2)  # 1 day before
    wait_idle(loop, handle)
    assert kinds(grant) == ["granted", "reminded", "reminded"]
    grant.refresh_from_db()
    assert grant.status == "active"

    sleep(loop, time_skipping_env, days=1)  # the end
    wait_idle(loop, handle)
    assert loop.run(handle.result()) == GrantStatus.EXPIRED
    grant.refresh_from_db()
    assert (grant.status, kinds(grant)[-1]) == ("expired", "expired")
    assert grant.ended_at is not None and grant.ended_at >= grant.ends_at
    assert subjects("requester@example.com")[-3:] == [
        "Your access ends soon: Payroll access",
        "Your access ends soon: Payroll access",
        "Your access has ended: Payroll access",
    ]


def test_an_extension_approved_moves_the_end_and_one_refused_or_undecided_leaves_it(
    loop: LoopThread,
    time_skipping_env: WorkflowEnvironment,
    people: dict[str, User],
    access: RequestType,
    payroll: Resource,
) -> None:
    request, handle = granted(loop, time_skipping_env, people, access, payroll)
    holder, manager = people["requester"], people["manager"]
    ends = AccessGrant.objects.get(request=request).ends_at

    assert (
        send(loop, handle, manager, GrantActionKind.APPROVE)
        == "refused: No extension is waiting for a decision."
    )
    assert send(loop, handle, people["outsider"], GrantActionKind.EXTEND, days=10) == (
        "refused: Only the holder can ask for more time."
    )
    assert (
        send(loop, handle, holder, GrantActionKind.EXTEND, days=91) == "refused: Ask for 1 to 90 more days."
    )
    assert send(loop, handle, holder, GrantActionKind.EXTEND, days=10) == (
        "refused: Say why you need more time: the approvers weigh it."
    )
    assert send(loop, handle, holder, GrantActionKind.EXTEND, days=10, reason="Quarter close") == (
        "Your request for more time is sent to the resource's approvers."
    )
    grant = AccessGrant.objects.get(request=request)
    assert grant.extension is not None and grant.extension["days"] == 10
    assert subjects("manager@example.com") == ["More time asked: Payroll access"]
    assert send(loop, handle, holder, GrantActionKind.EXTEND, days=5, reason="More") == (
        "refused: An extension is already waiting for a decision."
    )
    assert send(loop, handle, people["reviewer1"], GrantActionKind.APPROVE) == (
        "refused: Only an approver of this resource can decide on the extension."
    )
    assert send(loop, handle, manager, GrantActionKind.APPROVE) == "The extension is approved."
    grant.refresh_from_db()
    assert (grant.ends_at, grant.extensions, grant.extension) == (ends + timedelta(days=10), 1, None)

    assert send(loop, handle, holder, GrantActionKind.EXTEND, days=5, reason="More") == (
        "Your request for more time is sent to the resource's approvers."
    )
    assert (
        send(loop, handle, manager, GrantActionKind.REFUSE, reason="Not needed")
        == "The extension is refused."
    )
    grant.refresh_from_db()
    assert (grant.ends_at, grant.extensions) == (ends + timedelta(days=10), 1)

    send(loop, handle, holder, GrantActionKind.EXTEND, days=5, reason="More")
    sleep(loop, time_skipping_env, days=3, hours=1)  # nobody decides
    wait_idle(loop, handle)
    grant.refresh_from_db()
    assert (grant.ends_at, grant.extension) == (ends + timedelta(days=10), None)
    assert kinds(grant) == [
        "granted",
        "extension_asked",
        "extended",
        "extension_asked",
        "extension_refused",
        "extension_asked",
        "extension_refused",
    ]
    assert grant.events.order_by("seq").last().detail == "nobody decided in time"  # type: ignore[union-attr]
    assert subjects("requester@example.com")[-3:] == [
        "More time approved: Payroll access",
        "More time refused: Payroll access",
        "More time refused: Payroll access",
    ]


def test_the_holder_or_staff_revoke_early_saying_why(
    loop: LoopThread,
    time_skipping_env: WorkflowEnvironment,
    people: dict[str, User],
    access: RequestType,
    payroll: Resource,
) -> None:
    request, handle = granted(loop, time_skipping_env, people, access, payroll)
    outsider, holder = people["outsider"], people["requester"]
    assert send(loop, handle, outsider, GrantActionKind.REVOKE, reason="x") == (
        "refused: Only the holder or staff can revoke this access."
    )
    assert (
        send(loop, handle, holder, GrantActionKind.REVOKE, reason=" ")
        == "refused: Say why the access ends early."
    )

    assert (
        send(loop, handle, holder, GrantActionKind.REVOKE, reason="Project over") == "The access is revoked."
    )

    assert loop.run(handle.result()) == GrantStatus.REVOKED
    grant = AccessGrant.objects.get(request=request)
    assert (grant.status, grant.ended_by_name, grant.end_reason) == ("revoked", "requester", "Project over")
    assert kinds(grant) == ["granted", "revoked"]
    assert subjects("requester@example.com")[-1] == "Your access has ended: Payroll access"

    # Staff may revoke anyone's (another grant, another holder's).
    other, other_handle = granted(loop, time_skipping_env, people, access, payroll)
    assert send(
        loop, other_handle, people["admin"], GrantActionKind.REVOKE, reason="Left", as_staff=True
    ) == ("The access is revoked.")
    assert AccessGrant.objects.get(request=other).ended_by_name == "admin"


def test_many_extensions_keep_the_history_bounded_by_continuing_as_new(
    loop: LoopThread,
    time_skipping_env: WorkflowEnvironment,
    people: dict[str, User],
    access: RequestType,
    payroll: Resource,
) -> None:
    request, handle = granted(loop, time_skipping_env, people, access, payroll, history_limit=40)
    ends = AccessGrant.objects.get(request=request).ends_at

    for _ in range(12):
        assert send(
            loop, handle, people["requester"], GrantActionKind.EXTEND, days=2, reason="More"
        ).startswith("Your request")
        assert send(loop, handle, people["manager"], GrantActionKind.APPROVE) == "The extension is approved."

    state = loop.run(handle.query(GrantWorkflow.grant))
    assert state is not None and state.runs > 1 and state.extensions == 12
    assert state.info.ends_at == ends + timedelta(days=24)
    grant = AccessGrant.objects.get(request=request)
    assert (grant.ends_at, grant.extensions) == (ends + timedelta(days=24), 12)
    assert list(grant.events.values_list("seq", flat=True)) == list(range(1, 26))  # once each, in order
    # Each run's history stays near its limit, whatever the grant has been through.
    assert len(helpers.history(loop, handle)) < 60
