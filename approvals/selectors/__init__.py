"""Selectors: reads for views, from the read model (never from Temporal)."""

from approvals.selectors.dashboard import dashboard_summary, mailbox
from approvals.selectors.requests import (
    inbox_recent,
    inbox_waiting,
    request_get_visible,
    request_list_for_requester,
    reviewer_pending_count,
    user_is_pending,
    waiting_for,
)

__all__ = [
    "dashboard_summary",
    "inbox_recent",
    "inbox_waiting",
    "mailbox",
    "request_get_visible",
    "request_list_for_requester",
    "reviewer_pending_count",
    "user_is_pending",
    "waiting_for",
]
