"""Access grants: granted once per key by an access request's fulfilment (at ACCESS_GRANT_URL
too, when set), recorded as the grant's workflow reports each change, ended when it says so; and
what people do to a grant (ask for more time, decide an extension, revoke), sent to its
workflow, which alone decides."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals import client as temporal
from approvals.exceptions import ActionPending, ActionRefused, InvalidInput, NotFound, WorkflowUnavailable
from approvals.live import Change
from approvals.models import AccessGrant, ApprovalRequest, GrantEvent, RequestType, Resource
from approvals.selectors.requests import display_name
from approvals.services.notifications import notification_send
from approvals.services.partners import partner_post
from approvals.services.projection import approvers_for, request_change
from approvals.services.webhooks import grant_event_emit
from workflows import codec, rules
from workflows.types import (
    GrantAction,
    GrantActionKind,
    GrantEnd,
    GrantInfo,
    GrantReport,
    GrantStatus,
    StepInput,
)

WHAT = "The access endpoint"
ROLLED_BACK = "The request's fulfilment was rolled back."


def access_problems(
    *, request_type: RequestType, resource: Resource | None, role: str, days: int | None
) -> dict[str, str]:
    """What an access request lacks, by field."""
    if not request_type.is_access:
        return {}
    problems = {}
    if resource is None:
        problems["resource"] = f"A “{request_type}” request needs the resource it is for."
    elif not resource.is_active:
        problems["resource"] = f"{resource} is no longer in the catalogue; choose another."
    elif role not in resource.role_list:
        problems["access_role"] = f"Choose one of the roles of {resource}: {', '.join(resource.role_list)}."
    longest = resource.max_days if resource is not None else rules.MAX_GRANT_DAYS
    if days is None or not 1 <= days <= longest:
        problems["access_days"] = f"Ask for 1 to {longest} days."
    return problems


def _request(request_id: str) -> ApprovalRequest:
    request = (
        ApprovalRequest.objects.select_related("resource", "requester").filter(public_id=request_id).first()
    )
    if request is None:
        raise NotFound(f"No request {request_id}.")
    return request


def _post(path: str, key: str, body: dict[str, object], none_is: int | None = None) -> dict[str, object]:
    return partner_post(
        url=settings.ACCESS_GRANT_URL + path,
        key=key,
        body=body,
        timeout=settings.ACCESS_GRANT_TIMEOUT,
        what=WHAT,
        none_is=none_is,
    )


def access_grant(*, step: StepInput) -> str:
    """Grant the access the request asked for, once per key (asked again: the grant made)."""
    request = _request(step.request_id)
    if request.resource is None or not request.access_role or not request.access_days:
        raise InvalidInput("The request does not say what access, as whom, for how long.")
    grant = AccessGrant.objects.filter(key=step.key).first()
    if grant is None:
        now = timezone.now()
        ends = now + timedelta(days=request.access_days)
        if settings.ACCESS_GRANT_URL:
            _post(
                "",
                step.key,
                {
                    "request": str(request.public_id),
                    "holder": request.requester.get_username(),
                    "resource": request.resource.code,
                    "role": request.access_role,
                    "until": ends.isoformat(),
                },
            )
        try:
            with transaction.atomic():
                grant = AccessGrant.objects.create(
                    key=step.key,
                    request=request,
                    holder=request.requester,
                    resource=request.resource,
                    role=request.access_role,
                    starts_at=now,
                    ends_at=ends,
                    external=bool(settings.ACCESS_GRANT_URL),
                )
        except IntegrityError:  # granted meanwhile under the same key
            grant = AccessGrant.objects.get(key=step.key)
    days = request.access_days
    return f"{grant.role} on {grant.resource} for {days} day{'s' if days != 1 else ''}"


def access_take_back(*, step: StepInput) -> str:
    """The grant's compensation: take back what it granted under this key, once."""
    grant = AccessGrant.objects.select_related("resource").filter(key=step.key).first()
    if grant is None:
        if settings.ACCESS_GRANT_URL:  # granted there, with its answer lost?
            _post("/revoke", f"{step.key}:revoke", {"key": step.key}, none_is=404)
        return ""
    _end(grant, GrantStatus.REVOKED, by_name="", reason=ROLLED_BACK)
    return f"{grant.role} on {grant.resource} taken back"


def grant_end(*, end: GrantEnd) -> None:
    """End the request's access: revoked by someone, or its period over (its workflow says)."""
    grant = AccessGrant.objects.select_related("resource").filter(request__public_id=end.request_id).first()
    if grant is None:
        raise NotFound(f"No access was granted for {end.request_id}.")
    _end(grant, end.status, by_name=end.by_name, reason=end.reason, at=end.at)


def _end(
    grant: AccessGrant, status: GrantStatus, *, by_name: str, reason: str, at: datetime | None = None
) -> None:
    if grant.external:
        _post("/revoke", f"{grant.key}:revoke", {"key": grant.key, "reason": reason}, none_is=404)
    AccessGrant.objects.filter(pk=grant.pk, status=AccessGrant.Status.ACTIVE).update(
        status=status.value,
        ended_at=at or timezone.now(),
        ended_by_name=by_name,
        end_reason=reason,
        extension=None,
    )


def grant_load(*, request_id: str) -> GrantInfo:
    """What the grant's workflow starts from: the grant, and who approves extensions of it."""
    grant = (
        AccessGrant.objects.select_related("holder", "resource", "request")
        .filter(request__public_id=request_id)
        .first()
    )
    if grant is None:
        raise NotFound(f"No access was granted for {request_id}.")
    resource = grant.resource
    approvers = approvers_for(
        user_ids=list(resource.approvers.values_list("pk", flat=True)),
        group_ids=list(resource.approver_groups.values_list("pk", flat=True)),
        requester_id=grant.holder_id,
    )
    return GrantInfo(
        holder_id=grant.holder_id,
        holder_name=display_name(grant.holder),
        resource=resource.name,
        role=grant.role,
        ends_at=grant.ends_at,
        approver_ids=sorted({a.user_id for a in approvers}),
        max_days=resource.max_days,
        days=grant.request.access_days or 0,
    )


def grant_record(*, report: GrantReport) -> Change | None:
    """Record one change of the grant, once and in order; then send its email, once."""
    with transaction.atomic():
        grant = (
            AccessGrant.objects.select_for_update()
            .select_related("request")
            .filter(request__public_id=report.request_id)
            .first()
        )
        if grant is None:
            raise NotFound(f"No access was granted for {report.request_id}.")
        event = report.event
        kept, new = GrantEvent.objects.get_or_create(
            grant=grant,
            seq=event.seq,
            defaults={
                "kind": event.kind.value,
                "actor_id": event.actor_id,
                "actor_name": event.actor_name,
                "detail": event.detail,
                "occurred_at": event.at,
            },
        )
        if report.seq > grant.seq:
            grant.seq = report.seq
            grant.status = report.status.value
            grant.ends_at = report.ends_at
            grant.starts_at = report.starts_at or grant.starts_at
            grant.extensions = report.extensions
            grant.extension = codec.encode(report.extension)
            grant.approver_ids = report.approver_ids
            if report.status != GrantStatus.ACTIVE and grant.ended_at is None:
                grant.ended_at = event.at
            grant.save()
        if new:
            grant_event_emit(grant=grant, event=kept)  # the webhooks' event, in this transaction
    if report.notification is not None:
        notification_send(notification=report.notification)
    if not new:
        return None
    change = request_change(grant.request)  # and the approvers of its extensions, on "My access"
    return Change(change.public_id, tuple(sorted({*change.user_ids, *grant.approver_ids})))


def grant_act(
    *, grant: AccessGrant, actor: User, kind: GrantActionKind, days: int = 0, reason: str = ""
) -> str:
    """Send one action to the grant's workflow, which weighs it; its answer, for the person."""
    action = GrantAction(
        kind=kind,
        actor_id=actor.pk,
        actor_name=display_name(actor),
        action_id=str(uuid.uuid4()),
        days=days,
        reason=reason.strip(),
        as_staff=actor.is_staff,
    )
    if grant.status != AccessGrant.Status.ACTIVE:
        raise ActionRefused(rules.GRANT_ENDED)
    try:
        return temporal.send_grant_action(grant.request.public_id, action)
    except temporal.Refused as exc:
        raise ActionRefused(str(exc)) from exc
    except temporal.Unanswered as exc:
        raise ActionPending(
            "Sent; its answer is not in yet. Reload this page in a moment to see it."
        ) from exc
    except temporal.TemporalError as exc:
        raise WorkflowUnavailable(
            "The workflow service is unavailable; nothing was changed. Try again."
        ) from exc
