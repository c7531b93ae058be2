"""Access-review campaigns in the browser: an admin starts one, the reviewer clears their reviews
in bulk (a person's at once, then the rest by keyboard), and the admin's dashboard follows the
progress live; the report says who decided what, in HTML and CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.contrib.auth.models import User

from approvals.models import AccessGrant, Campaign, CampaignItem, Manager, RequestType, Resource
from tests.browser.conftest import log_in, screenshot
from tests.browser.test_accessible import serious_violations
from tests.conftest import LiveServer, LoopThread, make_grant, make_user, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.temporal_server]


def test_a_reviewer_clears_their_campaign_in_bulk_and_the_admin_sees_it_live(
    browser: Any,
    live_app: LiveServer,
    loop: LoopThread,
    dev_server_settings: Any,
    people: dict[str, User],
    access: RequestType,
    payroll: Resource,
) -> None:
    from playwright.sync_api import expect

    crm = Resource.objects.create(code="crm", name="CRM", roles="read, write", max_days=90)
    manager = people["manager"]
    alice, bob, carol = (
        make_user(n, first_name=n.title(), last_name="Example") for n in ("alice", "bob", "carol")
    )
    for holder in (alice, bob, carol):
        Manager.objects.create(user=holder, manager=manager)
    grants = [
        make_grant(loop, dev_server_settings, people, access, resource, holder)
        for resource, holder in ((payroll, alice), (crm, alice), (payroll, bob), (crm, carol))
    ]

    admin = log_in(browser, live_app.url, people["admin"])
    admin.goto("/dashboard/campaigns/")
    admin.get_by_label("Name").fill("Quarterly access review")
    admin.get_by_label("Reviewed by").select_option(label="The holder's manager")
    admin.get_by_label("Remind every (days)").fill("")
    admin.get_by_label("Escalate to managers after (days)").fill("")
    admin.get_by_role("button", name="Start the campaign").click()
    expect(admin.locator(".messages")).to_contain_text("“Quarterly access review” started")
    campaign = Campaign.objects.get()
    dashboard = log_in(browser, live_app.url, people["admin"])
    dashboard.goto("/dashboard/")
    progress = dashboard.locator(f"#campaign-{campaign.public_id}")
    expect(progress.get_by_test_id("campaign-open")).to_have_text("4", timeout=20_000)

    reviewer = log_in(browser, live_app.url, manager)
    expect(reviewer.get_by_test_id("nav-waiting")).to_contain_text("4")
    reviewer.goto("/inbox/reviews/")
    expect(reviewer.get_by_test_id("reviews-count")).to_contain_text("4")
    expect(reviewer.get_by_test_id("review-person")).to_have_count(3)  # grouped by person
    screenshot(reviewer, "reviews")
    assert serious_violations(reviewer) == []

    # Alice's two at once: her group's box, one comment, Revoke.
    reviewer.get_by_label("Select every review of Alice Example’s access").check()
    reviewer.get_by_label("One comment for all").fill("Moved to another team")
    reviewer.get_by_role("button", name="Revoke selected").click()
    expect(reviewer.locator("#review-results")).to_contain_text("2 of 2 revoked")
    expect(reviewer.get_by_test_id("review-person")).to_have_count(2)
    expect(reviewer.get_by_label("One comment for all")).to_have_value("")
    # The admin's dashboard, open all along, follows.
    expect(progress.get_by_test_id("campaign-revoked")).to_have_text("2", timeout=20_000)
    expect(progress.get_by_test_id("campaign-open")).to_have_text("2")

    # The rest by keyboard: * selects the page, a picks Keep, a again keeps.
    reviewer.locator("body").click(position={"x": 5, "y": 5})
    reviewer.keyboard.press("*")
    reviewer.keyboard.press("a")
    reviewer.keyboard.press("a")
    expect(reviewer.locator("#review-results")).to_contain_text("2 of 2 kept")
    expect(reviewer.locator("#reviews-empty")).to_be_visible()
    expect(reviewer.get_by_test_id("nav-waiting")).to_have_text("")

    expect(progress.get_by_test_id("campaign-done")).to_have_text("4 of 4", timeout=20_000)
    expect(progress.get_by_test_id("campaign-kept")).to_have_text("2")
    expect(progress.locator(".badge")).to_have_text("Completed", timeout=20_000)
    screenshot(dashboard, "dashboard-campaign")

    # Each revoke went through its grant's workflow; the kept access stays.
    wait_until(
        lambda: set(AccessGrant.objects.filter(holder=alice).values_list("status", flat=True)) == {"revoked"},
        what="Alice's access revoked",
    )
    assert {g.status for g in AccessGrant.objects.filter(pk__in=[g.pk for g in grants[2:]])} == {"active"}

    # The report: who decided what and when, on the page and as CSV.
    dashboard.goto(campaign.get_absolute_url())
    table = dashboard.get_by_test_id("campaign-items")
    expect(table.locator("tbody tr")).to_have_count(4)
    expect(table).to_contain_text("Moved to another team")
    expect(dashboard.locator(".timeline")).to_contain_text("Completed: 2 kept, 2 revoked")
    screenshot(dashboard, "campaign-report")
    assert serious_violations(dashboard) == []
    answer = dashboard.request.get(f"{campaign.get_absolute_url()}report.csv")
    rows = list(csv.DictReader(io.StringIO(answer.text())))
    assert sorted((r["Holder"], r["Resource"], r["Outcome"], r["Decided by"]) for r in rows) == [
        ("alice", "CRM", "Revoked", "manager"),
        ("alice", "Payroll", "Revoked", "manager"),
        ("bob", "Payroll", "Kept", "manager"),
        ("carol", "CRM", "Kept", "manager"),
    ]
    assert CampaignItem.objects.filter(campaign=campaign, by_rule=True).count() == 0
