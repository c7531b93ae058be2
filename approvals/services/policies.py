"""The policy snapshot: a request type's stages as data the workflow carries."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import User

from approvals.exceptions import InvalidInput
from approvals.models import RequestType
from workflows.types import (
    Condition,
    EscalationLevel,
    Exhausted,
    Fulfilment,
    Operator,
    Policy,
    Rule,
    StageSpec,
)


def _seconds(duration: timedelta) -> int:
    return int(duration.total_seconds())


def policy_snapshot(*, request_type: RequestType, requester: User | None = None) -> Policy:
    """Freeze the request type's current policy; later edits never reach requests in flight.
    With the `requester`, the stages that trust them approve by themselves (see
    Stage.auto_approve_groups): whom a stage trusts is weighed once, on submission."""
    stages = []
    groups = set(requester.groups.values_list("pk", flat=True)) if requester is not None else set()
    for stage in request_type.stages.prefetch_related(
        "approver_users",
        "approver_groups",
        "escalation_levels__users",
        "escalation_levels__groups",
        "auto_approve_groups",
    ):
        condition = None
        if stage.condition_field:
            value = stage.condition_value if stage.condition_field == "amount" else stage.condition_text
            condition = Condition(
                field=stage.condition_field, operator=Operator(stage.condition_operator), value=str(value)
            )
        stages.append(
            StageSpec(
                name=stage.name,
                rule=Rule(stage.rule),
                required=stage.required_approvals,
                deadline_seconds=_seconds(stage.deadline),
                reminder_seconds=_seconds(stage.reminder_interval) if stage.reminder_interval else None,
                user_ids=sorted(u.pk for u in stage.approver_users.all()),
                group_ids=sorted(g.pk for g in stage.approver_groups.all()),
                escalation=[
                    EscalationLevel(
                        after_seconds=_seconds(level.after),
                        user_ids=sorted(u.pk for u in level.users.all()),
                        group_ids=sorted(g.pk for g in level.groups.all()),
                    )
                    for level in stage.escalation_levels.all()
                ],
                on_exhausted=Exhausted(stage.on_exhausted),
                condition=condition,
                auto_approve=bool(groups & {g.pk for g in stage.auto_approve_groups.all()}),
            )
        )
    if not stages:
        raise InvalidInput(f"“{request_type}” has no approval stages yet; ask an admin to set up its policy.")
    return Policy(
        request_type=request_type.name,
        stages=stages,
        distinct_approvers=request_type.distinct_approvers,
        undo_seconds=request_type.undo_seconds,
        fulfilment=Fulfilment(request_type.fulfilment),
    )
