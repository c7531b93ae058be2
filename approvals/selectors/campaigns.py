"""Access-review campaigns as the read model has them: a reviewer's open reviews, each
campaign's progress, and its report (who decided what, and when; what the end rule did)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from approvals.models import Campaign, CampaignItem

REPORT_COLUMNS = [
    "Holder",
    "Resource",
    "Role",
    "Reviewer",
    "Outcome",
    "Decided by",
    "Decided at",
    "By the end rule",
    "Comment",
    "Closed at",
    "Request",
]
OPEN = (CampaignItem.Status.OPEN, CampaignItem.Status.REVOKING)


def reviews_open_for(*, user: User) -> QuerySet[CampaignItem]:
    """The reviews waiting for this person: their own, and their reports' once escalated; by
    campaign, then holder."""
    mine = Q(reviewer=user) | Q(manager=user, campaign__escalated_at__isnull=False)
    return (
        CampaignItem.objects.filter(
            mine, status=CampaignItem.Status.OPEN, campaign__status=Campaign.Status.RUNNING
        )
        .select_related("campaign", "grant__holder", "grant__resource", "reviewer")
        .order_by("campaign__deadline", "campaign_id", "grant__holder__username", "grant_id")
    )


def reviews_open_count(*, user: User) -> int:
    return reviews_open_for(user=user).count()


@dataclass(frozen=True)
class Progress:
    """Where a campaign stands, counted from its reviews."""

    campaign: Campaign
    total: int
    kept: int
    revoked: int
    ended: int
    cancelled: int
    open: int
    overdue: int

    @property
    def done(self) -> int:
        return self.kept + self.revoked + self.ended

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


def campaign_progress(campaigns: list[Campaign]) -> list[Progress]:
    """Each campaign's progress, from one count of its reviews by status."""
    counts: dict[tuple[int, str], int] = {}
    rows = (
        CampaignItem.objects.filter(campaign__in=campaigns)
        .values("campaign_id", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in rows:
        counts[(row["campaign_id"], row["status"])] = row["n"]
    now = timezone.now()
    result = []
    for c in campaigns:
        n = {s: counts.get((c.pk, s), 0) for s in CampaignItem.Status.values}
        still_open = n["open"] + n["revoking"]
        late = c.is_open and (now >= c.deadline or c.escalated_at is not None)
        result.append(
            Progress(
                campaign=c,
                total=c.total or sum(n.values()),
                kept=n["kept"],
                revoked=n["revoked"],
                ended=n["ended"],
                cancelled=n["cancelled"],
                open=still_open,
                overdue=n["open"] if late else 0,
            )
        )
    return result


def campaigns_shown(limit: int = 10) -> list[Progress]:
    """The campaigns the dashboard shows: every one running, then the latest ended."""
    running = list(Campaign.objects.filter(status__in=[Campaign.Status.STARTING, Campaign.Status.RUNNING]))
    ended = list(
        Campaign.objects.exclude(status__in=[Campaign.Status.STARTING, Campaign.Status.RUNNING])[
            : max(limit - len(running), 3)
        ]
    )
    return campaign_progress(running + ended)


def campaign_items(campaign: Campaign) -> QuerySet[CampaignItem]:
    return campaign.items.select_related(
        "grant__holder", "grant__resource", "grant__request", "reviewer"
    ).order_by("grant__holder__username", "grant_id")


def campaign_report_rows(campaign: Campaign) -> Iterator[list[object]]:
    """The report's rows, one per review (REPORT_COLUMNS)."""
    for item in campaign_items(campaign).iterator(chunk_size=1000):
        grant = item.grant
        yield [
            grant.holder.get_username(),
            grant.resource.name,
            grant.role,
            item.reviewer.get_username(),
            item.get_status_display(),
            item.decided_by_name,
            item.decided_at.isoformat() if item.decided_at else "",
            "yes" if item.by_rule else "",
            item.comment,
            item.closed_at.isoformat() if item.closed_at else "",
            str(grant.request.public_id),
        ]
