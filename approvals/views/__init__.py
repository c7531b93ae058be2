"""Views: validate, call a service or selector, render."""

from approvals.views.access import access_act, access_all, access_export, access_mine
from approvals.views.campaigns import (
    campaign_cancel,
    campaign_report,
    campaign_report_csv,
    campaigns,
    reviews,
    reviews_decide,
)
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
from approvals.views.health import healthz, prometheus_metrics, readyz
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
from approvals.views.tokens import token_revoke, tokens
from approvals.views.webhooks import webhook_detail, webhook_redeliver, webhooks

__all__ = [
    "webhook_detail",
    "webhook_redeliver",
    "webhooks",
    "healthz",
    "prometheus_metrics",
    "readyz",
    "token_revoke",
    "tokens",
    "access_act",
    "access_all",
    "access_export",
    "access_mine",
    "budgets",
    "campaign_cancel",
    "campaign_report",
    "campaign_report_csv",
    "campaigns",
    "reviews",
    "reviews_decide",
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
