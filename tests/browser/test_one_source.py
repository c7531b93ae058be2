"""Several people at once, in Chromium: what a page shows live is what a reload shows, and no push
wipes what someone is typing or moves their focus.

Every page here is marked so that a reload would be seen (`window.__noReload`); each check is
then compared with the same page loaded afresh.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from temporalio.client import Client as TemporalClient

from approvals import services
from approvals.exceptions import ActionRefused
from approvals.models import ApprovalRequest, RequestStatus, RequestType, Stage
from tests.browser.conftest import log_in, open_row, screenshot, submit
from tests.conftest import LiveServer, LoopThread, wait_until
from workflows.types import ActionKind

pytestmark = [pytest.mark.browser, pytest.mark.temporal_server]


def act(request: ApprovalRequest, who: User, kind: ActionKind, comment: str = "") -> None:
    request.refresh_from_db()
    services.request_act(request=request, actor=who, kind=kind, comment=comment, action_id=uuid.uuid4())


def watch(page: Any) -> None:
    page.evaluate("window.__noReload = true")


def not_reloaded(page: Any) -> bool:
    return page.evaluate("window.__noReload") is True


def text(locator: Any) -> str:
    return " ".join(locator.text_content().split())


def fresh(browser: Any, live_app: LiveServer, user: User, path: str) -> Any:
    page = log_in(browser, live_app.url, user)
    page.goto(path)
    return page


def test_a_resubmission_shows_its_new_title_and_amount_on_every_open_page(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    request = submit(people, purchase, "Office chair", amount=250)
    act(request, people["reviewer1"], ActionKind.REQUEST_CHANGES, "Which model?")
    requester = fresh(browser, live_app, people["requester"], request.get_absolute_url())
    reviewer = fresh(browser, live_app, people["reviewer2"], request.get_absolute_url())
    for page in (requester, reviewer):
        watch(page)

    requester.get_by_label("Title").fill("Office chair, model Aeron")
    requester.get_by_label("Amount").fill("1290")
    requester.get_by_label("What changed").fill("The model you asked for")
    requester.get_by_role("button", name="Resubmit").click()

    for page in (requester, reviewer):
        expect(page.locator("h1")).to_have_text("Office chair, model Aeron", timeout=15_000)
        expect(page.get_by_test_id("amount")).to_have_text("1290.00")
        expect(page.get_by_test_id("live-status")).to_have_text("In review")
        expect(page.locator(f"#content-{request.public_id}")).to_contain_text("revision 2")
        assert not_reloaded(page)
    expect(requester.locator(f"#answer-{request.public_id}")).to_contain_text("resubmitted")
    reloaded = fresh(browser, live_app, people["requester"], request.get_absolute_url())
    for part in ("heading", "content", "status"):
        assert text(reloaded.locator(f"#{part}-{request.public_id}")) == text(
            requester.locator(f"#{part}-{request.public_id}")
        ), part


def test_a_resubmitted_request_comes_back_to_the_reviewers_open_inbox(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    request = submit(people, purchase, "Ergonomic mouse")
    act(request, people["reviewer1"], ActionKind.REQUEST_CHANGES, "Left-handed?")
    reviewer = fresh(browser, live_app, people["reviewer1"], "/inbox/")
    expect(reviewer.get_by_text("Nothing to review.")).to_be_visible()
    expect(reviewer.locator(f"#recent-{request.public_id}")).to_contain_text("Changes requested")
    watch(reviewer)
    requester = fresh(browser, live_app, people["requester"], request.get_absolute_url())

    requester.get_by_label("Title").fill("Ergonomic mouse, left-handed")
    requester.get_by_role("button", name="Resubmit").click()

    row = reviewer.locator(f"#inbox-rows #request-{request.public_id}")
    expect(row).to_contain_text("Ergonomic mouse, left-handed", timeout=15_000)
    expect(row.get_by_role("button", name="Decide")).to_be_visible()
    expect(reviewer.get_by_text("Nothing to review.")).to_have_count(0)
    expect(reviewer.locator(f"#recent-{request.public_id}")).to_have_count(0)
    expect(
        reviewer.get_by_role("heading", name="Recently on your desk")
    ).to_be_hidden()  # it was the only one
    assert not_reloaded(reviewer)
    screenshot(reviewer, "inbox-resubmitted")
    reloaded = fresh(browser, live_app, people["reviewer1"], "/inbox/")
    expect(reloaded.locator(f"#inbox-rows #request-{request.public_id}")).to_contain_text("left-handed")
    expect(reloaded.locator(f"#recent-{request.public_id}")).to_have_count(0)


def test_the_status_card_keeps_the_count_and_who_it_waits_for_after_a_push(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    Stage.objects.filter(request_type=purchase).update(rule="all")
    request = submit(people, purchase, "Two monitors")
    requester = fresh(browser, live_app, people["requester"], request.get_absolute_url())
    expect(requester.get_by_test_id("approvals")).to_have_text("Approvals: 0 of 2")
    watch(requester)
    first = fresh(browser, live_app, people["reviewer1"], request.get_absolute_url())
    second = fresh(browser, live_app, people["reviewer2"], request.get_absolute_url())

    first.get_by_label("Comment", exact=False).first.fill("One is fine by me")
    first.get_by_role("button", name="Approve").click()
    expect(first.locator(f"#answer-{request.public_id}")).to_have_text("Your approval is recorded (1 of 2).")
    expect(requester.get_by_test_id("approvals")).to_have_text("Approvals: 1 of 2", timeout=15_000)
    expect(requester.get_by_test_id("waiting")).to_have_text("reviewer2")
    expect(second.get_by_test_id("approvals")).to_have_text("Approvals: 1 of 2")
    second.get_by_label("Add a comment").fill("Looking at it")
    second.get_by_role("button", name="Comment").click()
    expect(requester.locator(".timeline")).to_contain_text("Looking at it", timeout=15_000)
    expect(requester.get_by_test_id("approvals")).to_have_text("Approvals: 1 of 2")
    expect(requester.get_by_test_id("waiting")).to_have_text("reviewer2")
    assert not_reloaded(requester)
    reloaded = fresh(browser, live_app, people["requester"], request.get_absolute_url())
    assert text(reloaded.locator(f"#status-{request.public_id}")) == text(
        requester.locator(f"#status-{request.public_id}")
    )


def test_typing_in_an_inbox_row_survives_every_push_and_keeps_the_focus(
    browser: Any, live_app: LiveServer, people: dict[str, User], purchase: RequestType
) -> None:
    from playwright.sync_api import expect

    request = submit(people, purchase, "Desk for the new hire")
    other = submit(people, purchase, "Chair for the new hire")
    requester = fresh(browser, live_app, people["requester"], request.get_absolute_url())
    reviewer = fresh(browser, live_app, people["reviewer1"], "/inbox/")
    watch(reviewer)
    row = reviewer.locator(f"#request-{request.public_id}")
    reviewer.locator(f"#select-{other.public_id}").check()
    box = row.get_by_label("Comment", exact=False)
    open_row(row)  # the comment box takes the focus
    expect(box).to_be_focused()
    reviewer.keyboard.type("Fine, but check the ")
    reviewer.evaluate(
        "window.__pushes = 0; document.addEventListener('htmx:wsAfterMessage', () => window.__pushes++)"
    )

    # Pushes for this row (comments from the requester's page and from reviewer2, a new
    # deadline) and for another one.
    requester.get_by_label("Add a comment").fill("It is for Monday")
    requester.get_by_role("button", name="Comment").click()
    expect(requester.locator(".timeline")).to_contain_text("It is for Monday")
    act(request, people["reviewer2"], ActionKind.COMMENT, "I can take it")
    request.refresh_from_db()
    services.request_act(
        request=request,
        actor=people["reviewer2"],
        kind=ActionKind.EXTEND,
        comment="Waiting for a quote",
        extend_by=timedelta(days=1),
    )
    act(other, people["requester"], ActionKind.COMMENT, "Any colour")
    # Every push is in. (Polled from here: Playwright's own polling in the page evaluates a
    # string, which the page's Content-Security-Policy rightly refuses.)
    wait_until(lambda: reviewer.evaluate("window.__pushes") >= 4, timeout=15, what="the four pushes")

    focused = reviewer.evaluate("document.activeElement && document.activeElement.id")
    assert focused == f"comment-request-{request.public_id}"
    reviewer.keyboard.type("delivery date.")
    expect(box).to_have_value("Fine, but check the delivery date.")
    expect(reviewer.locator(f"#select-{other.public_id}")).to_be_checked()
    assert not_reloaded(reviewer)

    row.get_by_role("button", name="Approve").click()
    expect(row.locator(".badge")).to_have_text("Approved")
    wait_until(
        lambda: ApprovalRequest.objects.get(pk=request.pk).status == RequestStatus.APPROVED, what="approved"
    )
    assert ApprovalRequest.objects.get(pk=request.pk).decision_comment == "Fine, but check the delivery date."


def test_a_stopped_workflow_reads_as_stopped_to_everyone(
    browser: Any,
    loop: LoopThread,
    dev_server_settings: TemporalClient,
    live_app: LiveServer,
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    from playwright.sync_api import expect

    request = submit(people, purchase, "Projector bulb")
    requester = fresh(browser, live_app, people["requester"], request.get_absolute_url())
    reviewer = fresh(browser, live_app, people["reviewer1"], request.get_absolute_url())
    inbox = fresh(browser, live_app, people["reviewer2"], "/inbox/")
    mine = fresh(browser, live_app, people["requester"], "/")
    for page in (requester, reviewer, inbox, mine):
        watch(page)

    handle = dev_server_settings.get_workflow_handle(request.workflow_id)
    loop.run(handle.terminate(reason="bad deploy"))

    for page in (requester, reviewer):
        stopped = page.get_by_test_id("stopped")
        expect(stopped).to_contain_text("Its workflow has stopped in Temporal", timeout=20_000)
        expect(stopped).to_contain_text("(terminated: bad deploy)")
        expect(page.get_by_test_id("live-status")).to_have_text("Stopped")
        expect(stopped).to_contain_text("Nothing moves until staff retry or cancel it")
        expect(page.get_by_test_id("waiting")).to_have_count(0)
        expect(page.get_by_role("button", name="Approve")).to_have_count(0)
        expect(page.get_by_text("not answering")).to_have_count(0)
        assert not_reloaded(page)
    row = inbox.locator(f"#request-{request.public_id}")
    expect(row).to_contain_text("Its workflow has stopped")
    expect(row.locator(".badge")).to_have_text("Stopped")
    mine_row = mine.locator(f"#mine-{request.public_id}")
    expect(mine_row.locator(".badge")).to_have_text("Stopped")
    expect(mine_row).to_contain_text("Staff, to retry or cancel it")
    assert not_reloaded(inbox) and not_reloaded(mine)
    expect(row.get_by_role("button", name="Approve")).to_have_count(0)
    screenshot(requester, "request-stopped")

    # Acting on it anyway (a page left open elsewhere) is told the same, not "try again".
    request.refresh_from_db()
    try:
        act(request, people["reviewer1"], ActionKind.APPROVE)
    except ActionRefused as refused:
        assert "workflow has stopped" in str(refused)
    else:
        raise AssertionError("an approval of a stopped request was accepted")
