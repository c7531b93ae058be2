"""Selectors: reads for views, from the read model (never from Temporal)."""

from approvals.selectors.analytics import (
    EXPORT_COLUMNS,
    approver_load,
    decision_times_by_stage,
    decision_times_by_type,
    requests_export,
    slowest_responders,
    throughput,
)
from approvals.selectors.dashboard import dashboard_summary, mailbox, staff_actions_recent
from approvals.selectors.requests import (
    InboxSort,
    InboxState,
    display_name,
    inbox_items,
    inbox_recent,
    inbox_requesters,
    inbox_waiting,
    request_abilities,
    request_get_visible,
    request_list_for_requester,
    request_state,
    request_timeline,
    reviewer_pending_count,
)

__all__ = [
    "EXPORT_COLUMNS",
    "approver_load",
    "decision_times_by_stage",
    "decision_times_by_type",
    "requests_export",
    "slowest_responders",
    "throughput",
    "dashboard_summary",
    "InboxSort",
    "InboxState",
    "inbox_items",
    "inbox_recent",
    "inbox_requesters",
    "inbox_waiting",
    "mailbox",
    "request_abilities",
    "request_get_visible",
    "request_list_for_requester",
    "staff_actions_recent",
    "request_timeline",
    "reviewer_pending_count",
    "request_state",
    "display_name",
]
