"""Every workflow the app runs, by the worker pool that runs it: the workers register these, and
the replay of the committed histories and the soak's replay of its own run on all of them."""

from workflows.approval import ApprovalWorkflow
from workflows.campaign import CampaignWorkflow, ReviewWorkflow
from workflows.fulfilment import FulfilmentWorkflow
from workflows.grant import GrantWorkflow
from workflows.webhook import WebhookDeliveryWorkflow

INTERACTIVE_WORKFLOWS: list[type] = [ApprovalWorkflow, FulfilmentWorkflow, GrantWorkflow]
BULK_WORKFLOWS: list[type] = [CampaignWorkflow, ReviewWorkflow]  # a campaign and its reviews
WEBHOOK_WORKFLOWS: list[type] = [WebhookDeliveryWorkflow]
ALL_WORKFLOWS: list[type] = INTERACTIVE_WORKFLOWS + BULK_WORKFLOWS + WEBHOOK_WORKFLOWS
