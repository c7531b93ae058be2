"""How the workflows call the activities that keep their books (resolve, project, record, end):
one deadline, and retries with backoff that never give up on what a retry can still fix."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

from workflows.types import NON_RETRYABLE_ERROR_TYPES

ACTIVITY_TIMEOUT = timedelta(seconds=30)
ACTIVITY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=list(NON_RETRYABLE_ERROR_TYPES),
)
