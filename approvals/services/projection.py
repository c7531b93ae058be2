"""Called by activities: who a stage assigns, and the read model of each workflow state."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Case, DateTimeField, Q, Value, When
from django.utils import timezone

from approvals.exceptions import NotFound
from approvals.live import Change
from approvals.models import (
    PENDING_CONFIRMED_WITHIN,
    ApprovalRequest,
    Assignment,
    Delegation,
    Participant,
    PendingAction,
    RequestEvent,
    RequestRevision,
    StageRun,
    WorkflowSnapshot,
)
from approvals.selectors.requests import display_name
from approvals.services.webhooks import request_events_emit
from workflows import codec, rules
from workflows.types import (
    ActionKind,
    Assignee,
    AssignInput,
    EventKind,
    Projection,
    RequestStatus,
)


def approvers_resolve(*, assign: AssignInput) -> list[Assignee]:
    """The people a stage (or escalation level) of this request assigns."""
    if not ApprovalRequest.objects.filter(public_id=assign.request_id).exists():
        raise NotFound(f"No request {assign.request_id}.")
    return approvers_for(
        user_ids=assign.user_ids,
        group_ids=assign.group_ids,
        requester_id=assign.requester_id,
        level=assign.level,
        exclude_ids=assign.exclude_ids,
    )


def approvers_for(
    *,
    user_ids: list[int],
    group_ids: list[int],
    requester_id: int,
    level: int = 0,
    exclude_ids: list[int] | None = None,
) -> list[Assignee]:
    """The people these users and groups mean now, each once, never the requester nor anyone
    in `exclude_ids`.

    Groups are expanded to their active members; an active out-of-office delegation puts the
    delegate in the absent person's place (unless the delegate is one of those never asked).
    """
    never = [requester_id, *(exclude_ids or [])]
    users = (
        User.objects.filter(is_active=True)
        .filter(Q(pk__in=user_ids) | Q(groups__in=group_ids))
        .exclude(pk__in=never)
        .distinct()
        .order_by("pk")
    )
    now = timezone.now()
    away = {
        d.user_id: d.delegate
        for d in Delegation.objects.filter(
            user__in=users, starts_at__lte=now, ends_at__gt=now, delegate__is_active=True
        )
        .exclude(delegate_id__in=never)
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


def request_project(*, projection: Projection) -> Change | None:
    """Project one workflow state into the read model; idempotent and safe out of order.

    Returns who may see the request, to tell their open pages once this has committed; None
    when the read model already had all of it."""
    with transaction.atomic():
        request = ApprovalRequest.objects.select_for_update().filter(public_id=projection.request_id).first()
        if request is None:
            raise NotFound(f"No request {projection.request_id}.")
        kept: list[RequestEvent] = []
        new = _project(request, projection, kept)
        request_events_emit(request=request, events=kept)  # the webhooks' events, in this transaction
        return request_change(request) if new else None


def request_change(request: ApprovalRequest) -> Change:
    """That the request changed, for the pages of everyone who may see it (staff aside): its
    requester and everyone ever assigned to it."""
    participants = request.participants.values_list("user_id", flat=True)
    return Change(str(request.public_id), tuple(sorted({request.requester_id, *participants})))


def _project(request: ApprovalRequest, projection: Projection, kept: list[RequestEvent]) -> bool:
    """Write what the read model lacks of the projection (the new timeline events into `kept`
    too); whether anything was new.

    The caller holds the request's row lock, which every projection of it takes: what is read
    here is not written by another meanwhile, so each kind of row is read once and the missing
    ones written in one statement."""
    known = set(
        RequestEvent.objects.filter(request=request, seq__in=[e.seq for e in projection.events]).values_list(
            "seq", flat=True
        )
    )
    events = [
        RequestEvent(
            request=request,
            seq=event.seq,
            kind=event.kind.value,
            actor_id=event.actor_id,
            actor_name=event.actor_name,
            comment=event.comment,
            detail=event.detail[:500],
            stage=event.stage,
            revision=event.revision,
            occurred_at=event.at,
            action_id=event.action_id,
        )
        for event in {e.seq: e for e in projection.events}.values()
        if event.seq not in known
    ]
    RequestEvent.objects.bulk_create(events)
    kept += events
    new = bool(events)
    # The actions these events confirm are pending no more (see services.actions). Read once,
    # one query whether there are any or not (most requests have none); the newest projection
    # settles the rest below.
    sent = list(request.pending_actions.all())
    confirmed = {event.action_id for event in projection.events if event.action_id}
    if done := [p.pk for p in sent if p.action_id in confirmed]:
        PendingAction.objects.filter(pk__in=done).delete()
        sent = [p for p in sent if p.pk not in done]
    if projection.new_participants:
        there = set(request.participants.values_list("user_id", flat=True))
        first: dict[int, Assignee] = {}  # each person once, as first named
        for person in projection.new_participants:
            first.setdefault(person.user_id, person)
        people = [
            Participant(request=request, user_id=p.user_id, level=p.level, acting_for_id=p.acting_for_id)
            for p in first.values()
            if p.user_id not in there
        ]
        Participant.objects.bulk_create(people)
        new = new or bool(people)
    content = projection.content
    if content is not None:
        amount = None if content.amount is None else Decimal(content.amount)
        RequestRevision.objects.get_or_create(
            request=request,
            number=projection.revision,
            defaults={
                "title": content.title,
                "details": content.details,
                "amount": amount,
                "action_sha256": content.action_sha256,
            },
        )
    if projection.seq <= request.version:
        return new  # a newer state is already recorded; events and people above were still kept
    request.version = projection.seq
    if projection.state is not None:
        WorkflowSnapshot.objects.bulk_create(
            [WorkflowSnapshot(request=request, state=codec.encode(projection.state))],
            update_conflicts=True,
            unique_fields=["request"],
            update_fields=["state"],
        )
    request.workflow_stopped = ""  # it projects: it runs
    request.status = projection.status.value
    request.revision = projection.revision
    if content is not None:
        request.title, request.details, request.amount = content.title, content.details, amount
        request.action_sha256 = content.action_sha256
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
        if projection.status in (RequestStatus.APPROVED, RequestStatus.REJECTED):
            request.decision_seconds = _seconds(request.created_at, projection.decided.at)
    request.save()
    _pending_settle(sent, projection=projection)
    # Who waits now, with the deadline; who waited and no longer does, without.
    waiting = Q(user_id__in=[p.user_id for p in projection.pending])
    request.participants.filter(waiting | Q(pending=True)).update(
        pending=Case(When(waiting, then=Value(True)), default=Value(False)),
        deadline=Case(When(waiting, then=Value(projection.deadline, output_field=DateTimeField())))
        if projection.deadline
        else None,
    )
    _stage_runs_project(request=request, projection=projection)
    _assignments_project(request=request, projection=projection)
    return True


def _pending_settle(sent: list[PendingAction], *, projection: Projection) -> None:
    """Actions sent and not confirmed (`sent`, of this request) that can no longer count are
    pending no more: all of them once the request ends, and those long unconfirmed (the workflow
    has had its chance at them) that the rules would now refuse their sender, who approved
    meanwhile through another form, say. (The workflow refuses them alike, should Temporal still
    hold one.)"""
    state, overdue = projection.state, timezone.now() - PENDING_CONFIRMED_WITHIN

    def moot(pending: PendingAction) -> bool:
        if projection.status.is_final:
            return True
        if state is None or pending.sent_at >= overdue:
            return False
        kind = ActionKind(pending.kind)
        return rules.standing(state, kind, pending.actor_id, as_staff=kind == ActionKind.CANCEL) is not None

    if settled := [p.pk for p in sent if moot(p)]:
        PendingAction.objects.filter(pk__in=settled).delete()


def _seconds(start: datetime, end: datetime) -> int:
    return max(int((end - start).total_seconds()), 0)


# What ends a run of a stage (the values are the event kinds').
STAGE_ENDS = frozenset(
    {
        EventKind.STAGE_APPROVED,
        EventKind.REJECTED,
        EventKind.CHANGES_REQUESTED,
        EventKind.EXPIRED,
        EventKind.WITHDRAWN,
        EventKind.CANCELLED,
    }
)


def _stage_runs_project(*, request: ApprovalRequest, projection: Projection) -> None:
    """Close the open run of a stage on the event that ended it; open a run when a stage starts.

    A batch holds at most one stage start (a stage starts once its approvers are resolved, and
    the workflow projects right after), and it belongs to the projection's current stage."""
    for event in projection.events:
        if event.kind == EventKind.STAGE_STARTED:
            StageRun.objects.get_or_create(
                request=request,
                stage_version=projection.stage_version,
                defaults={
                    "request_type_id": request.request_type_id,
                    "stage_name": event.stage,
                    "started_at": event.at,
                },
            )
        elif event.kind in STAGE_ENDS:
            run = request.stage_runs.filter(closed_at__isnull=True).order_by("-started_at").first()
            if run is not None and run.stage_name == event.stage:
                run.closed_at, run.outcome = event.at, event.kind.value
                run.seconds = _seconds(run.started_at, event.at)
                run.save(update_fields=["closed_at", "outcome", "seconds"])


# What ends an assignment with the person's own answer (the values are the event kinds').
ANSWERS = frozenset(
    {EventKind.APPROVAL, EventKind.REJECTED, EventKind.CHANGES_REQUESTED, EventKind.DELEGATED}
)


def _assignments_project(*, request: ApprovalRequest, projection: Projection) -> None:
    """Open an assignment for each person the stage now waits on; close, with their answer if
    they gave one, those it no longer waits on. Runs for the newest projection only, and
    projections of one request run one after another, so no change of who waits is missed."""
    at = max(e.at for e in projection.events)
    answers = {e.actor_id: e for e in projection.events if e.kind in ANSWERS and e.actor_id is not None}
    waiting = {a.user_id: a for a in projection.pending}
    still_open: set[int] = set()
    for assignment in request.assignments.filter(closed_at__isnull=True):
        if assignment.user_id in waiting and assignment.stage_version == projection.stage_version:
            still_open.add(assignment.user_id)
            continue
        answer = answers.get(assignment.user_id)
        assignment.closed_at = answer.at if answer else at
        assignment.outcome = answer.kind.value if answer else Assignment.Outcome.NOT_NEEDED
        assignment.seconds = _seconds(assignment.asked_at, assignment.closed_at)
        assignment.save(update_fields=["closed_at", "outcome", "seconds"])
    for user_id, person in waiting.items():
        if user_id not in still_open:
            Assignment.objects.get_or_create(
                request=request,
                user_id=user_id,
                stage_version=projection.stage_version,
                closed_at=None,
                defaults={"stage_name": projection.stage_name, "level": person.level, "asked_at": at},
            )
