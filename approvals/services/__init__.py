"""Services: every write, and every conversation with Temporal (through approvals.client)."""

from approvals.services.access import (
    access_grant,
    access_problems,
    access_take_back,
    grant_act,
    grant_end,
    grant_load,
    grant_record,
)
from approvals.services.actions import (
    BulkOutcome,
    request_act,
    request_signal,
    requests_act_bulk,
)
from approvals.services.budgets import budget_allocate, budget_release, budget_reserve
from approvals.services.campaigns import (
    ReviewAnswer,
    campaign_cancel,
    campaign_digests_send,
    campaign_open,
    campaign_record,
    campaign_reviews,
    campaign_reviews_close,
    campaign_start,
    review_record,
    review_revoke,
    reviews_decide,
)
from approvals.services.email_links import (
    LinkRefused,
    email_link_check,
    email_link_make,
    email_link_use,
)
from approvals.services.fulfilment import (
    fulfilment_budget_release,
    fulfilment_budget_reserve,
    fulfilment_order_cancel,
    fulfilment_order_place,
    fulfilment_record,
)
from approvals.services.notifications import notification_send
from approvals.services.policies import policy_snapshot
from approvals.services.projection import approvers_resolve, request_change, request_project
from approvals.services.requests import (
    agent_action_submit,
    approval_input_for,
    request_start_workflow,
    request_submit,
    requests_start_pending,
)
from approvals.services.routing import StagePreview, routing_preview
from approvals.services.staff import (
    fulfilment_retry_by_staff,
    request_cancel_by_staff,
    request_retry_by_staff,
)
from approvals.services.trouble import (
    Trouble,
    activity_failure_clear,
    activity_failure_note,
    request_stopped_note,
    workflows_in_trouble,
    workflows_stopped_note,
)
from approvals.services.webhooks import (
    subscriber_save,
    webhook_attempt,
    webhook_failing,
    webhook_redeliver,
    webhooks_start_pending,
)

__all__ = [
    "agent_action_submit",
    "ReviewAnswer",
    "campaign_cancel",
    "campaign_digests_send",
    "campaign_open",
    "campaign_record",
    "campaign_reviews",
    "campaign_reviews_close",
    "campaign_start",
    "review_record",
    "review_revoke",
    "reviews_decide",
    "access_grant",
    "access_problems",
    "access_take_back",
    "grant_act",
    "grant_end",
    "grant_load",
    "grant_record",
    "budget_allocate",
    "budget_release",
    "budget_reserve",
    "BulkOutcome",
    "LinkRefused",
    "StagePreview",
    "Trouble",
    "activity_failure_clear",
    "activity_failure_note",
    "approval_input_for",
    "approvers_resolve",
    "email_link_check",
    "email_link_make",
    "email_link_use",
    "fulfilment_budget_release",
    "fulfilment_budget_reserve",
    "fulfilment_order_cancel",
    "fulfilment_order_place",
    "fulfilment_record",
    "fulfilment_retry_by_staff",
    "notification_send",
    "policy_snapshot",
    "request_act",
    "request_cancel_by_staff",
    "request_change",
    "request_project",
    "request_retry_by_staff",
    "request_signal",
    "request_start_workflow",
    "request_stopped_note",
    "request_submit",
    "requests_act_bulk",
    "requests_start_pending",
    "routing_preview",
    "subscriber_save",
    "webhook_attempt",
    "webhook_failing",
    "webhook_redeliver",
    "webhooks_start_pending",
    "workflows_in_trouble",
    "workflows_stopped_note",
]
