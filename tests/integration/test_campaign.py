"""Access-review campaigns on a real Temporal dev server, with the real activities, database and
both workers (interactive and bulk), through the services the web calls: reviewers keep and
revoke in bulk, overdue reviews escalate to managers, reminders come as digests, the end rule
revokes what nobody reviewed at the deadline (through each grant's own workflow), and a
cancelled campaign closes its open reviews with no access changed."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from temporalio.client import Client, WorkflowExecutionStatus

from approvals import services
from approvals.models import (
    AccessGrant,
    Campaign,
    CampaignEvent,
    CampaignItem,
    Manager,
    OutboundEmail,
    RequestType,
    Resource,
)
from approvals.selectors.campaigns import campaign_progress, reviews_open_for
from approvals.services import campaigns as campaign_services
from tests.conftest import LoopThread, make_grant, make_user, wait_until
from workflows.types import ActionKind, grant_id_for, review_id_for

pytestmark = pytest.mark.temporal_server


@pytest.fixture(autouse=True)
def short_campaigns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Campaigns of seconds, not weeks: the timers are the same."""
    monkeypatch.setattr(campaign_services, "MIN_DEADLINE", timedelta(seconds=1))


def start(people: dict[str, User], resource: Resource | None, seconds: float, **options: Any) -> Campaign:
    return services.campaign_start(
        actor=people["admin"],
        name=options.pop("name", "Payroll Q4"),
        resource=resource,
        role="",
        reviewer=options.pop("reviewer", Campaign.Reviewer.MANAGER),
        deadline=timezone.now() + timedelta(seconds=seconds),
        remind_every=options.pop("remind_every", None),
        escalate_after=options.pop("escalate_after", None),
        end_rule=options.pop("end_rule", Campaign.EndRule.REVOKE),
    )


def fresh(campaign: Campaign) -> Campaign:
    return Campaign.objects.get(pk=campaign.pk)


def digests(campaign: Campaign, kind: str) -> list[tuple[str, str]]:
    keys = OutboundEmail.objects.filter(
        kind=f"review_{kind}", idempotency_key__contains=str(campaign.public_id)
    )
    return sorted(keys.values_list("to", "idempotency_key"))


def test_a_campaign_is_decided_in_bulk_escalated_reminded_in_digests_and_ended_by_its_rule(
    loop: LoopThread,
    use_dev_server: Client,
    bulk_worker: Any,
    people: dict[str, User],
    access: RequestType,
    payroll: Resource,
    purchase: RequestType,
) -> None:
    manager, boss = people["manager"], make_user("boss")
    Manager.objects.create(user=manager, manager=boss)
    holders = [make_user(f"holder{n}") for n in range(7)]
    for holder in holders:
        Manager.objects.create(user=holder, manager=manager)
    loner = make_user("loner")  # nobody to report to: the campaign's admin reviews it
    grants = [make_grant(loop, use_dev_server, people, access, payroll, h) for h in [*holders, loner]]

    # The manager's decisions and the boss's refusal below come before the escalation (35 s), and
    # the boss's decision after it, before the deadline (55 s): margins for a loaded machine.
    campaign = start(
        people, payroll, 55, remind_every=timedelta(seconds=10), escalate_after=timedelta(seconds=35)
    )
    # Both digests (sent one after the other), once every review has started.
    wait_until(
        lambda: len(digests(campaign, "assigned")) == 2 and fresh(campaign).started == 8,
        timeout=60,
        what="the assignment digests",
    )
    assert [to for to, _ in digests(campaign, "assigned")] == ["admin@example.com", "manager@example.com"]
    assert fresh(campaign).total == 8

    # The manager keeps three and revokes two, in bulk, each with its own answer.
    mine = list(reviews_open_for(user=manager))
    assert len(mine) == 7 and {i.grant.holder for i in mine} == set(holders)
    kept = services.reviews_decide(actor=manager, items=mine[:3], keep=True, comment="")
    assert [a.message for a in kept] == ["The access is kept."] * 3
    with pytest.raises(services.campaigns.InvalidInput):
        services.reviews_decide(actor=manager, items=mine[3:5], keep=False, comment="  ")
    revoked = services.reviews_decide(actor=manager, items=mine[3:5], keep=False, comment="Left the team")
    assert all(a.ok for a in revoked)
    # Someone else's review is refused by its workflow; the boss may not decide before escalating.
    assert not services.reviews_decide(actor=people["outsider"], items=mine[5:6], keep=True, comment="")[0].ok
    early = services.reviews_decide(actor=boss, items=mine[5:6], keep=True, comment="")[0]
    assert (early.ok, early.message) == (
        False,
        "Only the reviewer of this access (or their manager, once escalated) can decide it.",
    )

    # Interactive approvals go on meanwhile, on their own queue.
    request = services.request_submit(
        requester=people["requester"], request_type=purchase, title="Chair", amount=90
    )
    wait_until(lambda: request.participants.filter(pending=True).exists(), what="review")
    request.refresh_from_db()
    result = services.request_act(request=request, actor=people["reviewer1"], kind=ActionKind.APPROVE)
    assert result.message and fresh(campaign).status == Campaign.Status.RUNNING

    wait_until(
        lambda: (
            AccessGrant.objects.filter(pk__in=[i.grant_id for i in mine[3:5]], status="revoked").count() == 2
        ),
        timeout=30,
        what="the two revokes",
    )
    # Escalated: the boss hears once, and may now decide the manager's overdue reviews.
    wait_until(lambda: digests(campaign, "escalated"), timeout=60, what="the escalation")
    assert [to for to, _ in digests(campaign, "escalated")] == ["boss@example.com"]
    assert mine[5] in reviews_open_for(user=boss)
    assert services.reviews_decide(actor=boss, items=mine[5:6], keep=True, comment="Still needed")[0].ok

    wait_until(lambda: fresh(campaign).status == Campaign.Status.COMPLETED, timeout=90, what="the deadline")
    items = {i.grant_id: i for i in CampaignItem.objects.filter(campaign=campaign)}
    assert {g.pk: items[g.pk].status for g in grants} == {
        **{i.grant_id: "kept" for i in mine[:3]},
        **{i.grant_id: "revoked" for i in mine[3:5]},
        mine[5].grant_id: "kept",
        mine[6].grant_id: "revoked",  # by the end rule
        grants[-1].pk: "revoked",  # the admin's, unreviewed too
    }
    assert items[mine[6].grant_id].by_rule and not items[mine[3].grant_id].by_rule
    assert items[mine[5].grant_id].decided_by == boss
    progress = campaign_progress([fresh(campaign)])[0]
    assert (progress.done, progress.kept, progress.revoked, progress.open) == (8, 4, 4, 0)

    # Each revoke went through the grant's own workflow, as an early revoke does.
    for grant_id in (mine[3].grant_id, mine[6].grant_id):
        grant = AccessGrant.objects.get(pk=grant_id)
        assert grant.status == "revoked"
        event = grant.events.get(kind="revoked")
        assert "Access review “Payroll Q4”" in event.detail or "Left the team" in event.detail
        handle = use_dev_server.get_workflow_handle(grant_id_for(grant.request.public_id))
        # The revoke is recorded before the grant's workflow's last task completes: wait for its end.
        loop.run(asyncio.wait_for(handle.result(), timeout=30))
        assert loop.run(handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    assert AccessGrant.objects.get(pk=mine[0].grant_id).status == "active"

    # Reminders came as digests: one email per reviewer per round, never one per review.
    reminders = digests(campaign, "reminder")
    assert reminders and {to for to, _ in reminders} <= {"manager@example.com", "admin@example.com"}
    rounds = {key.split(":")[3] for _, key in reminders}
    assert len(reminders) <= 2 * len(rounds)
    assert CampaignEvent.objects.filter(campaign=campaign, kind="completed").exists()


def test_a_cancelled_campaign_closes_its_open_reviews_audited_and_changes_no_access(
    loop: LoopThread,
    use_dev_server: Client,
    bulk_worker: Any,
    people: dict[str, User],
    access: RequestType,
    payroll: Resource,
) -> None:
    payroll.owner = people["manager"]
    payroll.save()
    grants = [make_grant(loop, use_dev_server, people, access, payroll, make_user(f"h{n}")) for n in range(4)]
    campaign = start(
        people, payroll, 3600, reviewer=Campaign.Reviewer.OWNER, end_rule=Campaign.EndRule.REVOKE
    )
    wait_until(lambda: digests(campaign, "assigned"), timeout=60, what="the assignment digest")
    first = reviews_open_for(user=people["manager"]).first()
    assert first is not None
    assert services.reviews_decide(actor=people["manager"], items=[first], keep=True, comment="")[0].ok

    with pytest.raises(services.campaigns.InvalidInput):
        services.campaign_cancel(campaign=campaign, actor=people["admin"], reason="")
    said = services.campaign_cancel(campaign=campaign, actor=people["admin"], reason="Wrong resource")
    assert said.startswith("The campaign is being cancelled")
    wait_until(lambda: fresh(campaign).status == Campaign.Status.CANCELLED, timeout=60, what="the cancel")

    def statuses() -> list[str]:
        return sorted(CampaignItem.objects.filter(campaign=campaign).values_list("status", flat=True))

    # Each open review closes through its own workflow, which records it.
    wait_until(lambda: statuses() == ["cancelled", "cancelled", "cancelled", "kept"], what="the closes")
    late = services.reviews_decide(actor=people["manager"], items=[first], keep=False, comment="Too late")[0]
    assert (late.ok, late.message) == (False, "This review is closed already.")
    assert all(g.status == "active" for g in AccessGrant.objects.filter(pk__in=[g.pk for g in grants]))
    event = CampaignEvent.objects.get(campaign=campaign, kind="cancelled")
    assert (event.actor, event.detail) == (people["admin"], "Wrong resource")
    assert fresh(campaign).cancelled_by_name == "admin"
    cancelled = next(i for i in CampaignItem.objects.filter(campaign=campaign, status="cancelled"))
    review = use_dev_server.get_workflow_handle(review_id_for(campaign.public_id, cancelled.grant_id))
    wait_until(
        lambda: loop.run(review.describe()).status == WorkflowExecutionStatus.COMPLETED,
        what="the cancelled review to end",
    )
    # Cancelled once is cancelled: a second cancel is refused.
    with pytest.raises(services.campaigns.ActionRefused):
        services.campaign_cancel(campaign=fresh(campaign), actor=people["admin"], reason="Again")
