"""Messages between Django and the approval workflow: stdlib dataclasses and enums only.

Every message is one dataclass, so fields can be added (with defaults) without breaking
workflows already running. Times are timezone-aware datetimes in UTC; money is a decimal string.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

INTERACTIVE_TASK_QUEUE = "approvals-interactive"
# Access-review campaigns run on a queue of their own, served by workers of their own, so that a
# campaign's flood of work never holds up people's approvals (and the other way round).
BULK_TASK_QUEUE = "approvals-bulk"
WORKFLOW_ID_PREFIX = "approval-"

# The activities the approval workflow calls, by name: the Django side implements them.
RESOLVE_APPROVERS = "resolve_approvers"
PROJECT_STATE = "project_state"
SEND_NOTIFICATION = "send_notification"
# Error types an activity raises when retrying cannot help.
NOT_FOUND = "NotFound"
INVALID = "Invalid"
NON_RETRYABLE_ERROR_TYPES = (NOT_FOUND, INVALID)
# The error type of an update a workflow refuses (its message says why, for the person).
REFUSED = "Refused"
# ... and those of fulfilment steps: the budget cannot cover it, or the partner refused it.
INSUFFICIENT_BUDGET = "InsufficientBudget"
REFUSED_BY_PARTNER = "RefusedByPartner"
STEP_ERROR_TYPES = (*NON_RETRYABLE_ERROR_TYPES, INSUFFICIENT_BUDGET, REFUSED_BY_PARTNER)

# The activities of fulfilment sagas: each step, its compensation, and the record of progress.
RESERVE_BUDGET = "reserve_budget"
RELEASE_BUDGET = "release_budget"
PLACE_ORDER = "place_purchase_order"
CANCEL_ORDER = "cancel_purchase_order"
RECORD_FULFILMENT = "record_fulfilment"
FULFILMENT_ID_PREFIX = "fulfilment-"
# ... and those of access grants: grant (a step) and take back (its compensation); what the grant
# workflow needs to know, its record, and its end.
GRANT_ACCESS = "grant_access"
REVOKE_ACCESS = "revoke_access"
LOAD_GRANT = "load_grant"
RECORD_GRANT = "record_grant"
END_GRANT = "end_grant"
GRANT_ID_PREFIX = "grant-"
# ... and those of access-review campaigns: the campaign's own (its items, its progress, its
# digests, its cancel) and each review's (its record, and the revoke it may lead to).
OPEN_CAMPAIGN = "open_campaign"
LIST_REVIEWS = "list_reviews"
RECORD_CAMPAIGN = "record_campaign"
SEND_DIGESTS = "send_campaign_digests"
CLOSE_REVIEWS = "close_campaign_reviews"
RECORD_REVIEW = "record_review"
REVOKE_REVIEWED = "revoke_reviewed_access"
CAMPAIGN_ID_PREFIX = "campaign-"
# ... and those of webhook deliveries (on a queue of their own: a subscriber that is slow or down
# holds up no approval): one attempt at a delivery, and its giving up.
WEBHOOK_TASK_QUEUE = "approvals-webhooks"
DELIVER_WEBHOOK = "deliver_webhook"
RECORD_WEBHOOK_FAILING = "record_webhook_failing"
WEBHOOK_ID_PREFIX = "webhook-"
# The error type of a delivery retrying cannot help: the subscriber said it is gone (410), its
# address cannot be called, or it was turned off or removed.
UNDELIVERABLE = "Undeliverable"


def workflow_id_for(public_id: object) -> str:
    """The id of a request's workflow: one per request, derived from its public id."""
    return f"{WORKFLOW_ID_PREFIX}{public_id}"


def fulfilment_id_for(public_id: object, attempt: int) -> str:
    """The id of a request's fulfilment: one per attempt (staff may retry a rolled-back one)."""
    return f"{FULFILMENT_ID_PREFIX}{public_id}-{attempt}"


def grant_id_for(public_id: object) -> str:
    """The id of the workflow of the access an access request granted: one per request."""
    return f"{GRANT_ID_PREFIX}{public_id}"


def campaign_id_for(public_id: object) -> str:
    """The id of an access-review campaign's workflow: one per campaign."""
    return f"{CAMPAIGN_ID_PREFIX}{public_id}"


def review_id_for(campaign_id: object, grant_id: int) -> str:
    """The id of the review of one grant in one campaign: derived from both, so that a campaign
    that starts its reviews again (a retry, a replay) can never start one twice."""
    return f"{CAMPAIGN_ID_PREFIX}{campaign_id}-grant-{grant_id}"


def webhook_id_for(event_id: str, subscriber_id: int, round: int) -> str:
    """The id of one round of the delivery of an event (its random id) to a subscriber: round 1
    is the first, each redelivery by staff another. Derived from all three, so that the relay can
    never start a round twice, and unique in the namespace whatever database the ids come from
    (a delivery's own number is not: another database numbers its deliveries from 1 too)."""
    return f"{WEBHOOK_ID_PREFIX}{event_id}-{subscriber_id}-{round}"


def public_id_of(workflow_id: str) -> str | None:
    """The public id of the request a workflow id belongs to; None for a workflow not of ours."""
    if not workflow_id.startswith(WORKFLOW_ID_PREFIX):
        return None
    return workflow_id.removeprefix(WORKFLOW_ID_PREFIX)


def notification_key(request_id: str, seq: int, kind: NotificationKind) -> str:
    """One notification per request, event and kind: stable across retries and replays."""
    return f"{request_id}:{seq}:{kind.value}"


class RequestStatus(StrEnum):
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    CHANGES_REQUESTED = "changes_requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    CANCELLED = "cancelled"  # by staff, or by an operator cancelling the workflow in Temporal

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {
        RequestStatus.APPROVED,
        RequestStatus.REJECTED,
        RequestStatus.WITHDRAWN,
        RequestStatus.EXPIRED,
        RequestStatus.CANCELLED,
    }
)


class Rule(StrEnum):
    ANY = "any"
    ALL = "all"
    N_OF_M = "n_of_m"


class Exhausted(StrEnum):
    """What happens when the last escalation level of a stage runs out."""

    REJECT = "reject"
    EXPIRE = "expire"
    APPROVE = "approve"


class Operator(StrEnum):
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    EQ = "eq"
    NE = "ne"


# An agent action's risk, lowest first: a policy's condition compares them in this order.
RISKS = ("low", "medium", "high", "critical")


class ActionKind(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    REQUEST_CHANGES = "request_changes"
    COMMENT = "comment"
    DELEGATE = "delegate"
    EXTEND = "extend"
    WITHDRAW = "withdraw"
    RESUBMIT = "resubmit"
    CANCEL = "cancel"  # staff only
    UNDO = "undo"  # takes back the actor's own decision while it is held (`target_id`)


# Decisions that wait out the request type's undo period before they take effect.
HELD_KINDS = frozenset({ActionKind.APPROVE, ActionKind.REJECT, ActionKind.REQUEST_CHANGES})


class EventKind(StrEnum):
    SUBMITTED = "submitted"
    STAGE_STARTED = "stage_started"
    STAGE_SKIPPED = "stage_skipped"  # a conditional stage that does not apply to this request
    APPROVAL = "approval"
    STAGE_APPROVED = "stage_approved"
    REJECTED = "rejected"
    CHANGES_REQUESTED = "changes_requested"
    RESUBMITTED = "resubmitted"
    COMMENT = "comment"
    DELEGATED = "delegated"
    EXTENDED = "extended"
    REMINDED = "reminded"
    ESCALATED = "escalated"
    APPROVED = "approved"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    # A decision made and held for its undo period; then undone by its maker, or lapsed (the
    # request moved so that it no longer applies); once the period ends it takes effect as its
    # own kind (APPROVAL, REJECTED, CHANGES_REQUESTED).
    HELD = "held"
    UNDONE = "undone"
    LAPSED = "lapsed"
    # After approval, the request type's fulfilment: each step done (or failed), each step undone
    # in reverse order on a failure, and how it ended.
    FULFILMENT_STARTED = "fulfilment_started"
    STEP_DONE = "step_done"
    STEP_FAILED = "step_failed"
    STEP_UNDONE = "step_undone"
    UNDO_FAILING = "undo_failing"
    FULFILLED = "fulfilled"
    ROLLED_BACK = "rolled_back"
    # An agent action approved with edited arguments: a new version, with its own hash.
    ACTION_EDITED = "action_edited"

    @property
    def label(self) -> str:
        return EVENT_LABELS.get(self) or self.value.replace("_", " ").capitalize()


EVENT_LABELS = {
    EventKind.HELD: "Decision made, open to undo",
    EventKind.UNDONE: "Decision undone",
    EventKind.LAPSED: "Decision lapsed",
    EventKind.FULFILMENT_STARTED: "Fulfilment started",
    EventKind.STEP_DONE: "Step done",
    EventKind.STEP_FAILED: "Step failed",
    EventKind.STEP_UNDONE: "Step undone",
    EventKind.UNDO_FAILING: "Undoing a step keeps failing",
    EventKind.ROLLED_BACK: "Fulfilment failed — rolled back",
    EventKind.ACTION_EDITED: "Arguments edited",
}


class NotificationKind(StrEnum):
    ASSIGNED = "assigned"
    REMINDER = "reminder"
    ESCALATED = "escalated"
    DECIDED = "decided"
    CHANGES_REQUESTED = "changes_requested"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    PROGRESS = "progress"  # to the requester: a stage is approved, the next one starts
    CANCELLED = "cancelled"  # to the requester and to those it waited for
    FULFILLED = "fulfilled"  # to the requester and the approvers: what the approval set in motion is done
    ROLLED_BACK = "rolled_back"  # ... or failed, and what it had done is undone
    ACCESS_EXPIRING = "access_expiring"  # to the holder: days before the access ends
    ACCESS_ENDED = "access_ended"  # to the holder: revoked, or the period over
    EXTENSION_ASKED = "extension_asked"  # to the resource's approvers
    EXTENSION_APPROVED = "extension_approved"  # to the holder
    EXTENSION_REFUSED = "extension_refused"  # to the holder


# --- The policy snapshot the workflow carries --------------------------------------------


@dataclass
class Condition:
    """The stage applies only when `field` of the request compares to `value` (e.g. amount > 1000)."""

    field: str
    operator: Operator
    value: str


@dataclass
class EscalationLevel:
    """Added when the previous deadline passes; gets `after_seconds` before the next step."""

    after_seconds: int
    user_ids: list[int] = field(default_factory=list)
    group_ids: list[int] = field(default_factory=list)


@dataclass
class StageSpec:
    name: str
    rule: Rule
    deadline_seconds: int
    user_ids: list[int] = field(default_factory=list)
    group_ids: list[int] = field(default_factory=list)
    required: int = 1  # for N_OF_M
    reminder_seconds: int | None = None
    escalation: list[EscalationLevel] = field(default_factory=list)
    on_exhausted: Exhausted = Exhausted.EXPIRE
    condition: Condition | None = None
    # The requester is one the stage trusts (found on submission): the stage approves itself,
    # where its condition holds, and the timeline says why.
    auto_approve: bool = False


class Fulfilment(StrEnum):
    """What an approval of a request type sets in motion (workflows.fulfilment has its steps)."""

    NONE = ""
    PURCHASE = "purchase"  # reserve the budget, place the purchase order
    ACCESS = "access"  # grant the access; its own workflow ends it on time


@dataclass
class Policy:
    request_type: str
    stages: list[StageSpec]
    # Separation of duties: nobody approves two stages of one request (nor takes a later stage
    # by delegation after approving an earlier one).
    distinct_approvers: bool = False
    # A decision takes effect this long after it is made, and its maker may undo it meanwhile
    # (0: at once, as for every request submitted before undo existed).
    undo_seconds: int = 0
    # What an approval sets in motion (nothing, for every request submitted before fulfilment).
    fulfilment: Fulfilment = Fulfilment.NONE


@dataclass
class Content:
    title: str
    details: str = ""
    amount: str | None = None
    # An agent action's: the tool it would call, its risk, and the SHA-256 of its canonical JSON
    # (the arguments themselves stay in the read model: what the workflow carries stays small).
    tool: str = ""
    risk: str = ""
    action_sha256: str = ""


@dataclass
class ApprovalInput:
    request_id: str
    requester_id: int
    requester_name: str
    policy: Policy
    content: Content
    # Continue-as-new when history reaches this many events (Temporal warns at 10,240).
    history_limit: int = 2000
    # Set only by continue-as-new: the state to resume from.
    carried: RequestState | None = None
    # Who the first stage asks, as the starter found them (None: the workflow asks the read model).
    first_assignees: list[Assignee] | None = None


# --- Who acts, and what happened ----------------------------------------------------------


@dataclass
class Assignee:
    user_id: int
    name: str
    level: int = 0  # 0: the stage's approvers; k: added by escalation level k
    acting_for_id: int | None = None
    acting_for_name: str = ""


@dataclass
class Vote:
    user_id: int
    name: str
    at: datetime
    revision: int
    comment: str = ""


@dataclass
class TimelineEntry:
    seq: int
    at: datetime
    kind: EventKind
    actor_id: int | None = None
    actor_name: str = ""
    comment: str = ""
    detail: str = ""
    stage: str = ""
    revision: int = 1
    action_id: str = ""  # the action that recorded it: the read model confirms the action by it


@dataclass
class StageState:
    index: int  # into policy.stages
    name: str
    version: int  # bumps whenever the stage (re)starts; approvals only count for their version
    rule: Rule
    required: int
    started_at: datetime
    deadline: datetime
    assigned: bool = False
    assignees: list[Assignee] = field(default_factory=list)
    approvals: list[Vote] = field(default_factory=list)
    escalation_level: int = 0  # escalation levels reached
    levels_assigned: int = 0  # escalation levels whose people have been added
    next_reminder_at: datetime | None = None


@dataclass
class ClosedStage:
    name: str
    assignee_ids: list[int]
    by_name: str
    at: datetime
    approver_ids: list[int] = field(default_factory=list)  # who approved it (none: by the policy)


@dataclass
class Decided:
    by_id: int | None
    by_name: str
    at: datetime
    comment: str = ""


@dataclass
class Held:
    """A decision waiting out its undo period: it takes effect at `until` unless undone first."""

    action: Action
    made_at: datetime
    until: datetime
    stage_version: int


@dataclass
class RequestState:
    """Everything the workflow knows; the query returns it and continue-as-new carries it."""

    request_id: str
    requester_id: int
    requester_name: str
    policy: Policy
    content: Content
    status: RequestStatus = RequestStatus.SUBMITTED
    revision: int = 1
    stage: StageState | None = None
    closed_stages: list[ClosedStage] = field(default_factory=list)
    participant_ids: list[int] = field(default_factory=list)  # everyone ever assigned
    decided: Decided | None = None
    timeline: list[TimelineEntry] = field(default_factory=list)
    timeline_dropped: int = 0  # oldest entries dropped from memory; the database keeps them all
    seq: int = 0
    stage_versions: int = 0
    # The last actions applied, with their answers: a repeat (a retried signal, a double click,
    # even after continue-as-new) is answered again instead of applied again.
    recent_action_ids: list[str] = field(default_factory=list)
    recent_results: list[ActionResult] = field(default_factory=list)
    runs: int = 1
    # Effects not yet carried out when the workflow continued as new; the next run does them.
    unsent_events: list[TimelineEntry] = field(default_factory=list)
    unsent_participants: list[Assignee] = field(default_factory=list)
    unsent_notifications: list[NotificationInput] = field(default_factory=list)
    # Decisions made and not yet in effect, oldest first: at most one per person.
    held: list[Held] = field(default_factory=list)

    def pending(self) -> list[Assignee]:
        """Who still has to act in the current stage."""
        if self.status != RequestStatus.IN_REVIEW or self.stage is None:
            return []
        voted = {v.user_id for v in self.stage.approvals}
        return [a for a in self.stage.assignees if a.user_id not in voted]


# --- Messages -----------------------------------------------------------------------------


@dataclass
class Action:
    """One person's action on a request, sent as a signal or a validated update."""

    kind: ActionKind
    actor_id: int
    actor_name: str
    comment: str = ""
    action_id: str = ""  # idempotency: the same action sent twice counts once
    delegate_id: int | None = None
    delegate_name: str = ""
    extend_seconds: int = 0
    content: Content | None = None  # for RESUBMIT
    as_staff: bool = False  # the web sets it for staff, who alone may cancel
    target_id: str = ""  # for UNDO: the action id of the held decision it takes back
    # For APPROVE of an agent action: the version the approver saw; with `content`, approved with
    # edits (the content names the edited version).
    action_sha256: str = ""


@dataclass
class ActionResult:
    status: RequestStatus
    message: str
    stage: str = ""
    seq: int = 0  # the last event the action recorded: the answer waits until it is projected
    undo_until: datetime | None = None  # a held decision: it takes effect then, unless undone


# --- Activity inputs ----------------------------------------------------------------------


@dataclass
class AssignInput:
    request_id: str
    requester_id: int
    user_ids: list[int]
    group_ids: list[int]
    level: int = 0
    exclude_ids: list[int] = field(default_factory=list)  # never these (earlier stages' approvers)


@dataclass
class Projection:
    """The workflow's state after a change, for the read model; `seq` orders projections."""

    request_id: str
    seq: int
    status: RequestStatus
    revision: int
    content: Content | None  # None: the revision's content, as projected before
    stage_name: str
    stage_number: int
    stage_count: int
    deadline: datetime | None
    pending: list[Assignee]
    new_participants: list[Assignee]
    events: list[TimelineEntry]
    decided: Decided | None = None
    stage_version: int = 0
    # The workflow's state as of `seq`, without its timeline and answers: the read model keeps it,
    # so that the web weighs an action (workflows.rules) on the same facts as the workflow.
    state: RequestState | None = None
    # The emails these events call for, sent by the same activity once the projection has
    # committed; it answers with the idempotency keys of those it could not send.
    notifications: list[NotificationInput] = field(default_factory=list)


@dataclass
class NotificationInput:
    request_id: str
    kind: NotificationKind
    recipient_ids: list[int]
    # Stable across activity retries and workflow replays: one email per key and recipient.
    idempotency_key: str
    comment: str = ""
    actor_name: str = ""


# --- Fulfilment ---------------------------------------------------------------------------


class FulfilmentStatus(StrEnum):
    RUNNING = "running"
    FULFILLED = "fulfilled"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"

    @property
    def label(self) -> str:
        return FULFILMENT_LABELS[self]


FULFILMENT_LABELS = {
    FulfilmentStatus.RUNNING: "Being fulfilled",
    FulfilmentStatus.FULFILLED: "Fulfilled",
    FulfilmentStatus.ROLLING_BACK: "Fulfilment failed — rolling back",
    FulfilmentStatus.ROLLED_BACK: "Fulfilment failed — rolled back",
}


class StepStatus(StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    UNDOING = "undoing"
    UNDO_FAILING = "undo_failing"  # its compensation keeps failing: staff see it, it is tried again
    UNDONE = "undone"


@dataclass
class FulfilmentInput:
    request_id: str
    fulfilment: Fulfilment
    attempt: int = 1
    # Its events follow the request's: numbered from here on, so that each is recorded once.
    base_seq: int = 0
    # A retry by staff: who, and what they said was fixed (for the record).
    by_name: str = ""
    reason: str = ""


@dataclass
class StepInput:
    """One step (or its compensation) of a request's fulfilment; `key` makes it happen once."""

    request_id: str
    attempt: int
    key: str


@dataclass
class StepState:
    name: str
    label: str
    status: StepStatus = StepStatus.WAITING
    note: str = ""  # what it did ("Reserved 1,200.00"), or why it failed


@dataclass
class FulfilmentReport:
    """The fulfilment's progress, for the read model: `seq` orders reports; `event` goes into the
    request's timeline; `notification` (its recipients are the requester and the approvers, as
    the read model knows them) is sent once the report has committed."""

    request_id: str
    attempt: int
    seq: int
    status: FulfilmentStatus
    steps: list[StepState]
    event: TimelineEntry | None = None
    failed_step: str = ""
    reason: str = ""
    notification: NotificationInput | None = None


# --- Access grants ------------------------------------------------------------------------


class GrantStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


class GrantEventKind(StrEnum):
    GRANTED = "granted"
    REMINDED = "reminded"
    EXTENSION_ASKED = "extension_asked"
    EXTENDED = "extended"
    EXTENSION_REFUSED = "extension_refused"
    REVOKED = "revoked"
    EXPIRED = "expired"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


class GrantActionKind(StrEnum):
    EXTEND = "extend"  # the holder asks for more time
    APPROVE = "approve"  # an approver of the resource grants the extension asked for
    REFUSE = "refuse"  # ... or refuses it
    REVOKE = "revoke"  # the holder, or staff, end the access now


@dataclass
class GrantInfo:
    """The access as it was granted, and who may approve an extension of it."""

    holder_id: int
    holder_name: str
    resource: str
    role: str
    ends_at: datetime
    approver_ids: list[int] = field(default_factory=list)
    max_days: int = 365  # the longest extension one may ask for
    # The period granted: the workflow, whose timer ends it, counts it from when it starts
    # (`ends_at` is then its own); 0: `ends_at` as given.
    days: int = 0


@dataclass
class Extension:
    """An extension asked for and not decided yet: refused if nobody decides by `deadline`."""

    action_id: str
    days: int
    reason: str
    asked_at: datetime
    deadline: datetime


@dataclass
class GrantState:
    request_id: str
    info: GrantInfo
    status: GrantStatus = GrantStatus.ACTIVE
    since: datetime | None = None  # granted, or last extended: reminders before this are not due
    started_at: datetime | None = None  # when the access began, by the workflow's clock
    extension: Extension | None = None
    extensions: int = 0
    reminded: list[str] = field(default_factory=list)  # for the current end only
    seq: int = 0
    recent_action_ids: list[str] = field(default_factory=list)
    runs: int = 1


@dataclass
class GrantInput:
    request_id: str
    history_limit: int = 2000
    carried: GrantState | None = None


@dataclass
class GrantAction:
    kind: GrantActionKind
    actor_id: int
    actor_name: str
    action_id: str
    days: int = 0  # for EXTEND
    reason: str = ""
    as_staff: bool = False  # staff may revoke anyone's access


@dataclass
class GrantEvent:
    seq: int
    at: datetime
    kind: GrantEventKind
    actor_id: int | None = None
    actor_name: str = ""
    detail: str = ""


@dataclass
class GrantReport:
    """The grant's state after a change, for the read model; `seq` orders reports."""

    request_id: str
    seq: int
    status: GrantStatus
    ends_at: datetime
    extensions: int
    event: GrantEvent
    extension: Extension | None = None
    notification: NotificationInput | None = None
    approver_ids: list[int] = field(default_factory=list)  # who may decide an extension
    starts_at: datetime | None = None


@dataclass
class GrantEnd:
    """End the access, at the access endpoint too: revoked by someone, or its period over."""

    request_id: str
    status: GrantStatus
    by_id: int | None = None
    by_name: str = ""
    reason: str = ""
    at: datetime | None = None  # when it ended, by the workflow's clock


# --- Access-review campaigns ----------------------------------------------------------------


class EndRule(StrEnum):
    """What a campaign does at its deadline with the access nobody reviewed."""

    REVOKE = "revoke"
    KEEP = "keep"


class CampaignStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class ReviewOutcome(StrEnum):
    KEPT = "kept"
    REVOKED = "revoked"
    ENDED = "ended"  # the access ended otherwise (expired, revoked early) before the review did
    CANCELLED = "cancelled"


class DigestKind(StrEnum):
    ASSIGNED = "assigned"  # your reviews are waiting
    REMINDER = "reminder"  # still waiting
    ESCALATED = "escalated"  # to each reviewer's manager: these are overdue under you


@dataclass
class CampaignPlan:
    """What a campaign's workflow needs of it, read once as it opens: how many reviews, and when
    what happens. Durations in seconds."""

    total: int
    opened_at: datetime
    deadline: datetime
    end_rule: EndRule
    remind_every: int = 0  # 0: no reminders
    escalate_after: int = 0  # from the opening; 0: no escalation


@dataclass
class CampaignProgress:
    """What a campaign carries from one run to the next: counts and a cursor, nothing per item."""

    cursor: int = 0  # the last grant (by id) whose review was started
    started: int = 0
    kept: int = 0
    revoked: int = 0
    ended: int = 0
    by_rule: int = 0  # of those kept or revoked, how many by the end rule
    digests: int = 0  # digest rounds sent: the assignment's, then each reminder's
    digested_at: datetime | None = None  # when the last of them was sent
    escalated: bool = False
    runs: int = 1
    seq: int = 0  # the last report recorded

    @property
    def done(self) -> int:
        return self.kept + self.revoked + self.ended


@dataclass
class CampaignInput:
    campaign_id: str
    batch_size: int = 100  # reviews started together
    reviews_per_run: int = 1000  # at most this many children in one run of the campaign
    history_limit: int = 4000
    plan: CampaignPlan | None = None
    progress: CampaignProgress | None = None
    cancelled_by: str = ""  # carried too, should a cancel arrive as the run continues as new


@dataclass
class ReviewPage:
    """Reviews to start: the grants after the cursor, in order, with their reviewers."""

    campaign_id: str
    after: int
    limit: int


@dataclass
class ReviewInput:
    campaign_id: str
    grant_id: int
    request_id: str  # the access request whose grant's workflow a revoke goes through
    reviewer_id: int
    deadline: datetime
    end_rule: EndRule
    campaign_name: str = ""
    manager_id: int | None = None  # the reviewer's manager, who may decide it once escalated
    escalate_at: datetime | None = None


@dataclass
class ReviewDecision:
    """A reviewer keeps or revokes one grant (a validated update of its review)."""

    keep: bool
    actor_id: int
    actor_name: str
    action_id: str
    comment: str = ""
    as_staff: bool = False  # staff may decide any review


@dataclass
class ReviewRecord:
    """A review's decision or outcome, for the read model. `final`: the review is over."""

    campaign_id: str
    grant_id: int
    outcome: ReviewOutcome
    final: bool
    by_rule: bool = False
    actor_id: int | None = None
    actor_name: str = ""
    comment: str = ""
    at: datetime | None = None


@dataclass
class ReviewRevoke:
    """Revoke a reviewed grant through the grant's own workflow; once per review."""

    campaign_id: str
    request_id: str
    action_id: str
    actor_id: int | None
    actor_name: str
    reason: str


@dataclass
class ReviewReport:
    """A review's outcome, as it reports it to its campaign."""

    grant_id: int
    outcome: ReviewOutcome
    by_rule: bool = False


@dataclass
class CampaignReport:
    """Where a campaign stands, for the read model; `seq` orders reports."""

    campaign_id: str
    seq: int
    status: CampaignStatus
    progress: CampaignProgress
    at: datetime | None = None
    cancelled_by: str = ""


@dataclass
class DigestRound:
    campaign_id: str
    kind: DigestKind
    round: int


@dataclass
class ReviewsClose:
    """Close a cancelled campaign's open reviews: those started (the grants up to the cursor) by
    a signal to each, the rest in the read model alone."""

    campaign_id: str
    cursor: int


@dataclass
class CampaignCancel:
    actor_name: str
    reason: str = ""


# --- Webhook deliveries ---------------------------------------------------------------------


@dataclass
class WebhookDeliveryInput:
    """One round of delivering one event to one subscriber, tried until `retry_seconds` after
    its start; the event, the subscriber and the signature are read by the activity."""

    delivery_id: int
    round: int = 1
    retry_seconds: int = 24 * 60 * 60


@dataclass
class WebhookFailure:
    """A round that gave up: its delivery is failing, for staff to see and redeliver."""

    delivery_id: int
    round: int
    reason: str
