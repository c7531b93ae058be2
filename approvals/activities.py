"""Activities: thin adapters from the approval workflow to the services, under the names the
workflow calls them by.

The ORM is synchronous, so each runs its service in a thread with fresh database connections.
Errors a retry cannot fix (no such request, input no database keeps) are raised as
non-retryable, so the workflow learns at once; anything else is retried with backoff. Every
failed attempt is noted in the read model, so that staff see a step that keeps failing while
Temporal retries it (services.trouble).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

from django.db import DatabaseError, DataError, IntegrityError, close_old_connections
from temporalio import activity
from temporalio.exceptions import ApplicationError

from approvals import live, services
from approvals.exceptions import (
    InsufficientBudget,
    InvalidInput,
    NotFound,
    PartnerRefused,
    WebhookUndeliverable,
)
from workflows.types import (
    CANCEL_ORDER,
    CLOSE_REVIEWS,
    DELIVER_WEBHOOK,
    END_GRANT,
    GRANT_ACCESS,
    INSUFFICIENT_BUDGET,
    INVALID,
    LIST_REVIEWS,
    LOAD_GRANT,
    NOT_FOUND,
    OPEN_CAMPAIGN,
    PLACE_ORDER,
    PROJECT_STATE,
    RECORD_CAMPAIGN,
    RECORD_FULFILMENT,
    RECORD_GRANT,
    RECORD_REVIEW,
    RECORD_WEBHOOK_FAILING,
    REFUSED_BY_PARTNER,
    RELEASE_BUDGET,
    RESERVE_BUDGET,
    RESOLVE_APPROVERS,
    REVOKE_ACCESS,
    REVOKE_REVIEWED,
    SEND_DIGESTS,
    SEND_NOTIFICATION,
    UNDELIVERABLE,
    Assignee,
    AssignInput,
    CampaignPlan,
    CampaignReport,
    DigestRound,
    FulfilmentReport,
    GrantEnd,
    GrantInfo,
    GrantReport,
    NotificationInput,
    Projection,
    ReviewInput,
    ReviewPage,
    ReviewRecord,
    ReviewRevoke,
    ReviewsClose,
    StepInput,
    WebhookDeliveryInput,
    WebhookFailure,
)

logger = logging.getLogger(__name__)
R = TypeVar("R")
UNIQUE_VIOLATION = "23505"  # SQLSTATE: a race an upsert's retry resolves, unlike the others


def _classified(exc: Exception) -> Exception:
    """The error as the workflow should see it: non-retryable when retrying cannot help."""
    if isinstance(exc, NotFound):
        return ApplicationError(str(exc), type=NOT_FOUND, non_retryable=True)
    if isinstance(exc, InsufficientBudget):
        return ApplicationError(str(exc), type=INSUFFICIENT_BUDGET, non_retryable=True)
    if isinstance(exc, PartnerRefused):
        return ApplicationError(str(exc), type=REFUSED_BY_PARTNER, non_retryable=True)
    if isinstance(exc, WebhookUndeliverable):
        return ApplicationError(str(exc), type=UNDELIVERABLE, non_retryable=True)
    if isinstance(exc, InvalidInput | DataError | UnicodeError):
        return ApplicationError(f"Cannot be kept: {exc}", type=INVALID, non_retryable=True)
    if isinstance(exc, IntegrityError) and not _unique_violation(exc):
        return ApplicationError(f"Cannot be kept: {exc}", type=INVALID, non_retryable=True)
    return exc


def _unique_violation(exc: IntegrityError) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) == UNIQUE_VIOLATION or "UNIQUE constraint" in str(exc)


def _fresh(service: Callable[[], R]) -> R:
    """Run a service with fresh database connections (a pooled one goes back after)."""
    close_old_connections()
    try:
        return service()
    finally:
        close_old_connections()


def _run(name: str, request_id: str, service: Callable[[], R]) -> R:
    """Run a service with fresh database connections; note a failed attempt, and clear the note
    when a later attempt succeeds."""
    attempt = activity.info().attempt
    try:
        result = _fresh(service)
    except Exception as exc:
        error = _classified(exc)
        retrying = not (isinstance(error, ApplicationError) and error.non_retryable)
        _noted(
            services.activity_failure_note, request_id, name, attempt=attempt, error=exc, retrying=retrying
        )
        if error is exc:
            raise
        raise error from exc
    else:
        if attempt > 1:
            _noted(services.activity_failure_clear, request_id, name)
        return result


def _noted(note: Callable[..., None], request_id: str, name: str, **details: object) -> None:
    """Note it if the database lets us: a database that is away is the failure itself."""
    try:
        _fresh(lambda: note(request_id=request_id, activity=name, **details))
    except DatabaseError as exc:
        logger.warning("Could not note how %s of %s went: %s", name, request_id, exc)


@activity.defn(name=RESOLVE_APPROVERS)
def resolve_approvers(assign: AssignInput) -> list[Assignee]:
    return _run(RESOLVE_APPROVERS, assign.request_id, lambda: services.approvers_resolve(assign=assign))


@activity.defn(name=PROJECT_STATE)
async def project_state(projection: Projection) -> list[str]:
    """Project the state into the read model; once that has committed, tell the open pages, then
    send the emails that came along. Answers with the keys of the emails not sent: the workflow
    sends those on their own, with retries and backoff."""
    change = await asyncio.to_thread(
        _run, PROJECT_STATE, projection.request_id, lambda: services.request_project(projection=projection)
    )
    await live.push(change)
    return await _send_along(projection.notifications)


async def _send_along(notifications: list[NotificationInput]) -> list[str]:
    """Send these emails, one after another, until one fails: that one and the rest are left
    (a mail server that is away is not tried again for each)."""
    loop = asyncio.get_running_loop()

    def heartbeat(detail: str) -> None:  # from the sending thread, to the activity's loop
        loop.call_soon_threadsafe(activity.heartbeat, detail)

    for index, notification in enumerate(notifications):
        activity.heartbeat(f"sending {notification.idempotency_key}")
        try:
            await asyncio.to_thread(
                _fresh, lambda n=notification: services.notification_send(notification=n, heartbeat=heartbeat)
            )
        except Exception as exc:
            logger.warning("Email %s left to be sent on its own: %s", notification.idempotency_key, exc)
            return [n.idempotency_key for n in notifications[index:]]
    return []


@activity.defn(name=SEND_NOTIFICATION)
def send_notification(notification: NotificationInput) -> None:
    _run(
        SEND_NOTIFICATION,
        notification.request_id,
        lambda: services.notification_send(notification=notification, heartbeat=activity.heartbeat),
    )


# --- Fulfilment: each step and its compensation, and the record of how the saga goes ----------


@activity.defn(name=RESERVE_BUDGET)
def reserve_budget(step: StepInput) -> str:
    return _run(RESERVE_BUDGET, step.request_id, lambda: services.fulfilment_budget_reserve(step=step))


@activity.defn(name=RELEASE_BUDGET)
def release_budget(step: StepInput) -> str:
    return _run(RELEASE_BUDGET, step.request_id, lambda: services.fulfilment_budget_release(step=step))


@activity.defn(name=PLACE_ORDER)
def place_purchase_order(step: StepInput) -> str:
    return _run(PLACE_ORDER, step.request_id, lambda: services.fulfilment_order_place(step=step))


@activity.defn(name=CANCEL_ORDER)
def cancel_purchase_order(step: StepInput) -> str:
    return _run(CANCEL_ORDER, step.request_id, lambda: services.fulfilment_order_cancel(step=step))


@activity.defn(name=RECORD_FULFILMENT)
async def record_fulfilment(report: FulfilmentReport) -> None:
    """Record where the fulfilment stands (and send its email); then tell the open pages."""
    change = await asyncio.to_thread(
        _run, RECORD_FULFILMENT, report.request_id, lambda: services.fulfilment_record(report=report)
    )
    await live.push(change)


# --- Access grants: the grant step and its compensation; the grant workflow's own -------------


@activity.defn(name=GRANT_ACCESS)
def grant_access(step: StepInput) -> str:
    return _run(GRANT_ACCESS, step.request_id, lambda: services.access_grant(step=step))


@activity.defn(name=REVOKE_ACCESS)
def revoke_access(step: StepInput) -> str:
    return _run(REVOKE_ACCESS, step.request_id, lambda: services.access_take_back(step=step))


@activity.defn(name=LOAD_GRANT)
def load_grant(request_id: str) -> GrantInfo:
    return _run(LOAD_GRANT, request_id, lambda: services.grant_load(request_id=request_id))


@activity.defn(name=END_GRANT)
def end_grant(end: GrantEnd) -> None:
    _run(END_GRANT, end.request_id, lambda: services.grant_end(end=end))


@activity.defn(name=RECORD_GRANT)
async def record_grant(report: GrantReport) -> None:
    """Record a change of the grant (and send its email); then tell the open pages."""
    change = await asyncio.to_thread(
        _run, RECORD_GRANT, report.request_id, lambda: services.grant_record(report=report)
    )
    await live.push(change)


# --- Access-review campaigns (on the bulk queue): the campaign's books, and each review's ------
# Their failures are noted under no request: the campaign's id stands in its place.


def _heartbeat(detail: str) -> None:
    activity.heartbeat(detail)


@activity.defn(name=OPEN_CAMPAIGN)
def open_campaign(campaign_id: str) -> CampaignPlan:
    return _run_bulk(
        OPEN_CAMPAIGN, lambda: services.campaign_open(campaign_id=campaign_id, heartbeat=_heartbeat)
    )


@activity.defn(name=LIST_REVIEWS)
def list_reviews(page: ReviewPage) -> list[ReviewInput]:
    return _run_bulk(LIST_REVIEWS, lambda: services.campaign_reviews(page=page))


@activity.defn(name=RECORD_CAMPAIGN)
async def record_campaign(report: CampaignReport) -> None:
    """Record where the campaign stands; then tell the staff pages (its progress)."""
    if await asyncio.to_thread(_run_bulk, RECORD_CAMPAIGN, lambda: services.campaign_record(report=report)):
        await live.push_campaign(report.campaign_id, ())


@activity.defn(name=SEND_DIGESTS)
def send_campaign_digests(round: DigestRound) -> int:
    return _run_bulk(SEND_DIGESTS, lambda: services.campaign_digests_send(round=round, heartbeat=_heartbeat))


@activity.defn(name=CLOSE_REVIEWS)
def close_campaign_reviews(close: ReviewsClose) -> int:
    return _run_bulk(
        CLOSE_REVIEWS, lambda: services.campaign_reviews_close(close=close, heartbeat=_heartbeat)
    )


@activity.defn(name=RECORD_REVIEW)
async def record_review(record: ReviewRecord) -> None:
    """Record a review's decision or outcome; then tell its reviewer's pages, and staff's."""
    user_ids = await asyncio.to_thread(
        _run_bulk, RECORD_REVIEW, lambda: services.review_record(record=record)
    )
    await live.push_campaign(record.campaign_id, tuple(user_ids))


@activity.defn(name=REVOKE_REVIEWED)
def revoke_reviewed_access(revoke: ReviewRevoke) -> bool:
    return _run_bulk(REVOKE_REVIEWED, lambda: services.review_revoke(revoke=revoke))


def _run_bulk(name: str, service: Callable[[], R]) -> R:
    """Run a campaign's service with fresh database connections; errors classified as for a
    request's steps, and logged with the attempt (the campaign's progress on the dashboard, and
    its workflow in Temporal's UI, show one that keeps failing)."""
    try:
        return _fresh(service)
    except Exception as exc:
        error = _classified(exc)
        logger.warning("%s failed (attempt %d): %s", name, activity.info().attempt, exc)
        if error is exc:
            raise
        raise error from exc


# --- Webhook deliveries (on the webhook queue): each attempt, and a round's giving up ----------
# Each attempt is in the delivery's own log (staff read it there), so none is noted as trouble.


@activity.defn(name=DELIVER_WEBHOOK)
def deliver_webhook(delivery: WebhookDeliveryInput) -> str:
    attempt = activity.info().attempt
    return _run_bulk(DELIVER_WEBHOOK, lambda: services.webhook_attempt(delivery=delivery, attempt=attempt))


@activity.defn(name=RECORD_WEBHOOK_FAILING)
def record_webhook_failing(failure: WebhookFailure) -> None:
    _run_bulk(RECORD_WEBHOOK_FAILING, lambda: services.webhook_failing(failure=failure))


ACTIVITIES: list[Callable[..., object]] = [
    resolve_approvers,
    project_state,
    send_notification,
    reserve_budget,
    release_budget,
    place_purchase_order,
    cancel_purchase_order,
    record_fulfilment,
    grant_access,
    revoke_access,
    load_grant,
    end_grant,
    record_grant,
]
# The bulk queue's: the campaigns' and their reviews'.
BULK_ACTIVITIES: list[Callable[..., object]] = [
    open_campaign,
    list_reviews,
    record_campaign,
    send_campaign_digests,
    close_campaign_reviews,
    record_review,
    revoke_reviewed_access,
]
# The webhook queue's.
WEBHOOK_ACTIVITIES: list[Callable[..., object]] = [deliver_webhook, record_webhook_failing]
