"""The routing preview: who a request would go to, and by when, before it is submitted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.auth.models import User
from django.utils import timezone

from approvals.models import RequestType
from approvals.services.policies import policy_snapshot
from approvals.services.projection import approvers_for
from workflows.policy import condition_holds, condition_words, required_approvals
from workflows.types import Assignee, Content, Exhausted, Rule, StageSpec


@dataclass
class EscalationPreview:
    at: datetime
    approvers: list[Assignee]


@dataclass
class StagePreview:
    """One stage as it would run for this request if submitted now."""

    name: str
    applies: bool
    rule: str = ""
    approvers: list[Assignee] = field(default_factory=list)
    starts_by: datetime | None = None
    due: datetime | None = None
    escalation: list[EscalationPreview] = field(default_factory=list)
    gives_up_at: datetime | None = None
    gives_up: str = ""  # what happens then
    condition: str = ""


EXHAUSTED_WORDS = {
    Exhausted.REJECT: "the request is rejected",
    Exhausted.EXPIRE: "the request expires",
    Exhausted.APPROVE: "the stage approves itself",
}


def _rule_words(stage: StageSpec, assignees: int) -> str:
    need = required_approvals(stage, assignees)
    if stage.rule == Rule.ANY or assignees <= 1:
        return "one approval decides"
    if stage.rule == Rule.ALL:
        return f"all {assignees} must approve"
    return f"{need} of {assignees} must approve"


def routing_preview(
    *, requester: User, request_type: RequestType, amount: Decimal | None
) -> list[StagePreview]:
    """Who will be asked, and by when at the latest, if this request were submitted now.

    The same rules as the workflow (conditions, groups, delegations, the requester never
    approving their own request), with each stage assumed to take its full time.
    """
    policy = policy_snapshot(request_type=request_type)
    content = Content(title="", amount=None if amount is None else str(amount))
    start = timezone.now()
    previews = []
    for stage in policy.stages:
        condition = condition_words(stage.condition) if stage.condition is not None else ""
        if not condition_holds(stage.condition, content):
            previews.append(StagePreview(name=stage.name, applies=False, condition=condition))
            continue
        approvers = approvers_for(
            user_ids=stage.user_ids, group_ids=stage.group_ids, requester_id=requester.pk
        )
        due = start + timedelta(seconds=stage.deadline_seconds)
        escalation = []
        at = due
        for number, level in enumerate(stage.escalation, start=1):
            people = approvers_for(
                user_ids=level.user_ids, group_ids=level.group_ids, requester_id=requester.pk, level=number
            )
            escalation.append(EscalationPreview(at=at, approvers=people))
            at += timedelta(seconds=level.after_seconds)
        previews.append(
            StagePreview(
                name=stage.name,
                applies=True,
                rule=_rule_words(stage, len(approvers)),
                approvers=approvers,
                starts_by=start,
                due=due,
                escalation=escalation,
                gives_up_at=at,
                gives_up=EXHAUSTED_WORDS[stage.on_exhausted],
                condition=condition,
            )
        )
        start = due
    return previews
