"""Activities: thin adapters from the approval workflow to the services, under the names the
workflow calls them by.

The ORM is synchronous, so each runs its service in a thread with fresh database connections.
Errors a retry cannot fix are raised as non-retryable, so the workflow learns at once (and
staff see them on the dashboard); anything else is retried with backoff.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from django.db import close_old_connections
from temporalio import activity
from temporalio.exceptions import ApplicationError

from approvals import live, services
from approvals.exceptions import InvalidInput, NotFound
from workflows.types import (
    INVALID,
    NOT_FOUND,
    PROJECT_STATE,
    RESOLVE_APPROVERS,
    SEND_NOTIFICATION,
    Assignee,
    AssignInput,
    NotificationInput,
    Projection,
)

P = ParamSpec("P")
R = TypeVar("R")


def _service(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a service with fresh database connections, its domain errors told as Temporal's."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
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


@activity.defn(name=RESOLVE_APPROVERS)
def resolve_approvers(assign: AssignInput) -> list[Assignee]:
    return _service(services.approvers_resolve)(assign=assign)


@activity.defn(name=PROJECT_STATE)
async def project_state(projection: Projection) -> None:
    """Project the state into the read model; once that has committed, tell the open pages."""
    await live.push(await asyncio.to_thread(_service(services.request_project), projection=projection))


@activity.defn(name=SEND_NOTIFICATION)
def send_notification(notification: NotificationInput) -> None:
    _service(services.notification_send)(notification=notification, heartbeat=activity.heartbeat)


ACTIVITIES: list[Callable[..., Any]] = [resolve_approvers, project_state, send_notification]
