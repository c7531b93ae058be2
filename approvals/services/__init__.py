"""Services: every write, and every conversation with Temporal, goes through here."""

from approvals.services.actions import (
    BulkOutcome,
    request_act,
    request_live_state,
    request_signal,
    requests_act_bulk,
)
from approvals.services.email_links import (
    LinkRefused,
    email_link_check,
    email_link_make,
    email_link_use,
)
from approvals.services.notifications import notification_send
from approvals.services.policies import policy_snapshot
from approvals.services.projection import approvers_resolve, request_project
from approvals.services.requests import (
    approval_input_for,
    request_start_workflow,
    request_submit,
    requests_start_pending,
)
from approvals.services.routing import StagePreview, routing_preview
from approvals.services.staff import (
    Trouble,
    request_cancel_by_staff,
    request_retry_by_staff,
    workflows_in_trouble,
)

__all__ = [
    "Trouble",
    "request_cancel_by_staff",
    "request_retry_by_staff",
    "workflows_in_trouble",
    "StagePreview",
    "routing_preview",
    "BulkOutcome",
    "requests_act_bulk",
    "LinkRefused",
    "email_link_check",
    "email_link_make",
    "email_link_use",
    "request_signal",
    "approval_input_for",
    "approvers_resolve",
    "notification_send",
    "policy_snapshot",
    "request_act",
    "request_live_state",
    "request_project",
    "request_start_workflow",
    "request_submit",
    "requests_start_pending",
]
