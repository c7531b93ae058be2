"""Messages between Django and the approval workflow: stdlib dataclasses and enums only.

Every message is one dataclass, so fields can be added (with defaults) without breaking
workflows already running.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

INTERACTIVE_TASK_QUEUE = "approvals-interactive"


def workflow_id_for(public_id: str) -> str:
    return f"approval-{public_id}"


class RequestStatus(StrEnum):
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    ESCALATED = "escalated"
    APPROVED = "approved"
    REJECTED = "rejected"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"

    @property
    def past(self) -> str:
        return {"approve": "approved", "reject": "rejected"}[self.value]


class EventKind(StrEnum):
    REVIEW_STARTED = "review_started"
    ESCALATED = "escalated"
    APPROVED = "approved"
    REJECTED = "rejected"


class NotificationKind(StrEnum):
    ASSIGNED = "assigned"
    ESCALATED = "escalated"
    DECIDED = "decided"


@dataclass
class ApprovalInput:
    request_id: str
    requester_id: int
    reviewer_ids: list[int]
    escalation_ids: list[int]
    review_deadline_seconds: int


@dataclass
class DecisionInput:
    actor_id: int
    decision: Decision
    comment: str = ""


@dataclass
class ApprovalState:
    status: RequestStatus
    approver_ids: list[int]
    deadline: datetime | None
    escalated: bool
    decided_by: int | None = None
    decision: Decision | None = None
    comment: str = ""


@dataclass
class ApprovalOutcome:
    decision: Decision
    decided_by: int
    escalated: bool


@dataclass
class TransitionInput:
    """One state change to project into the read model; `seq` orders and deduplicates them."""

    request_id: str
    seq: int
    status: RequestStatus
    event: EventKind
    occurred_at: datetime
    deadline: datetime | None = None
    actor_id: int | None = None
    comment: str = ""
    added_approver_ids: list[int] = field(default_factory=list)
    added_approver_role: str = "reviewer"


@dataclass
class NotificationInput:
    request_id: str
    kind: NotificationKind
    recipient_ids: list[int]
    # Stable across activity retries and workflow replays: one email per key and recipient.
    idempotency_key: str
