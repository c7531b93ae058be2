"""The vertical slice in a real browser: two people in two browser contexts, live updates."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from approvals import services
from approvals.models import ApprovalRequest, RequestStatus, RequestType
from tests.browser.conftest import expect_status, log_in, open_row, screenshot
from tests.conftest import LiveServer, wait_until
from workflows.types import ActionKind

pytestmark = [pytest.mark.browser, pytest.mark.temporal_server]


def test_submit_then_approve_in_the_inbox_then_requester_sees_it_without_reload(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    reviewer = log_in(browser, live_app.url, people["reviewer1"])
    reviewer.get_by_role("link", name="Inbox").click()
    expect(reviewer.get_by_text("Nothing to review.")).to_be_visible()
    requester = log_in(browser, live_app.url, people["requester"])
    # Mark both pages: a full reload would lose the mark.
    for page in (reviewer, requester):
        page.evaluate("window.__noReload = true")

    requester.get_by_role("link", name="New request").first.click()
    # A bad submission shows the field's error and starts nothing.
    expect_status(requester, 400)
    requester.get_by_role("button", name="Submit for approval").click()
    expect(requester.locator("#id_title-error")).to_have_text("This field is required.")
    expect(requester.get_by_role("alert")).to_contain_text("Title: This field is required.")
    expect(requester.get_by_role("alert")).to_contain_text("Request type: This field is required.")
    expect(requester.get_by_label("Request type")).to_be_focused()  # the first bad field takes the cursor
    assert ApprovalRequest.objects.count() == 0

    requester.get_by_label("Request type").select_option(label="Purchase")
    requester.get_by_label("Title").fill("Ergonomic keyboard")
    requester.get_by_label("Amount").fill("129.90")
    requester.get_by_role("button", name="Submit for approval").click()
    expect(requester.get_by_text("submitted and waiting for review")).to_be_visible()
    request = ApprovalRequest.objects.get()
    expect(requester.get_by_test_id("live-status")).to_have_text("In review")
    requester.evaluate("window.__noReload = true")  # the submission itself loaded this page
    screenshot(requester, "request-detail")

    # A comment being typed survives pushes that change nothing the requester may do.
    requester.get_by_label("Add a comment").fill("Half-typed")
    request.refresh_from_db()
    services.request_act(
        request=request, actor=people["reviewer2"], kind=ActionKind.COMMENT, comment="Which layout?"
    )
    expect(requester.locator(".timeline")).to_contain_text("Which layout?", timeout=15_000)
    expect(requester.get_by_label("Add a comment")).to_have_value("Half-typed")
    # The new request appears in the reviewer's open inbox, live.
    row = reviewer.locator(f"#request-{request.public_id}")
    expect(row).to_contain_text("Ergonomic keyboard", timeout=15_000)
    expect(row.get_by_role("button", name="Decide")).to_be_visible()
    expect(row.get_by_role("button", name="Approve")).to_be_hidden()  # compact until opened
    assert reviewer.evaluate("window.__noReload") is True
    screenshot(reviewer, "inbox")

    open_row(row)
    row.get_by_label("Comment", exact=False).fill("Good for your wrists")
    row.get_by_role("button", name="Approve").click()
    # The answer to the POST says "Stage “Review” is approved."; the live push that may follow
    # it says who approved. Either way the row shows the outcome.
    expect(row.locator(".badge")).to_have_text("Approved")
    assert reviewer.evaluate("window.__noReload") is True

    wait_until(
        lambda: ApprovalRequest.objects.get(pk=request.pk).status == RequestStatus.APPROVED, what="approved"
    )
    expect(requester.locator(".outcome")).to_contain_text("Approved by reviewer1", timeout=15_000)
    expect(requester.locator(".outcome")).to_contain_text("Good for your wrists")
    # Only what the requester may still do is offered: nothing, once it is decided.
    expect(requester.get_by_role("button", name="Withdraw the request")).to_have_count(0)
    assert requester.evaluate("window.__noReload") is True
    screenshot(requester, "request-approved")


def test_reviewer_is_told_why_a_rejection_without_comment_is_refused(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    request = services.request_submit(
        requester=people["requester"], request_type=purchase, title="Team offsite"
    )
    # Until the workflow assigns reviewer2, the request is not theirs to see.
    wait_until(lambda: request.participants.filter(user=people["reviewer2"]).exists(), what="assigned")
    reviewer = log_in(browser, live_app.url, people["reviewer2"])
    reviewer.goto(request.get_absolute_url())
    box = reviewer.locator(f"#actions-{request.public_id}")
    expect_status(reviewer, 400)  # the refusal's answer
    box.get_by_role("button", name="Reject").click()
    expect(box.locator(f"#answer-{request.public_id}")).to_have_text(
        "A comment is required to reject or to request changes."
    )
    box.get_by_label("Comment", exact=False).first.fill("Budget is frozen")
    box.get_by_role("button", name="Reject").click()
    expect(box).to_contain_text("The request is rejected.")
    wait_until(
        lambda: ApprovalRequest.objects.get(pk=request.pk).status == RequestStatus.REJECTED, what="rejected"
    )
