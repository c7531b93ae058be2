"""Domain errors, with messages a person can act on."""

from __future__ import annotations


class ApprovalError(Exception):
    """Base class: the message is shown to the user as it is."""


class NotFound(ApprovalError):
    pass


class InvalidInput(ApprovalError):
    pass


class NotAllowed(ApprovalError):
    """The user may not do this (maps to 403)."""


class ActionRefused(ApprovalError):
    """The workflow refused the action in its current state (maps to 409), e.g. already decided."""


class WorkflowUnavailable(ApprovalError):
    """Temporal could not take the action, so it was not recorded."""


class ActionPending(ApprovalError):
    """The action was sent and its answer is not in yet (maps to 202): recorded but not yet
    confirmed, or not known yet whether it will be. Never told as a failure."""


class InsufficientBudget(ApprovalError):
    """A cost centre's available budget is short of what a purchase needs: retrying cannot help."""


class PartnerRefused(ApprovalError):
    """A partner's endpoint refused what was sent as it is (a 4xx): retrying cannot help."""


class PartnerUnavailable(ApprovalError):
    """A partner's endpoint did not answer, or failed (5xx, 408, 429): try again later."""


class OrderRefused(PartnerRefused):
    """The purchase-order endpoint refused the order as it is."""


class OrderEndpointUnavailable(PartnerUnavailable):
    """The purchase-order endpoint did not answer, or failed."""


class WebhookUndeliverable(ApprovalError):
    """A webhook delivery that no retry can make: the subscriber said it is gone (410), or its
    address cannot be called."""


class WebhookNotAccepted(ApprovalError):
    """The subscriber did not take the delivery (no answer, or not a 2xx): try again later."""
