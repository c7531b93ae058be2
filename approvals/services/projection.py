"""Called by activities: who a stage assigns, and the read model of each workflow state."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from approvals.exceptions import NotFound
from approvals.models import ApprovalRequest, Delegation, Participant, RequestEvent, RequestRevision
from approvals.services.requests import display_name
from workflows.types import Assignee, AssignInput, Projection


def approvers_resolve(*, assign: AssignInput) -> list[Assignee]:
    """The people a stage (or escalation level) of this request assigns."""
    if not ApprovalRequest.objects.filter(public_id=assign.request_id).exists():
        raise NotFound(f"No request {assign.request_id}.")
    return approvers_for(
        user_ids=assign.user_ids,
        group_ids=assign.group_ids,
        requester_id=assign.requester_id,
        exclude_ids=assign.exclude_ids,
        level=assign.level,
    )


def approvers_for(
    *,
    user_ids: list[int],
    group_ids: list[int],
    requester_id: int,
    exclude_ids: list[int] | None = None,
    level: int = 0,
) -> list[Assignee]:
    """The people these users and groups mean now, each once, never the requester.

    Groups are expanded to their active members; an active out-of-office delegation puts the
    delegate in the absent person's place (unless the delegate is the requester).
    """
    users = (
        User.objects.filter(is_active=True)
        .filter(Q(pk__in=user_ids) | Q(groups__in=group_ids))
        .exclude(pk__in=[requester_id, *(exclude_ids or [])])
        .distinct()
        .order_by("pk")
    )
    now = timezone.now()
    away = {
        d.user_id: d.delegate
        for d in Delegation.objects.filter(
            user__in=users, starts_at__lte=now, ends_at__gt=now, delegate__is_active=True
        )
        .exclude(delegate_id=requester_id)
        .select_related("delegate")
        .order_by("starts_at")
    }
    assignees: list[Assignee] = []
    seen: set[int] = set()
    for user in users:
        delegate = away.get(user.pk)
        person = delegate or user
        if person.pk in seen:
            continue  # a person counts once, even when they also stand in for someone
        seen.add(person.pk)
        assignees.append(
            Assignee(
                user_id=person.pk,
                name=display_name(person),
                level=level,
                acting_for_id=user.pk if delegate else None,
                acting_for_name=display_name(user) if delegate else "",
            )
        )
    return assignees


@transaction.atomic
def request_project(*, projection: Projection) -> None:
    """Project one workflow state into the read model; idempotent and safe out of order."""
    request = ApprovalRequest.objects.select_for_update().filter(public_id=projection.request_id).first()
    if request is None:
        raise NotFound(f"No request {projection.request_id}.")
    for event in projection.events:
        RequestEvent.objects.get_or_create(
            request=request,
            seq=event.seq,
            defaults={
                "kind": event.kind.value,
                "actor_id": event.actor_id,
                "actor_name": event.actor_name,
                "comment": event.comment,
                "detail": event.detail[:500],
                "stage": event.stage,
                "revision": event.revision,
                "occurred_at": event.at,
            },
        )
    for person in projection.new_participants:
        Participant.objects.get_or_create(
            request=request,
            user_id=person.user_id,
            defaults={"level": person.level, "acting_for_id": person.acting_for_id},
        )
    content = projection.content
    amount = None if content.amount is None else Decimal(content.amount)
    RequestRevision.objects.get_or_create(
        request=request,
        number=projection.revision,
        defaults={"title": content.title, "details": content.details, "amount": amount},
    )
    if projection.seq <= request.version:
        return  # a newer state is already recorded; events and people above were still kept
    request.version = projection.seq
    request.status = projection.status.value
    request.revision = projection.revision
    request.title, request.details, request.amount = content.title, content.details, amount
    request.stage_name = projection.stage_name
    request.stage_version = projection.stage_version
    request.stage_number = projection.stage_number
    request.stage_count = projection.stage_count
    request.deadline = projection.deadline
    if projection.decided:
        request.decided_by_id = projection.decided.by_id
        request.decided_by_name = projection.decided.by_name
        request.decided_at = projection.decided.at
        request.decision_comment = projection.decided.comment
    request.save()
    pending = {p.user_id: p for p in projection.pending}
    request.participants.exclude(user_id__in=pending).filter(pending=True).update(
        pending=False, deadline=None
    )
    request.participants.filter(user_id__in=pending).update(pending=True, deadline=projection.deadline)
