"""Activities: thin, idempotent adapters from the workflow to approvals.services.

They are synchronous (the ORM is), so the worker runs them in a thread pool. Errors a retry
cannot fix are raised as non-retryable ApplicationErrors so the workflow learns at once.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.types import Assignee, AssignInput, NotificationInput, Projection

NOT_FOUND = "NotFound"
INVALID = "Invalid"
NON_RETRYABLE_ERROR_TYPES = (NOT_FOUND, INVALID)

P = ParamSpec("P")
R = TypeVar("R")


def _django_activity(fn: Callable[P, R]) -> Callable[P, R]:
    """Run fn with fresh database connections and turn domain errors into Temporal ones."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from django.db import close_old_connections

        from approvals.exceptions import InvalidInput, NotFound

        close_old_connections()
        try:
            return fn(*args, **kwargs)
        except NotFound as exc:
            raise ApplicationError(str(exc), type=NOT_FOUND, non_retryable=True) from exc
        except InvalidInput as exc:
            raise ApplicationError(str(exc), type=INVALID, non_retryable=True) from exc
        finally:
            close_old_connections()

    return wrapper


@activity.defn
@_django_activity
def resolve_approvers(assign: AssignInput) -> list[Assignee]:
    from approvals import services

    return services.approvers_resolve(assign=assign)


@_django_activity
def _project(projection: Projection) -> list[int]:
    from approvals import live, services

    services.request_project(projection=projection)
    return live.audience(public_id=projection.request_id)


@activity.defn
async def project_state(projection: Projection) -> None:
    """Project the state into the read model, then tell open dashboards (best effort)."""
    audience = await asyncio.to_thread(_project, projection)
    from approvals import live

    try:
        await live.send_changed(public_id=projection.request_id, user_ids=audience)
    except Exception:  # a down channel layer must not hold up the request; pages catch up on load
        activity.logger.exception("Could not push the change of %s to live pages", projection.request_id)


@activity.defn
@_django_activity
def send_notification(notification: NotificationInput) -> None:
    from approvals import services

    services.notification_send(notification=notification, heartbeat=activity.heartbeat)
