"""Views: validate, call a service or selector, render."""

from approvals.views.access import access_act, access_all, access_export, access_mine
from approvals.views.dashboard import (
    budgets,
    dashboard,
    dashboard_cancel,
    dashboard_export,
    dashboard_fulfil,
    dashboard_retry,
    dashboard_workflows,
    mailbox,
)
from approvals.views.requests import (
    decision_status,
    email_action,
    home,
    inbox,
    inbox_bulk,
    inbox_requesters,
    request_act,
    request_create,
    request_detail,
    request_preview,
    request_resubmit,
)

__all__ = [
    "access_act",
    "access_all",
    "access_export",
    "access_mine",
    "budgets",
    "dashboard",
    "dashboard_cancel",
    "dashboard_export",
    "dashboard_fulfil",
    "dashboard_retry",
    "dashboard_workflows",
    "email_action",
    "home",
    "inbox",
    "inbox_bulk",
    "inbox_requesters",
    "mailbox",
    "request_act",
    "request_create",
    "request_detail",
    "request_preview",
    "request_resubmit",
    "decision_status",
]
