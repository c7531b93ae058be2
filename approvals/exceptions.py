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


class AlreadyDecided(ApprovalError):
    """Someone decided first (maps to 409)."""


class ActionRefused(ApprovalError):
    """The workflow refused the action in its current state (maps to 409), e.g. already decided."""


class ReviewNotStarted(ApprovalError):
    """The workflow has not been started yet (Temporal was unreachable); it will be."""


class WorkflowUnavailable(ApprovalError):
    """Temporal did not answer in time."""
