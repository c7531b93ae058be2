"""Access grants as the read model has them: who holds what, until when; what a person may do."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet
from django.utils import timezone

from approvals.models import AccessGrant
from workflows import rules
from workflows.types import GrantAction, GrantActionKind, GrantInfo, GrantState, GrantStatus

EXPORT_COLUMNS = [
    "Holder",
    "Email",
    "Resource",
    "Role",
    "Status",
    "Granted",
    "Ends (as planned)",
    "Ended",
    "Extensions",
    "Ended by",
    "Why it ended",
    "Approved by",
    "Request",
]


def grant_state(grant: AccessGrant) -> GrantState:
    """The grant's state as its workflow last recorded it: what the rules weigh."""
    return GrantState(
        request_id=str(grant.request.public_id),
        info=GrantInfo(
            holder_id=grant.holder_id,
            holder_name=grant.holder.get_username(),
            resource=grant.resource.name,
            role=grant.role,
            ends_at=grant.ends_at,
            approver_ids=list(grant.approver_ids or []),
            max_days=grant.resource.max_days,
        ),
        status=GrantStatus(grant.status),
        extension=grant.pending_extension,
        extensions=grant.extensions,
    )


@dataclass(frozen=True)
class GrantAbilities:
    extend: bool
    decide: bool
    revoke: bool


def grant_abilities(*, user: User, grant: AccessGrant) -> GrantAbilities:
    """What this person may do to the grant now, by the grant workflow's own rules."""
    state, now = grant_state(grant), timezone.now()

    def may(kind: GrantActionKind, days: int = 0, reason: str = "") -> bool:
        action = GrantAction(kind, user.pk, "", "check", days=days, reason=reason, as_staff=user.is_staff)
        return rules.grant_problem(state, action, now) is None

    return GrantAbilities(
        extend=may(GrantActionKind.EXTEND, days=1, reason="?"),
        decide=may(GrantActionKind.APPROVE),
        revoke=may(GrantActionKind.REVOKE, reason="?"),
    )


def grants(*, resource: str = "", status: str = "", search: str = "") -> QuerySet[AccessGrant]:
    """Every grant, those that end soonest first; filtered by resource code, status, and a
    search in the holder's name or email."""
    found = AccessGrant.objects.select_related("holder", "resource", "request").order_by(
        "status", "ends_at", "pk"
    )
    if resource:
        found = found.filter(resource__code=resource)
    if status:
        found = found.filter(status=status)
    if search:
        found = found.filter(
            Q(holder__username__icontains=search)
            | Q(holder__email__icontains=search)
            | Q(holder__first_name__icontains=search)
            | Q(holder__last_name__icontains=search)
        )
    return found


def my_access(*, user: User) -> QuerySet[AccessGrant]:
    return grants().filter(holder=user)


def extensions_waiting_for(*, user: User) -> list[AccessGrant]:
    """Active grants with an extension this person may decide."""
    waiting = grants(status=GrantStatus.ACTIVE.value).filter(extension__isnull=False).exclude(holder=user)
    return [g for g in waiting if user.pk in (g.approver_ids or [])]


def grants_export(*, resource: str = "", status: str = "", search: str = "") -> list[list[object]]:
    """Who held what, when, approved by whom: one row per grant (for auditors)."""
    rows: list[list[object]] = []
    for g in grants(resource=resource, status=status, search=search).prefetch_related("request__events"):
        approvers = sorted(
            {e.actor_name for e in g.request.events.all() if e.kind == "approval" and e.actor_name}
        )
        rows.append(
            [
                g.holder.get_username(),
                g.holder.email,
                g.resource.name,
                g.role,
                g.get_status_display(),
                g.starts_at.isoformat(),
                g.ends_at.isoformat(),
                g.ended_at.isoformat() if g.ended_at else "",
                g.extensions,
                g.ended_by_name,
                g.end_reason,
                ", ".join(approvers),
                str(g.request.public_id),
            ]
        )
    return rows
