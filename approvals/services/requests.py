"""Submitting requests and starting their workflows (with the outbox for when Temporal is away)."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals import client as temporal
from approvals.exceptions import InvalidInput, NotFound
from approvals.models import (
    ActionArguments,
    ApprovalRequest,
    CostCentre,
    RequestEvent,
    RequestRevision,
    RequestType,
    Resource,
)
from approvals.selectors.requests import display_name
from approvals.services.access import access_problems
from approvals.services.agents import ProposedAction, action_propose
from approvals.services.policies import policy_snapshot
from approvals.services.projection import approvers_for
from approvals.services.webhooks import request_events_emit
from workflows import codec, rules
from workflows.policy import next_stage_index
from workflows.types import ApprovalInput, Content, EventKind, Policy

logger = logging.getLogger(__name__)


def request_submit(
    *,
    requester: User,
    request_type: RequestType,
    title: str,
    details: str = "",
    amount: Decimal | None = None,
    cost_centre: CostCentre | None = None,
    resource: Resource | None = None,
    access_role: str = "",
    access_days: int | None = None,
    public_id: uuid.UUID | None = None,
    action: ProposedAction | None = None,
) -> ApprovalRequest:
    """Save the request with a snapshot of its policy; start its workflow once that commits.
    An agent action (`action`, see approvals.services.agents) goes only to a type for agents.

    `public_id` comes with the form, so submitting the same form twice (a double click, a
    retried POST) returns the first request instead of making a second one. The row is the
    outbox: if Temporal cannot be reached now, the worker process starts the workflow later
    (see `requests_start_pending`).
    """
    public_id = public_id or uuid.uuid4()
    if existing := _earlier_submission(public_id=public_id, requester=requester):
        return existing
    if problems := rules.content_problems(Content(title, details)):
        raise InvalidInput(" ".join(problems.values()))
    if problems := purchase_problems(request_type=request_type, amount=amount, cost_centre=cost_centre):
        raise InvalidInput(" ".join(problems.values()))
    if problems := access_problems(
        request_type=request_type, resource=resource, role=access_role, days=access_days
    ):
        raise InvalidInput(" ".join(problems.values()))
    if request_type.for_agents and action is None:
        raise InvalidInput(
            f"“{request_type}” requests come from agents, each naming an exact action: "
            "POST /api/v1/agent-actions."
        )
    access = request_type.is_access
    try:
        return _request_create(
            requester=requester,
            request_type=request_type,
            title=title,
            details=details,
            amount=amount,
            cost_centre=cost_centre if request_type.is_purchase else None,
            resource=resource if access else None,
            access_role=access_role if access else "",
            access_days=access_days if access else None,
            public_id=public_id,
            action=action,
        )
    except IntegrityError:
        # The same form, submitted twice at once: the other submission won the race.
        if existing := _earlier_submission(public_id=public_id, requester=requester):
            return existing
        raise


def agent_action_submit(
    *,
    requester: User,
    request_type: RequestType,
    agent: str,
    tool: str,
    arguments: Any,
    reason: str,
    risk: str | None = None,
    public_id: uuid.UUID | None = None,
) -> ApprovalRequest:
    """Ask for approval of one exact action, as the agent's account (`requester`)."""
    if not request_type.for_agents:
        raise InvalidInput(f"“{request_type}” is not a type of agent action.")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Say why the agent wants to do this: reviewers read it first.")
    if len(reason) > rules.MAX_DETAILS:
        raise InvalidInput(f"A reason is limited to {rules.MAX_DETAILS} characters.")
    proposed = action_propose(agent=agent, tool=tool, arguments=arguments, risk=risk)
    title = f"{proposed.tool} (asked by {proposed.agent})"[: rules.MAX_TITLE]
    return request_submit(
        requester=requester,
        request_type=request_type,
        title=title,
        details=reason,
        public_id=public_id,
        action=proposed,
    )


def purchase_problems(
    *, request_type: RequestType, amount: Decimal | None, cost_centre: CostCentre | None
) -> dict[str, str]:
    """What a purchase lacks, by field: its approval reserves the amount from the cost centre."""
    if not request_type.is_purchase:
        return {}
    problems = {}
    if amount is None or amount <= 0:
        problems["amount"] = f"A “{request_type}” request needs the amount it will cost."
    if cost_centre is None:
        problems["cost_centre"] = f"A “{request_type}” request needs the cost centre that pays for it."
    elif not cost_centre.is_active:
        problems["cost_centre"] = f"The cost centre {cost_centre.code} is closed; choose another."
    return problems


def _earlier_submission(*, public_id: uuid.UUID, requester: User) -> ApprovalRequest | None:
    existing = ApprovalRequest.objects.filter(public_id=public_id).first()
    if existing is not None and existing.requester_id != requester.pk:
        raise InvalidInput("This form was already used by someone else; open a new request form.")
    return existing


@transaction.atomic
def _request_create(
    *,
    requester: User,
    request_type: RequestType,
    title: str,
    details: str,
    amount: Decimal | None,
    cost_centre: CostCentre | None,
    resource: Resource | None,
    access_role: str,
    access_days: int | None,
    public_id: uuid.UUID,
    action: ProposedAction | None,
) -> ApprovalRequest:
    if not request_type.is_active:
        raise InvalidInput(f"“{request_type}” requests are no longer accepted.")
    policy = policy_snapshot(request_type=request_type, requester=requester)
    request = ApprovalRequest.objects.create(
        public_id=public_id,
        request_type=request_type,
        requester=requester,
        title=title,
        details=details,
        amount=amount,
        cost_centre=cost_centre,
        resource=resource,
        access_role=access_role,
        access_days=access_days,
        policy=dataclasses.asdict(policy),
        agent_name=action.agent if action else "",
        tool=action.tool if action else "",
        risk=action.risk if action else "",
        action_sha256=action.sha256 if action else "",
    )
    RequestRevision.objects.create(
        request=request,
        number=1,
        title=title,
        details=details,
        amount=amount,
        action_sha256=request.action_sha256,
    )
    if action is not None:
        ActionArguments.objects.create(request=request, sha256=action.sha256, canonical=action.canonical)
    submitted = RequestEvent.objects.create(
        request=request,
        seq=0,
        kind=EventKind.SUBMITTED.value,
        actor=requester,
        actor_name=display_name(requester),
        occurred_at=timezone.now(),
    )
    request_events_emit(request=request, events=[submitted])  # whether Temporal is there or not
    transaction.on_commit(lambda: request_start_workflow(public_id=public_id))
    return request


def approval_input_for(request: ApprovalRequest, *, policy: Policy | None = None) -> ApprovalInput:
    """What the request's workflow starts from: its policy (as submitted, or `policy`), its
    content, and who its first stage asks, found now (the workflow need not ask the read model
    in an activity of its own)."""
    policy = policy or codec.decode(Policy, request.policy)
    content = request.content()
    first = next_stage_index(policy, content, after=-1)
    assignees = None
    if first is not None:
        spec = policy.stages[first]
        assignees = approvers_for(
            user_ids=spec.user_ids, group_ids=spec.group_ids, requester_id=request.requester_id
        )
    return ApprovalInput(
        request_id=str(request.public_id),
        requester_id=request.requester_id,
        requester_name=display_name(request.requester),
        policy=policy,
        content=content,
        first_assignees=assignees,
    )


def request_start_workflow(*, public_id: Any) -> bool:
    """Start the request's workflow if it has not been started; True once it is running.

    Safe to call any number of times from any process: the workflow id is derived from the
    request, and Temporal refuses a second workflow with that id.
    """
    request = ApprovalRequest.objects.select_related("requester").filter(public_id=public_id).first()
    if request is None:
        raise NotFound(f"No request {public_id}.")
    if request.workflow_started_at is not None:
        return True
    try:
        temporal.start_approval(approval_input_for(request))
    except temporal.Rejected as exc:
        # Not an outage: Temporal refuses this request as it is, and would refuse it again. It
        # is noted as stopped, for its people and for staff (who may cancel it), and the outbox
        # goes on with the others.
        logger.error("Temporal refused to start %s: %s", request.workflow_id, exc)
        why = f"Temporal refused to start it: {exc}"[:500]
        ApprovalRequest.objects.filter(pk=request.pk).update(
            start_attempts=request.start_attempts + 1, last_start_error=str(exc)[:1000], workflow_stopped=why
        )
        return False
    except temporal.TemporalError as exc:
        logger.warning("Could not start %s yet: %s", request.workflow_id, exc)
        ApprovalRequest.objects.filter(pk=request.pk).update(
            start_attempts=request.start_attempts + 1, last_start_error=str(exc)[:1000]
        )
        return False
    ApprovalRequest.objects.filter(pk=request.pk, workflow_started_at__isnull=True).update(
        workflow_started_at=timezone.now(), start_attempts=request.start_attempts + 1, last_start_error=""
    )
    return True


def requests_start_pending(*, limit: int = 100) -> int:
    """The outbox relay: start workflows that could not be started on submit. Returns how many."""
    started = 0
    pending = ApprovalRequest.objects.filter(workflow_started_at__isnull=True, workflow_stopped="")
    for public_id in pending.order_by("created_at").values_list("public_id", flat=True)[:limit]:
        if request_start_workflow(public_id=public_id):
            started += 1
        elif not ApprovalRequest.objects.filter(public_id=public_id).exclude(workflow_stopped="").exists():
            break  # Temporal is still away; try again on the next round.
    return started
