"""The delivery of one webhook event to one subscriber: one workflow per round of it
(`webhook-<delivery id>-<round>`), started by the worker's relay once the event is recorded.

One activity makes each attempt (a signed POST, its answer recorded in the delivery log), and
Temporal retries it with a backoff that grows to an hour, for as long as the round may last (a
day unless the settings say otherwise). A round that gives up (the day is over, or the
subscriber said it is gone) is recorded as failing, never dropped: staff see it, and may
redeliver it, which starts the next round.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState, TimeoutError

with workflow.unsafe.imports_passed_through():
    from workflows.retry import ACTIVITY_RETRY, ACTIVITY_TIMEOUT
    from workflows.types import (
        DELIVER_WEBHOOK,
        NON_RETRYABLE_ERROR_TYPES,
        RECORD_WEBHOOK_FAILING,
        UNDELIVERABLE,
        WebhookDeliveryInput,
        WebhookFailure,
    )

# One attempt: the subscriber's answer (the HTTP call has a shorter deadline of its own) and
# its record in the delivery log.
ATTEMPT_TIMEOUT = timedelta(seconds=30)
# After 5 s, then twice as long each time, up to an hour between attempts: about thirty
# attempts in a day.
DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(hours=1),
    non_retryable_error_types=[*NON_RETRYABLE_ERROR_TYPES, UNDELIVERABLE],
)


@workflow.defn
class WebhookDeliveryWorkflow:
    @workflow.run
    async def run(self, delivery: WebhookDeliveryInput) -> str:
        """What became of the round: the activity's word on the delivery, or why it is failing."""
        try:
            return await workflow.execute_activity(
                DELIVER_WEBHOOK,
                delivery,
                result_type=str,
                start_to_close_timeout=ATTEMPT_TIMEOUT,
                schedule_to_close_timeout=timedelta(seconds=delivery.retry_seconds),
                retry_policy=DELIVERY_RETRY,
            )
        except ActivityError as exc:
            reason = _gave_up(exc, delivery)
        await workflow.execute_activity(
            RECORD_WEBHOOK_FAILING,
            WebhookFailure(delivery_id=delivery.delivery_id, round=delivery.round, reason=reason),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )
        return f"failing: {reason}"


def _gave_up(exc: ActivityError, delivery: WebhookDeliveryInput) -> str:
    """Why the round gave up, for staff: the last attempt's own error is in the delivery log."""
    cause = exc.cause
    said = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
    if isinstance(cause, TimeoutError) or exc.retry_state == RetryState.TIMEOUT:
        return (
            f"Still not delivered after {_span(delivery.retry_seconds)} of retries; the last attempt: {said}"
        )
    return said


def _span(seconds: int) -> str:
    """24 hours, 90 minutes, 45 seconds."""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'' if n == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"
