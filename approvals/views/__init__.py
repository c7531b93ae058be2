"""Views: validate, call a service or selector, render."""

from approvals.views.dashboard import dashboard, dashboard_export, mailbox
from approvals.views.requests import (
    email_action,
    home,
    inbox,
    inbox_bulk,
    request_act,
    request_create,
    request_detail,
    request_preview,
    request_resubmit,
)

__all__ = [
    "dashboard",
    "dashboard_export",
    "email_action",
    "home",
    "inbox",
    "inbox_bulk",
    "mailbox",
    "request_act",
    "request_create",
    "request_detail",
    "request_preview",
    "request_resubmit",
]
