"""Access-review campaigns: what an admin starts and cancels, what the campaign's workflow asks
of the database (its reviews, fixed as it opens; its progress; its digests; closing the reviews
a cancel leaves open), what each review records, and the reviewers' decisions, sent to the
reviews' workflows, which alone decide."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, Q
from django.template.loader import render_to_string
from django.utils import timezone

from approvals import client as temporal
from approvals.exceptions import ActionRefused, InvalidInput, NotFound, WorkflowUnavailable
from approvals.models import AccessGrant, Campaign, CampaignEvent, CampaignItem, Manager, Resource
from approvals.selectors.requests import display_name
from approvals.services.notifications import email_once
from workflows import rules
from workflows.types import (
    CampaignCancel,
    CampaignPlan,
    CampaignReport,
    CampaignStatus,
    DigestKind,
    DigestRound,
    EndRule,
    GrantAction,
    GrantActionKind,
    ReviewDecision,
    ReviewInput,
    ReviewPage,
    ReviewRecord,
    ReviewRevoke,
    ReviewsClose,
    review_id_for,
)

OPEN_CHUNK = 1000  # reviews written at once as a campaign opens
DECIDE_CONCURRENCY = 8  # decisions sent to reviews at once
CLOSE_CONCURRENCY = 20
MAX_NAME = 150
MIN_DEADLINE = timedelta(minutes=1)
MAX_DEADLINE = timedelta(days=365)
DIGEST_SUBJECTS = {
    DigestKind.ASSIGNED: "Access review “{name}”: {count} to review by {deadline}",
    DigestKind.REMINDER: "Reminder: {count} access reviews of “{name}” are waiting for you",
    DigestKind.ESCALATED: "Escalated to you: {count} access reviews of “{name}” are overdue",
}


# --- Starting and cancelling (staff) ----------------------------------------------------------


def campaign_scope(*, resource: Resource | None, role: str) -> Q:
    """The grants a campaign over this resource and role covers: the active ones."""
    scope = Q(status=AccessGrant.Status.ACTIVE)
    if resource is not None:
        scope &= Q(resource=resource)
    if role:
        scope &= Q(role=role)
    return scope


def campaign_start(
    *,
    actor: User,
    name: str,
    resource: Resource | None,
    role: str,
    reviewer: str,
    deadline: datetime,
    remind_every: timedelta | None,
    escalate_after: timedelta | None,
    end_rule: str,
) -> Campaign:
    """Start a campaign: saved, then its workflow started on the bulk queue. When Temporal
    cannot take it, nothing is kept and the admin is told to try again."""
    now = timezone.now()
    if not name.strip() or len(name) > MAX_NAME:
        raise InvalidInput(f"Name the campaign (at most {MAX_NAME} characters).")
    if not MIN_DEADLINE <= deadline - now <= MAX_DEADLINE:
        raise InvalidInput("Set a deadline between a minute and a year from now.")
    if remind_every is not None and remind_every < MIN_DEADLINE:
        raise InvalidInput("Remind at most once a minute.")
    if escalate_after is not None and not timedelta(0) < escalate_after < deadline - now:
        raise InvalidInput("Escalate before the deadline.")
    if not AccessGrant.objects.filter(campaign_scope(resource=resource, role=role)).exists():
        raise InvalidInput("No active access matches: there is nothing to review.")
    campaign = Campaign.objects.create(
        name=name.strip(),
        created_by=actor,
        resource=resource,
        role=role,
        reviewer=reviewer,
        deadline=deadline,
        remind_every=remind_every,
        escalate_after=escalate_after,
        end_rule=end_rule,
    )
    try:
        temporal.start_campaign(campaign.public_id)
    except temporal.TemporalError as exc:
        campaign.delete()
        raise WorkflowUnavailable(
            "The workflow service is unavailable; the campaign was not started. Try again."
        ) from exc
    CampaignEvent.objects.create(
        campaign=campaign,
        kind="started",
        actor=actor,
        actor_name=display_name(actor),
        detail=_scope(campaign),
    )
    return campaign


def _scope(campaign: Campaign) -> str:
    what = f"access to {campaign.resource}" if campaign.resource else "all access"
    return (
        f"{what}{f' as {campaign.role}' if campaign.role else ''}, reviewed by "
        f"{campaign.get_reviewer_display().lower()}, due {campaign.deadline:%Y-%m-%d %H:%M} UTC; "
        f"then: {campaign.get_end_rule_display().lower()}"
    )


def campaign_cancel(*, campaign: Campaign, actor: User, reason: str) -> str:
    """Cancel a running campaign (staff, saying why): audited, then the campaign's workflow
    closes the reviews still open; what was decided stays decided."""
    if not reason.strip():
        raise InvalidInput("Say why the campaign is cancelled: it is kept in the audit trail.")
    if not campaign.is_open:
        raise ActionRefused(f"The campaign is {campaign.get_status_display().lower()} already.")
    try:
        temporal.cancel_campaign(campaign.public_id, CampaignCancel(display_name(actor), reason.strip()))
    except temporal.NoWorkflow as exc:
        raise ActionRefused("The campaign has ended already.") from exc
    except temporal.TemporalError as exc:
        raise WorkflowUnavailable(
            "The workflow service is unavailable; nothing was changed. Try again."
        ) from exc
    CampaignEvent.objects.create(
        campaign=campaign,
        kind="cancelled",
        actor=actor,
        actor_name=display_name(actor),
        detail=reason.strip(),
    )
    Campaign.objects.filter(pk=campaign.pk).update(cancel_reason=reason.strip())
    return "The campaign is being cancelled: its open reviews close, and no access changes for them."


# --- What the campaign's workflow asks (activities) -------------------------------------------


def _campaign(campaign_id: str) -> Campaign:
    campaign = Campaign.objects.filter(public_id=campaign_id).first()
    if campaign is None:
        raise NotFound(f"No campaign {campaign_id}.")
    return campaign


def campaign_open(*, campaign_id: str, heartbeat: Callable[[str], None]) -> CampaignPlan:
    """Fix the campaign's reviews: one per grant it covers, each with its reviewer (and that
    reviewer's manager, for the escalation). Once: opened again, it reads what it fixed."""
    campaign = _campaign(campaign_id)
    if campaign.opened_at is None:
        managers = dict(Manager.objects.values_list("user_id", "manager_id"))
        grants = (
            AccessGrant.objects.filter(campaign_scope(resource=campaign.resource, role=campaign.role))
            .select_related("resource")
            .order_by("pk")
        )
        chunk: list[CampaignItem] = []
        for grant in grants.iterator(chunk_size=OPEN_CHUNK):
            if campaign.reviewer == Campaign.Reviewer.OWNER:
                reviewer_id = grant.resource.owner_id
            else:
                reviewer_id = managers.get(grant.holder_id)
            if reviewer_id is None or reviewer_id == grant.holder_id:
                reviewer_id = campaign.created_by_id  # nobody else to ask: the admin reviews it
            chunk.append(
                CampaignItem(
                    campaign=campaign,
                    grant=grant,
                    reviewer_id=reviewer_id,
                    manager_id=managers.get(reviewer_id),
                )
            )
            if len(chunk) == OPEN_CHUNK:
                CampaignItem.objects.bulk_create(chunk, ignore_conflicts=True)
                chunk = []
                heartbeat(f"{grant.pk}")
        CampaignItem.objects.bulk_create(chunk, ignore_conflicts=True)
        Campaign.objects.filter(pk=campaign.pk, opened_at=None).update(
            opened_at=timezone.now(), total=campaign.items.count(), status=Campaign.Status.RUNNING
        )
        campaign.refresh_from_db()
    assert campaign.opened_at is not None
    return CampaignPlan(
        total=campaign.total,
        opened_at=campaign.opened_at,
        deadline=campaign.deadline,
        end_rule=EndRule(campaign.end_rule),
        remind_every=int(campaign.remind_every.total_seconds()) if campaign.remind_every else 0,
        escalate_after=int(campaign.escalate_after.total_seconds()) if campaign.escalate_after else 0,
    )


def campaign_reviews(*, page: ReviewPage) -> list[ReviewInput]:
    """The next reviews to start: those of the grants after the cursor, in order."""
    campaign = _campaign(page.campaign_id)
    escalate_at = (
        campaign.opened_at + campaign.escalate_after
        if campaign.opened_at and campaign.escalate_after
        else None
    )
    items = (
        campaign.items.filter(grant_id__gt=page.after)
        .select_related("grant__request")
        .order_by("grant_id")[: page.limit]
    )
    return [
        ReviewInput(
            campaign_id=page.campaign_id,
            grant_id=item.grant_id,
            request_id=str(item.grant.request.public_id),
            reviewer_id=item.reviewer_id,
            deadline=campaign.deadline,
            end_rule=EndRule(campaign.end_rule),
            campaign_name=campaign.name,
            manager_id=item.manager_id,
            escalate_at=escalate_at,
        )
        for item in items
    ]


def campaign_record(*, report: CampaignReport) -> bool:
    """Record where the campaign stands, once and in order; True when it changed."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().filter(public_id=report.campaign_id).first()
        if campaign is None:
            raise NotFound(f"No campaign {report.campaign_id}.")
        if report.seq <= campaign.seq:
            return False
        ending = report.status != CampaignStatus.RUNNING and campaign.ended_at is None
        campaign.seq = report.seq
        campaign.status = report.status.value
        campaign.started = report.progress.started
        campaign.runs = report.progress.runs
        if ending:
            campaign.ended_at = report.at or timezone.now()
            if report.status == CampaignStatus.COMPLETED:
                p = report.progress
                CampaignEvent.objects.create(
                    campaign=campaign,
                    kind="completed",
                    detail=f"{p.kept} kept, {p.revoked} revoked, {p.ended} ended before review; "
                    f"{p.by_rule} by the end rule",
                    occurred_at=campaign.ended_at,
                )
            else:
                campaign.cancelled_by_name = report.cancelled_by
        campaign.save()
    return True


def campaign_digests_send(*, round: DigestRound, heartbeat: Callable[[str], None]) -> int:
    """One email to each person with reviews of the campaign open: to each reviewer (the
    assignment, a reminder), or to each reviewer's manager (the escalation). How many sent."""
    campaign = _campaign(round.campaign_id)
    open_items = campaign.items.filter(status=CampaignItem.Status.OPEN)
    if round.kind == DigestKind.ESCALATED:
        Campaign.objects.filter(pk=campaign.pk, escalated_at=None).update(escalated_at=timezone.now())
        open_items, whom = open_items.exclude(manager=None), "manager"
    else:
        whom = "reviewer"
    people: dict[int, int] = dict(open_items.values_list(whom).annotate(n=Count("pk")).values_list(whom, "n"))
    sent = 0
    for user in User.objects.filter(pk__in=people).order_by("pk"):
        count = people[user.pk]
        context = {
            "campaign": campaign,
            "recipient": user,
            "count": count,
            "kind": round.kind.value,
            "url": settings.SITE_URL + "/inbox/reviews/",
        }
        email_once(
            key=f"campaign:{campaign.public_id}:{round.kind.value}:{round.round}:{user.pk}",
            user=user,
            kind=f"review_{round.kind.value}",
            subject=DIGEST_SUBJECTS[round.kind].format(
                name=campaign.name, count=count, deadline=f"{campaign.deadline:%Y-%m-%d %H:%M} UTC"
            ),
            body_text=render_to_string("approvals/email/review_digest.txt", context),
            body_html=render_to_string("approvals/email/review_digest.html", context),
        )
        sent += 1
        heartbeat(f"sent to user {user.pk}")
    return sent


def campaign_reviews_close(*, close: ReviewsClose, heartbeat: Callable[[str], None]) -> int:
    """Close the reviews a cancelled campaign leaves open: those never started here, and each
    started one through its workflow (a signal), which records its own close, or finishes what
    its decision began. How many were told."""
    campaign = _campaign(close.campaign_id)
    still_open = campaign.items.filter(status=CampaignItem.Status.OPEN)
    now = timezone.now()
    still_open.filter(grant_id__gt=close.cursor).update(status=CampaignItem.Status.CANCELLED, closed_at=now)
    started = list(still_open.filter(grant_id__lte=close.cursor).values_list("grant_id", flat=True))
    ids = {review_id_for(close.campaign_id, grant_id): grant_id for grant_id in started}
    gone = temporal.close_reviews(
        list(ids), CLOSE_CONCURRENCY, lambda done: heartbeat(f"{done} of {len(started)}")
    )
    # A review whose workflow is not running (it failed, or was terminated) closes here.
    still_open.filter(grant_id__in=[ids[review_id] for review_id in gone]).update(
        status=CampaignItem.Status.CANCELLED, closed_at=now
    )
    return len(started) - len(gone)


# --- What each review records, and the revoke it may lead to (activities) ----------------------


def review_record(*, record: ReviewRecord) -> list[int]:
    """Record a review's decision (then its outcome), once; whom it concerns (for their live
    pages). A review a cancel closed first stays closed."""
    item = (
        CampaignItem.objects.filter(campaign__public_id=record.campaign_id, grant_id=record.grant_id)
        .only("pk", "reviewer_id", "manager_id")
        .first()
    )
    if item is None:
        raise NotFound(f"No review of grant {record.grant_id} in campaign {record.campaign_id}.")
    decided = {
        "by_rule": record.by_rule,
        "decided_by_id": record.actor_id,
        "decided_by_name": record.actor_name,
        "comment": record.comment,
        "decided_at": record.at,
    }
    rows = CampaignItem.objects.filter(pk=item.pk)
    if record.final:
        rows.filter(status=CampaignItem.Status.OPEN).update(**decided)
        rows.filter(status__in=[CampaignItem.Status.OPEN, CampaignItem.Status.REVOKING]).update(
            status=record.outcome.value, closed_at=record.at or timezone.now()
        )
    else:
        rows.filter(status=CampaignItem.Status.OPEN).update(status=CampaignItem.Status.REVOKING, **decided)
    return [uid for uid in (item.reviewer_id, item.manager_id) if uid is not None]


def review_revoke(*, revoke: ReviewRevoke) -> bool:
    """Revoke a reviewed grant through its own workflow, as an early revoke does; once per review
    (its action id). False when the access had ended by then, revoked or expired otherwise."""
    grant = AccessGrant.objects.filter(request__public_id=revoke.request_id).first()
    if grant is None:
        raise NotFound(f"No access was granted for {revoke.request_id}.")
    campaign = _campaign(revoke.campaign_id)
    actor_id = revoke.actor_id or campaign.created_by_id
    action = GrantAction(
        kind=GrantActionKind.REVOKE,
        actor_id=actor_id,
        actor_name=revoke.actor_name or f"Access review “{campaign.name}”",
        action_id=revoke.action_id,
        reason=revoke.reason,
        as_staff=True,  # the campaign's authority, as staff's
    )
    if grant.status != AccessGrant.Status.ACTIVE:
        return False
    try:
        temporal.send_grant_action(revoke.request_id, action)
    except temporal.Refused as exc:
        if str(exc) in (rules.GRANT_ENDED, rules.BEING_REVOKED):
            return False
        raise InvalidInput(str(exc)) from exc
    except temporal.NoWorkflow:
        grant.refresh_from_db()
        if grant.status != AccessGrant.Status.ACTIVE:  # its workflow ended it, and completed
            return False
        raise
    return True


# --- Reviewers' decisions ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewAnswer:
    item_id: int
    ok: bool
    pending: bool
    message: str


def reviews_decide(
    *, actor: User, items: Iterable[CampaignItem], keep: bool, comment: str
) -> list[ReviewAnswer]:
    """Keep or revoke these reviews (one, or many at once with one comment): each sent to its
    review's workflow, which weighs it; every one gets its own answer."""
    comment = comment.strip()
    if not keep and not comment:
        raise InvalidInput("Say why the access is revoked: its holder is told.")
    if len(comment) > rules.MAX_COMMENT:
        raise InvalidInput(f"Keep the comment under {rules.MAX_COMMENT} characters.")
    items = list(items)
    decisions = {
        review_id_for(item.campaign.public_id, item.grant_id): ReviewDecision(
            keep=keep,
            actor_id=actor.pk,
            actor_name=display_name(actor),
            action_id=str(uuid.uuid4()),
            comment=comment,
            as_staff=actor.is_staff,
        )
        for item in items
    }
    answers = temporal.send_review_decisions(decisions, DECIDE_CONCURRENCY)
    result = []
    for item in items:
        answer = answers[review_id_for(item.campaign.public_id, item.grant_id)]
        if isinstance(answer, str):
            result.append(ReviewAnswer(item.pk, True, False, answer))
        elif isinstance(answer, temporal.Refused):
            result.append(ReviewAnswer(item.pk, False, False, str(answer)))
        elif isinstance(answer, temporal.NoWorkflow):
            item.refresh_from_db()
            closed = item.status != CampaignItem.Status.OPEN
            message = (
                rules.REVIEW_CLOSED if closed else "This review is still being set up; try again in a moment."
            )
            result.append(ReviewAnswer(item.pk, False, not closed, message))
        elif isinstance(answer, temporal.Unanswered):
            result.append(
                ReviewAnswer(
                    item.pk, False, True, "Sent; its answer is not in yet. It shows here once recorded."
                )
            )
        else:
            result.append(
                ReviewAnswer(
                    item.pk,
                    False,
                    False,
                    "The workflow service is unavailable; nothing was changed. Try again.",
                )
            )
    return result
