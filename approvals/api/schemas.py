"""What the API reads and writes, as JSON: each shape built from the read model in one place."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from django.conf import settings
from django.contrib.auth.models import User
from ninja import Field, Schema

from approvals import selectors
from approvals.models import ApprovalRequest, Participant, RequestEvent, RequestRevision
from approvals.selectors.agents import agent_action
from approvals.selectors.requests import display_name
from approvals.services import agents
from approvals.services.routing import StagePreview
from workflows import rules
from workflows.types import Policy, RequestStatus, StageSpec


class Person(Schema):
    username: str
    name: str


def person(user: User) -> Person:
    return Person(username=user.get_username(), name=display_name(user))


class Stage(Schema):
    name: str
    number: int
    count: int


class Waiting(Schema):
    username: str
    name: str
    level: int = Field(description="0: the stage's approver; k: added by escalation level k")
    acting_for: str = ""
    decision_held_until: datetime | None = Field(
        None, description="Their decision, made and taking effect then unless they undo it."
    )


class Abilities(Schema):
    decide: bool
    comment: bool
    withdraw: bool
    resubmit: bool


class ActionVersion(Schema):
    revision: int
    sha256: str
    arguments: dict[str, Any]
    proposed_by: str = Field(description="The agent (empty) or the reviewer who edited it (their username).")


class AgentActionOut(Schema):
    agent: str
    tool: str
    risk: str
    sha256: str = Field(description="SHA-256 of the canonical JSON (RFC 8785) of {tool, arguments}.")
    arguments: dict[str, Any] = Field(description="The arguments of the version under review (or approved).")
    versions: list[ActionVersion] = Field(description="Each version, oldest first: edits make new ones.")
    token_used_at: datetime | None = Field(None, description="When its approval token was accepted.")


class RequestOut(Schema):
    id: uuid.UUID
    url: str = Field(description="The request's page in the browser.")
    type: str = Field(description="The request type's slug.")
    type_name: str
    title: str
    details: str
    amount: Decimal | None
    cost_centre: str | None
    resource: str | None
    access_role: str
    access_days: int | None
    status: str
    status_label: str
    stage: Stage | None
    deadline: datetime | None
    overdue: bool
    requester: Person
    created_at: datetime
    revision: int
    decided_by: str = Field(description="Who decided it, as the timeline names them.")
    decided_at: datetime | None
    decision_comment: str
    fulfilment: str
    waiting_for: list[Waiting]
    you_may: Abilities = Field(description="What the token's owner may do on it now.")
    workflow_started: bool = Field(description="False while its review waits for Temporal to start it.")
    action: AgentActionOut | None = Field(None, description="An agent action's exact action; none otherwise.")
    approval_token: str | None = Field(
        None,
        description=(
            "An approved agent action's token, for its requester only: present it to "
            "/agent-actions/verify with the exact arguments before acting. It is accepted once."
        ),
    )
    approval_token_expires_at: datetime | None = None


def action_out(request: ApprovalRequest) -> AgentActionOut | None:
    action = agent_action(request=request)
    if action is None:
        return None
    current = action.current
    return AgentActionOut(
        agent=action.agent,
        tool=action.tool,
        risk=action.risk,
        sha256=action.sha256,
        arguments=current.arguments if current else {},
        versions=[
            ActionVersion(
                revision=v.revision,
                sha256=v.sha256,
                arguments=v.arguments,
                proposed_by=v.proposed_by.get_username() if v.proposed_by else "",
            )
            for v in action.versions
        ],
        token_used_at=action.token_used_at,
    )


def request_out(*, user: User, request: ApprovalRequest) -> RequestOut:
    state = selectors.request_state(request=request)
    may = selectors.request_abilities(user=user, request=request, state=state)
    held = {h.action.actor_id: h for h in state.held}
    waiting = []
    if request.status == RequestStatus.IN_REVIEW:
        pending = state.pending()
        usernames = dict(
            User.objects.filter(pk__in=[a.user_id for a in pending]).values_list("pk", "username")
        )
        for a in pending:
            hold = held.get(a.user_id)
            waiting.append(
                Waiting(
                    username=usernames.get(a.user_id, ""),
                    name=a.name,
                    level=a.level,
                    acting_for=a.acting_for_name,
                    decision_held_until=hold.until if hold else None,
                )
            )
    stage = None
    if request.stage_count:
        stage = Stage(name=request.stage_name, number=request.stage_number, count=request.stage_count)
    return RequestOut(
        id=request.public_id,
        url=settings.SITE_URL + request.get_absolute_url(),
        type=request.request_type.slug,
        type_name=request.request_type.name,
        title=request.title,
        details=request.details,
        amount=request.amount,
        cost_centre=request.cost_centre.code if request.cost_centre_id and request.cost_centre else None,
        resource=request.resource.code if request.resource_id and request.resource else None,
        access_role=request.access_role,
        access_days=request.access_days,
        status=request.status,
        status_label=request.get_status_display(),
        stage=stage,
        deadline=request.deadline,
        overdue=request.is_overdue,
        requester=person(request.requester),
        created_at=request.created_at,
        revision=request.revision,
        decided_by=request.decided_by_name,
        decided_at=request.decided_at,
        decision_comment=request.decision_comment,
        fulfilment=request.fulfilment,
        waiting_for=waiting,
        you_may=Abilities(
            decide=may.decide, comment=may.comment, withdraw=may.withdraw, resubmit=may.resubmit
        ),
        workflow_started=request.workflow_started_at is not None,
        action=action_out(request),
        approval_token=agents.approval_token(request) if request.requester_id == user.pk else None,
        approval_token_expires_at=agents.token_expiry(request)
        if request.requester_id == user.pk and request.is_agent_action
        else None,
    )


class RequestIn(Schema):
    type: str = Field(description="The request type's slug (see /request-types).")
    title: str
    details: str = ""
    amount: Decimal | None = None
    cost_centre: str | None = Field(None, description="For purchases: the cost centre's code.")
    resource: str | None = Field(None, description="For access requests: the resource's code.")
    access_role: str = ""
    access_days: int | None = None


class Event(Schema):
    seq: int
    kind: str
    label: str
    actor: str | None = Field(description="The actor's username; none for the system's own events.")
    actor_name: str
    comment: str
    detail: str
    stage: str
    revision: int
    occurred_at: datetime


def event_out(event: RequestEvent) -> Event:
    return Event(
        seq=event.seq,
        kind=event.kind,
        label=event.label,
        actor=event.actor.get_username() if event.actor_id and event.actor else None,
        actor_name=event.actor_name,
        comment=event.comment,
        detail=event.note,
        stage=event.stage,
        revision=event.revision,
        occurred_at=event.occurred_at,
    )


class Revision(Schema):
    number: int
    title: str
    details: str
    amount: Decimal | None
    created_at: datetime


def revision_out(revision: RequestRevision) -> Revision:
    return Revision(
        number=revision.number,
        title=revision.title,
        details=revision.details,
        amount=revision.amount,
        created_at=revision.created_at,
    )


class Escalation(Schema):
    after_seconds: int


class StagePolicy(Schema):
    name: str
    rule: str = Field(description="any, all or n_of_m")
    required: int
    deadline_seconds: int
    reminder_seconds: int | None
    condition: str = Field(description="When the stage applies; empty: always.")
    escalation: list[Escalation]
    on_exhausted: str = Field(description="What happens when the last level runs out.")


class PolicyOut(Schema):
    stages: list[StagePolicy]
    distinct_approvers: bool
    undo_seconds: int
    fulfilment: str


def _stage_policy(stage: StageSpec) -> StagePolicy:
    from workflows.policy import condition_words

    return StagePolicy(
        name=stage.name,
        rule=stage.rule.value,
        required=stage.required,
        deadline_seconds=stage.deadline_seconds,
        reminder_seconds=stage.reminder_seconds,
        condition=condition_words(stage.condition) if stage.condition is not None else "",
        escalation=[Escalation(after_seconds=level.after_seconds) for level in stage.escalation],
        on_exhausted=stage.on_exhausted.value,
    )


def policy_out(policy: Policy) -> PolicyOut:
    return PolicyOut(
        stages=[_stage_policy(stage) for stage in policy.stages],
        distinct_approvers=policy.distinct_approvers,
        undo_seconds=policy.undo_seconds,
        fulfilment=policy.fulfilment.value,
    )


class Snapshots(Schema):
    revisions: list[Revision] = Field(description="The content as each revision was submitted.")
    policy: PolicyOut = Field(description="The policy as it was when the request was submitted.")


class RequestTypeOut(Schema):
    slug: str
    name: str
    description: str
    fulfilment: str
    policy: PolicyOut


class InboxItem(Schema):
    request: RequestOut
    waiting: bool = Field(description="It waits for this person's decision now.")
    level: int
    acting_for: str
    deadline: datetime | None
    assigned_at: datetime


def inbox_item_out(*, user: User, place: Participant) -> InboxItem:
    return InboxItem(
        request=request_out(user=user, request=place.request),
        waiting=place.pending,
        level=place.level,
        acting_for=display_name(place.acting_for) if place.acting_for else "",
        deadline=place.deadline,
        assigned_at=place.added_at,
    )


class RequestPage(Schema):
    results: list[RequestOut]
    next: str | None = Field(description="The cursor of the next page; none on the last.")


class InboxPage(Schema):
    results: list[InboxItem]
    next: str | None


class ActionIn(Schema):
    kind: Literal["approve", "reject", "request_changes", "comment"]
    comment: str = Field("", max_length=rules.MAX_COMMENT)
    action_sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description=(
            "Approving an agent action: the version you approve (its `action.sha256` as you read "
            "it); refused if it has been edited since. None: the version under review now."
        ),
    )


class AgentActionIn(Schema):
    type: str | None = Field(
        None, description="The request type's slug; none: the one type of agent action there is."
    )
    agent: str = Field(min_length=1, max_length=agents.MAX_AGENT_NAME, description="The agent's name.")
    tool: str = Field(description="The tool it would call, such as orders.refund.")
    arguments: dict[str, Any] = Field(description="The tool's arguments, exactly as it would call it.")
    reason: str = Field(min_length=1, max_length=rules.MAX_DETAILS, description="Why, for the reviewers.")
    risk: Literal["low", "medium", "high", "critical"] | None = Field(
        None, description=f"How risky the agent judges it; none counts as {agents.DEFAULT_RISK}."
    )


class VerifyIn(Schema):
    token: str = Field(min_length=1, max_length=2000)
    tool: str
    arguments: dict[str, Any]


class VerifyOut(Schema):
    valid: bool = Field(description="True once: go ahead with exactly this action.")
    code: Literal["approved", "not_a_token", "expired", "not_approved", "arguments_differ", "used"]
    message: str
    request: uuid.UUID | None
    sha256: str = Field(description="The hash the token approves (empty for a token not ours).")


class ActionOut(Schema):
    outcome: Literal["done", "pending"] = Field(
        description="done: the workflow took it (the request shows it); pending: sent, not confirmed yet."
    )
    message: str
    undo_until: datetime | None = Field(None, description="A decision held for the undo period ends then.")
    request: RequestOut


class Approver(Schema):
    name: str
    level: int
    acting_for: str


class EscalationPreview(Schema):
    at: datetime
    approvers: list[Approver]


class StagePreviewOut(Schema):
    name: str
    applies: bool
    condition: str
    rule: str
    approvers: list[Approver]
    starts_by: datetime | None
    due: datetime | None
    escalation: list[EscalationPreview]
    gives_up_at: datetime | None
    gives_up: str


def stage_preview_out(stage: StagePreview) -> StagePreviewOut:
    def approvers(people: list[Any]) -> list[Approver]:
        return [Approver(name=a.name, level=a.level, acting_for=a.acting_for_name) for a in people]

    return StagePreviewOut(
        name=stage.name,
        applies=stage.applies,
        condition=stage.condition,
        rule=stage.rule,
        approvers=approvers(stage.approvers),
        starts_by=stage.starts_by,
        due=stage.due,
        escalation=[EscalationPreview(at=e.at, approvers=approvers(e.approvers)) for e in stage.escalation],
        gives_up_at=stage.gives_up_at,
        gives_up=stage.gives_up,
    )


class RoutingPreviewOut(Schema):
    stages: list[StagePreviewOut]
    distinct_approvers: bool
