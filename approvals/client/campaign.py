"""Access-review campaigns: start one, cancel it, send reviewers' decisions to its reviews, and
close the reviews a cancelled campaign leaves open."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from django.conf import settings
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from approvals.client.connection import (
    Refused,
    TemporalError,
    Unanswered,
    Unreachable,
    call,
    start_once,
    timeout,
    translated,
)
from workflows.campaign import CampaignWorkflow, ReviewWorkflow
from workflows.types import CampaignCancel, CampaignInput, ReviewDecision, campaign_id_for


def start_campaign(public_id: object) -> bool:
    """Start the campaign's workflow on the bulk queue; False when it was started already."""
    return start_once(
        CampaignWorkflow.run,
        CampaignInput(str(public_id)),
        id=campaign_id_for(public_id),
        task_queue=settings.TEMPORAL_BULK_TASK_QUEUE,
    )


def cancel_campaign(public_id: object, cancel: CampaignCancel) -> None:
    """Ask the campaign to stop (a signal): it closes the reviews still open, then ends."""

    async def signal(client: Client) -> None:
        handle = client.get_workflow_handle(campaign_id_for(public_id))
        await handle.signal(CampaignWorkflow.cancel, cancel, rpc_timeout=timeout())

    call(signal)


def send_review_decisions(
    decisions: dict[str, ReviewDecision], concurrency: int
) -> dict[str, str | TemporalError]:
    """Send each decision to its review (by workflow id), at most `concurrency` at a time: every
    review gets its own answer or error, and one never stops the others."""

    async def one(client: Client, limit: asyncio.Semaphore, review_id: str) -> str | TemporalError:
        decision = decisions[review_id]
        async with limit:
            try:
                return str(
                    await client.get_workflow_handle(review_id).execute_update(
                        ReviewWorkflow.decide, decision, id=decision.action_id, rpc_timeout=timeout()
                    )
                )
            except WorkflowUpdateRPCTimeoutOrCancelledError:
                return Unanswered(accepted=False)
            except WorkflowUpdateFailedError as exc:
                cause = exc.cause
                return Refused(cause.message if isinstance(cause, ApplicationError) else str(cause or exc))
            except RPCError as exc:
                return translated(exc)

    return _each(decisions, concurrency, one)


def close_reviews(review_ids: list[str], concurrency: int, progress: Callable[[int], None]) -> list[str]:
    """Tell each of these reviews that its campaign was cancelled (a signal: an undecided one
    closes, a decided one finishes); the ids of those no longer running. `progress` hears how
    many were told so far, after each batch (the activity heartbeats with it)."""

    async def one(client: Client, limit: asyncio.Semaphore, review_id: str) -> bool:
        async with limit:
            try:
                await client.get_workflow_handle(review_id).signal(
                    ReviewWorkflow.close, rpc_timeout=timeout()
                )
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:  # never started, or over already
                    return False
                raise translated(exc) from exc
            return True

    gone = []
    for start in range(0, len(review_ids), BATCH):
        batch = review_ids[start : start + BATCH]
        answers = _each(dict.fromkeys(batch), concurrency, one)
        for review_id, answer in answers.items():
            if isinstance(answer, TemporalError):
                raise answer
            if not answer:
                gone.append(review_id)
        progress(start + len(batch))
    return gone


BATCH = 200


def _each(items: dict[str, Any], concurrency: int, one: Callable[..., Any]) -> dict[str, Any]:
    async def all_of(client: Client) -> list[Any]:
        limit = asyncio.Semaphore(concurrency)
        return await asyncio.gather(*(one(client, limit, key) for key in items), return_exceptions=False)

    try:
        answers = call(all_of, calls=2 * -(-len(items) // concurrency))
    except Unreachable as exc:
        answers = [exc] * len(items)
    return dict(zip(items, answers, strict=True))
