from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from workflows import codec
from workflows.policy import condition_problem
from workflows.rules import MAX_DETAILS, MAX_TITLE, MAX_UNDO_SECONDS, NOUNS
from workflows.types import (
    FINAL_STATUSES,
    RISKS,
    ActionKind,
    Content,
    EventKind,
    Exhausted,
    Extension,
    FulfilmentStatus,
    Operator,
    RequestStatus,
    Rule,
    campaign_id_for,
    webhook_id_for,
    workflow_id_for,
)
from workflows.types import Fulfilment as FulfilmentKind

STATUS_CHOICES = [(s.value, s.label) for s in RequestStatus]
FULFILMENT_CHOICES = [(s.value, s.label) for s in FulfilmentStatus]
OPEN_STATUSES = [s.value for s in RequestStatus if s not in FINAL_STATUSES]
# An action sent and not confirmed in this time is told as such (see PendingAction).
PENDING_CONFIRMED_WITHIN = timedelta(minutes=2)


class RequestType(models.Model):
    """What can be asked for; its stages (in order) are the approval policy."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(unique=True)
    description = models.TextField(blank=True)
    allow_auto_approve = models.BooleanField(
        default=False, help_text="Lets a stage approve by itself when its last escalation level runs out."
    )
    distinct_approvers = models.BooleanField(
        "Distinct approvers",
        default=True,
        help_text=(
            "Separation of duties: nobody approves two stages of one request, nor takes a later "
            "stage by delegation after approving an earlier one."
        ),
    )
    undo_seconds = models.PositiveIntegerField(
        "Undo period (seconds)",
        default=10,
        validators=[MaxValueValidator(MAX_UNDO_SECONDS)],
        help_text=(
            "A decision takes effect this many seconds after it is made, and its maker can undo it "
            "until then; nothing is emailed and no next stage starts meanwhile. 0 turns undo off."
        ),
    )
    fulfilment = models.CharField(
        max_length=20,
        blank=True,
        default=FulfilmentKind.NONE.value,
        choices=[
            (FulfilmentKind.NONE.value, "Nothing"),
            (
                FulfilmentKind.PURCHASE.value,
                "Purchase: reserve the budget, then place the order",
            ),
        ],
        help_text=(
            "What an approval sets in motion. Each step is undone in reverse order if a later one "
            "fails. A purchase asks the requester for an amount and a cost centre."
        ),
    )
    for_agents = models.BooleanField(
        "Agent actions",
        default=False,
        help_text=(
            "Requests come from software agents through the API, each naming one exact action (a "
            "tool and its arguments): an approval holds for those arguments only."
        ),
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_purchase(self) -> bool:
        return self.fulfilment == FulfilmentKind.PURCHASE

    @property
    def is_access(self) -> bool:
        return self.fulfilment == FulfilmentKind.ACCESS


class Stage(models.Model):
    """One step of a request type's policy: who approves, by which rule, by when."""

    request_type = models.ForeignKey(RequestType, on_delete=models.CASCADE, related_name="stages")
    order = models.PositiveSmallIntegerField(default=1)
    name = models.CharField(max_length=100)
    approver_users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    approver_groups = models.ManyToManyField(Group, blank=True, related_name="+")
    rule = models.CharField(
        max_length=10,
        choices=[(Rule.ANY.value, "Any one"), (Rule.ALL.value, "All"), (Rule.N_OF_M.value, "N of M")],
        default=Rule.ANY.value,
    )
    required_approvals = models.PositiveSmallIntegerField(default=1, help_text="N, for the “N of M” rule.")
    deadline = models.DurationField(default=timedelta(days=2))
    reminder_interval = models.DurationField(
        null=True, blank=True, help_text="Remind those who have not acted this often; empty for no reminders."
    )
    on_exhausted = models.CharField(
        max_length=10,
        choices=[
            (Exhausted.EXPIRE.value, "Expire the request"),
            (Exhausted.REJECT.value, "Reject the request"),
            (Exhausted.APPROVE.value, "Approve the stage (if the request type allows it)"),
        ],
        default=Exhausted.EXPIRE.value,
        help_text="What happens when the deadline of the last escalation level passes.",
    )
    condition_field = models.CharField(
        max_length=20,
        blank=True,
        choices=[("amount", "Amount"), ("risk", "Risk (agent actions)"), ("tool", "Tool (agent actions)")],
        help_text="Apply the stage only when…",
    )
    condition_operator = models.CharField(
        max_length=3,
        blank=True,
        choices=[
            (Operator.GT.value, ">"),
            (Operator.GTE.value, "≥"),
            (Operator.LT.value, "<"),
            (Operator.LTE.value, "≤"),
            (Operator.EQ.value, "="),
            (Operator.NE.value, "≠"),
        ],
    )
    condition_value = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, help_text="For the amount."
    )
    condition_text = models.CharField(
        "Condition value (risk or tools)",
        max_length=200,
        blank=True,
        help_text=(
            f"For the risk: one of {', '.join(RISKS)}, compared in that order. For the tool: names "
            "separated by commas, each may end in * (“db.*”); = means one of them, ≠ none of them."
        ),
    )
    auto_approve_groups = models.ManyToManyField(
        Group,
        blank=True,
        related_name="+",
        verbose_name="Trusted requesters",
        help_text=(
            "A request from a member of these groups (a trusted agent's account, say) is approved at "
            "this stage by itself, where its condition holds; the timeline says so."
        ),
    )

    class Meta:
        ordering = ["request_type", "order"]
        constraints = [models.UniqueConstraint(fields=["request_type", "order"], name="stage_order_unique")]

    def __str__(self) -> str:
        return f"{self.request_type}: {self.order}. {self.name}"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.deadline is not None and self.deadline <= timedelta(0):
            errors["deadline"] = "The deadline must be after the stage starts."
        if self.reminder_interval is not None and self.reminder_interval < timedelta(minutes=1):
            errors["reminder_interval"] = "Remind at most once a minute."
        if self.rule == Rule.N_OF_M and self.required_approvals < 1:
            errors["required_approvals"] = "N must be at least 1."
        value = self.condition_value if self.condition_field == "amount" else self.condition_text
        condition = [self.condition_field, self.condition_operator, value]
        field = "condition_value" if self.condition_field in ("amount", "") else "condition_text"
        if any(v not in ("", None) for v in condition) and not all(v not in ("", None) for v in condition):
            errors[field] = "A condition needs a field, an operator and a value (or none of them)."
        elif self.condition_field and (
            problem := condition_problem(self.condition_field, self.condition_operator, str(value))
        ):
            errors[field] = problem
        if (
            self.on_exhausted == Exhausted.APPROVE
            and self.request_type_id
            and not self.request_type.allow_auto_approve
        ):
            errors["on_exhausted"] = "This request type does not allow stages to approve by themselves."
        if errors:
            raise ValidationError(errors)


class EscalationLevel(models.Model):
    """Added to a stage when its deadline (or the previous level's) passes."""

    stage = models.ForeignKey(Stage, on_delete=models.CASCADE, related_name="escalation_levels")
    order = models.PositiveSmallIntegerField(default=1)
    after = models.DurationField(
        default=timedelta(days=1), help_text="How long this level has before the next level (or the outcome)."
    )
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    groups = models.ManyToManyField(Group, blank=True, related_name="+")

    class Meta:
        ordering = ["stage", "order"]
        constraints = [models.UniqueConstraint(fields=["stage", "order"], name="escalation_order_unique")]

    def __str__(self) -> str:
        return f"{self.stage} · escalation {self.order}"

    def clean(self) -> None:
        if self.after is not None and self.after <= timedelta(0):
            raise ValidationError({"after": "A level needs some time before the next step."})


class Delegation(models.Model):
    """Out of office: while it is active, `delegate` is assigned wherever `user` would be."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="delegations")
    delegate = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-starts_at"]
        indexes = [models.Index(fields=["user", "starts_at", "ends_at"])]

    def __str__(self) -> str:
        return f"{self.delegate} for {self.user}"

    def clean(self) -> None:
        if self.user_id and self.user_id == self.delegate_id:
            raise ValidationError({"delegate": "Choose someone else to act for you."})
        if self.ends_at and self.starts_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "The delegation must end after it starts."})


class ApprovalRequest(models.Model):
    """One request and the read model of its workflow's state.

    The workflow owns the state; activities project each change here, guarded by `version`
    so that a retried or late projection never overwrites newer state.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    request_type = models.ForeignKey(RequestType, on_delete=models.PROTECT, related_name="requests")
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="requests")
    title = models.CharField(max_length=MAX_TITLE)
    details = models.TextField(blank=True, max_length=MAX_DETAILS)
    amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    cost_centre = models.ForeignKey(
        "CostCentre", null=True, blank=True, on_delete=models.PROTECT, related_name="requests"
    )
    # For access requests: what, as whom, for how long.
    resource = models.ForeignKey(
        "Resource", null=True, blank=True, on_delete=models.PROTECT, related_name="requests"
    )
    access_role = models.CharField("Role", max_length=50, blank=True)
    access_days = models.PositiveSmallIntegerField("Period (days)", null=True, blank=True)
    # For agent actions: who proposes what, how risky they say it is, and the hash of the version
    # now under review (ActionArguments keeps each version's arguments).
    agent_name = models.CharField("Agent", max_length=100, blank=True)
    tool = models.CharField(max_length=100, blank=True)
    risk = models.CharField(max_length=10, blank=True, choices=[(r, r.capitalize()) for r in RISKS])
    action_sha256 = models.CharField("Action SHA-256", max_length=64, blank=True)
    revision = models.PositiveIntegerField(default=1)
    # The policy as it was on submission (workflows.types.Policy): the workflow starts from this
    # even if Temporal was away and the request type changed meanwhile.
    policy = models.JSONField(default=dict, editable=False)

    status = models.CharField(max_length=20, choices=STATUS_CHOICES, default=RequestStatus.SUBMITTED.value)
    version = models.PositiveIntegerField(default=0)
    stage_name = models.CharField(max_length=100, blank=True)
    stage_version = models.PositiveIntegerField(default=0, help_text="Bumps whenever a stage (re)starts.")
    stage_number = models.PositiveSmallIntegerField(default=0)
    stage_count = models.PositiveSmallIntegerField(default=0)
    deadline = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_by_name = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_comment = models.TextField(blank=True)
    # Submission to approval or rejection, in seconds: what the dashboard's percentiles read.
    decision_seconds = models.PositiveBigIntegerField(null=True, blank=True, editable=False)
    # Why the request's workflow stopped for good (failed, terminated, timed out), while it has;
    # noted by the worker's watch, cleared when it runs again.
    workflow_stopped = models.CharField(max_length=500, blank=True, editable=False)
    # Where the latest attempt at its fulfilment stands (blank: none), for lists and badges.
    fulfilment = models.CharField(max_length=20, blank=True, choices=FULFILMENT_CHOICES, editable=False)

    # Transactional outbox: null until Temporal has accepted the workflow start.
    workflow_started_at = models.DateTimeField(null=True, blank=True)
    start_attempts = models.PositiveIntegerField(default=0)
    last_start_error = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["requester", "-created_at"]),
            models.Index(fields=["status", "-created_at"]),
            models.Index(
                fields=["created_at"],
                name="request_outbox_pending",
                condition=models.Q(workflow_started_at__isnull=True),
            ),
            models.Index(fields=["created_at"], name="request_created"),
            models.Index(fields=["decided_at"], name="request_decided"),
            models.Index(
                fields=["deadline"], name="request_in_review_deadline", condition=models.Q(status="in_review")
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("request_detail", args=[self.public_id])

    @property
    def workflow_id(self) -> str:
        return workflow_id_for(self.public_id)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_overdue(self) -> bool:
        return (
            self.status == RequestStatus.IN_REVIEW
            and self.deadline is not None
            and self.deadline < timezone.now()
        )

    @property
    def is_agent_action(self) -> bool:
        return bool(self.action_sha256)

    def content(self) -> Content:
        """Its content as the workflow carries it."""
        return Content(
            title=self.title,
            details=self.details,
            amount=None if self.amount is None else str(self.amount),
            tool=self.tool,
            risk=self.risk,
            action_sha256=self.action_sha256,
        )


class WorkflowSnapshot(models.Model):
    """The request's workflow state as of the request's `version` (a workflows.types.RequestState
    without its timeline, policy and content, which the request keeps itself): what the rules weigh
    and the pages show, exactly as the workflow knew it. A table of its own, so that the scans
    behind lists and figures never read it."""

    request = models.OneToOneField(
        ApprovalRequest, primary_key=True, on_delete=models.CASCADE, related_name="workflow_snapshot"
    )
    state = models.JSONField()

    def __str__(self) -> str:
        return f"{self.request} at {self.state.get('seq')}"


class RequestRevision(models.Model):
    """The request's content as each revision was submitted, as approvers saw it."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    title = models.CharField(max_length=MAX_TITLE)
    details = models.TextField(blank=True, max_length=MAX_DETAILS)
    amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    action_sha256 = models.CharField(max_length=64, blank=True)  # an agent action's version
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["request", "number"]
        constraints = [models.UniqueConstraint(fields=["request", "number"], name="revision_once")]

    def __str__(self) -> str:
        return f"{self.request} r{self.number}"


class ActionArguments(models.Model):
    """One version of an agent action, by its hash: the canonical JSON (RFC 8785) of its tool and
    arguments. Kept once per request and hash, whoever proposed it (the agent on submission, or
    a reviewer approving with edits)."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="action_versions")
    sha256 = models.CharField(max_length=64)
    canonical = models.TextField()
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["request", "sha256"], name="action_version_once")]

    def __str__(self) -> str:
        return f"{self.request} {self.sha256[:12]}"


class ApprovalTokenUse(models.Model):
    """An approval token, presented and accepted: each approval's token is accepted once."""

    request = models.OneToOneField(ApprovalRequest, on_delete=models.CASCADE, related_name="token_use")
    sha256 = models.CharField(max_length=64)
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    used_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.request} token used {self.used_at:%Y-%m-%d %H:%M}"


class Participant(models.Model):
    """Everyone ever assigned to a request; `pending` marks who still has to act now."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="participants")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="participations"
    )
    pending = models.BooleanField(default=False)
    # The request's deadline while this person is pending, so the inbox sorts on one index.
    deadline = models.DateTimeField(null=True, blank=True)
    level = models.PositiveSmallIntegerField(default=0, help_text="0: stage approver; k: escalation level k")
    acting_for = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["request", "user"], name="participant_once")]
        # In the inbox's own orders, ties broken by request: a page reads its rows off the index
        # and joins only those, however many wait.
        indexes = [
            models.Index(fields=["user", "pending", "deadline", "request"], name="inbox_by_deadline"),
            models.Index(fields=["user", "pending", "-added_at", "-request"], name="inbox_by_added"),
            models.Index(
                fields=["request"],
                name="participant_escalated",
                condition=models.Q(pending=True, level__gt=0),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} on {self.request}"


class StageRun(models.Model):
    """One run of a stage: from when its approvers were asked to how it ended. A stage that
    starts again after a resubmission is a new run. Written by the projection from the events;
    the read model behind the times to decision per stage."""

    class Outcome(models.TextChoices):
        APPROVED = "stage_approved", "Approved"
        REJECTED = "rejected", "Rejected"
        CHANGES_REQUESTED = "changes_requested", "Changes requested"
        EXPIRED = "expired", "Expired"
        WITHDRAWN = "withdrawn", "Withdrawn"
        CANCELLED = "cancelled", "Cancelled"

    DECISIONS = (Outcome.APPROVED, Outcome.REJECTED, Outcome.CHANGES_REQUESTED)

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="stage_runs")
    # The request's, copied so that the figures per stage read this table alone.
    request_type = models.ForeignKey(RequestType, on_delete=models.PROTECT, related_name="+")
    stage_name = models.CharField(max_length=100)
    stage_version = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    seconds = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["request", "started_at", "pk"]
        constraints = [models.UniqueConstraint(fields=["request", "stage_version"], name="stage_run_once")]
        indexes = [models.Index(fields=["closed_at"], name="stage_run_closed")]

    def __str__(self) -> str:
        return f"{self.request}: {self.stage_name} (run {self.stage_version})"


class Assignment(models.Model):
    """One person asked to act on one run of a stage: when they were asked, when it ended for
    them, and how. The read model behind response times and approver load; written by the
    projection from the workflow's pending list (a stage that starts again is a new run)."""

    class Outcome(models.TextChoices):
        APPROVED = "approval", "Approved"
        REJECTED = "rejected", "Rejected"
        CHANGES_REQUESTED = "changes_requested", "Requested changes"
        DELEGATED = "delegated", "Delegated"
        NOT_NEEDED = "", "Not needed"  # the stage ended without their answer

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="assignments")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    stage_name = models.CharField(max_length=100)
    stage_version = models.PositiveIntegerField()
    level = models.PositiveSmallIntegerField(default=0)
    asked_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    seconds = models.PositiveBigIntegerField(null=True, blank=True, help_text="From asked to closed.")

    class Meta:
        ordering = ["request", "asked_at", "pk"]
        constraints = [
            # One open at a time: someone asked again in the same run (delegated to, then back)
            # gets a new assignment once the first is closed.
            models.UniqueConstraint(
                fields=["request", "user", "stage_version"],
                condition=models.Q(closed_at__isnull=True),
                name="assignment_open_once",
            )
        ]
        indexes = [models.Index(fields=["closed_at", "user"], name="assignment_closed")]

    def __str__(self) -> str:
        return f"{self.user} on {self.request} ({self.stage_name})"

    @property
    def answered(self) -> bool:
        return self.closed_at is not None and self.outcome != ""


class RequestEvent(models.Model):
    """The audit trail: one row per workflow event, numbered by the workflow. Never edited."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    kind = models.CharField(max_length=30)  # an EventKind (no choices: a new kind needs no migration)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    comment = models.TextField(blank=True)
    detail = models.CharField(max_length=500, blank=True)
    stage = models.CharField(max_length=100, blank=True)
    revision = models.PositiveIntegerField(default=1)
    occurred_at = models.DateTimeField()
    action_id = models.CharField(max_length=100, blank=True)  # the action that recorded it, if any

    # For a decision: the request as the person saw it when they decided (selectors.request_timeline).
    seen: RequestRevision | None = None

    class Meta:
        ordering = ["request", "seq"]
        constraints = [models.UniqueConstraint(fields=["request", "seq"], name="event_once_per_seq")]
        indexes = [models.Index(fields=["occurred_at"], name="event_occurred")]

    def __str__(self) -> str:
        return f"{self.request} #{self.seq} {self.kind}"

    @property
    def label(self) -> str:
        try:
            return EventKind(self.kind).label
        except ValueError:  # a kind this code does not know (yet)
            return self.kind

    @property
    def note(self) -> str:
        """The detail as the timeline shows it after "<label> by <actor>": without a "by <actor>"
        that only says again who acted (as a stage's approval recorded it)."""
        return "" if self.actor_name and self.detail == f"by {self.actor_name}" else self.detail


class PendingAction(models.Model):
    """An action sent to a request's workflow whose outcome is not known yet: no answer came in
    time, or it went as a signal (an email link), which Temporal takes for the worker to apply
    later. Its sender sees it as pending until the projection brings an event it recorded (or
    the request ends)."""

    class Via(models.TextChoices):
        PAGE = "page", "a page of the app"
        BULK = "bulk", "a bulk action"
        EMAIL = "email", "an email link"
        API = "api", "the API"

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="pending_actions")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=30)  # an ActionKind
    action_id = models.CharField(max_length=100, unique=True)
    via = models.CharField(max_length=10, choices=Via.choices)
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["sent_at"]
        indexes = [models.Index(fields=["actor", "request"], name="pending_action_of")]

    def __str__(self) -> str:
        return f"{self.kind} by {self.actor} on {self.request}, pending"

    @property
    def noun(self) -> str:
        return NOUNS[ActionKind(self.kind)] if self.kind in set(ActionKind) else self.kind

    @property
    def overdue(self) -> bool:
        """Long unconfirmed: the workflow may have refused it (the request moved on meanwhile),
        or Temporal may never have had it."""
        return timezone.now() - self.sent_at > PENDING_CONFIRMED_WITHIN


class EmailLinkUse(models.Model):
    """An approve/reject link from an email that has been used: each link works once."""

    link_id = models.UUIDField(unique=True)
    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="email_link_uses")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    action = models.CharField(max_length=20)
    used_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.action} link of {self.user} on {self.request}"


class OutboundEmail(models.Model):
    """Every email the system sends, keyed so that a retried activity never sends twice.

    Also the in-app mailbox that staff read in the embedded default.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    idempotency_key = models.CharField(max_length=200, unique=True)
    request = models.ForeignKey(
        ApprovalRequest, null=True, blank=True, on_delete=models.CASCADE, related_name="emails"
    )
    kind = models.CharField(max_length=30)
    to = models.EmailField()
    subject = models.CharField(max_length=250)
    body_text = models.TextField()
    body_html = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.subject} → {self.to}"


class StaffAction(models.Model):
    """The audit trail of what staff did to a request's workflow from the dashboard: cancel it,
    or retry it (start it, or resume a failed run). Never edited."""

    class Kind(models.TextChoices):
        CANCEL = "cancel", "Cancel"
        RETRY = "retry", "Retry"
        FULFIL = "fulfil", "Retry fulfilment"

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="staff_actions")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    reason = models.TextField(blank=True)
    ok = models.BooleanField(default=False)
    outcome = models.TextField(help_text="What happened, as the staff member was told.")
    workflow_status = models.CharField(
        max_length=20, blank=True, help_text="The run's status in Temporal before."
    )
    run_id = models.CharField(max_length=64, blank=True, help_text="The run acted on (or started).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.request} by {self.actor}"


class ActivityFailure(models.Model):
    """A step (activity) of a request's workflow that keeps failing: Temporal retries it, or gave
    up when retrying cannot help. Noted by the activity itself on each failed attempt and cleared
    when it succeeds, so that staff see it on the dashboard while Temporal keeps retrying."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="activity_failures")
    activity = models.CharField(max_length=60)
    attempt = models.PositiveIntegerField(help_text="The attempt that failed last.")
    error = models.TextField()
    retrying = models.BooleanField(
        default=True, help_text="False: retrying cannot help, so Temporal stopped."
    )
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["request", "activity"], name="one_failure_per_step")]

    def __str__(self) -> str:
        return f"{self.activity} of {self.request}: attempt {self.attempt}"


class CostCentre(models.Model):
    """Where a purchase's money comes from: its budget is the balance of its ledger."""

    code = models.SlugField(max_length=30, unique=True)
    name = models.CharField(max_length=100)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} · {self.name}"


class LedgerEntry(models.Model):
    """One movement of money between two accounts of a cost centre's budget, double-entry in one
    row: `amount` leaves `credit` and arrives in `debit`, so every account's balance is what came
    in less what went out, and the accounts together always sum to nothing. Never edited nor
    deleted: a movement is undone by another in the other direction. `key` makes each movement
    happen once, however often it is asked for (a request and its step, say)."""

    class Account(models.TextChoices):
        FUNDING = "funding", "Funding"  # outside the budget: where allocations come from
        AVAILABLE = "available", "Available"
        RESERVED = "reserved", "Reserved"  # held for an approved purchase

    cost_centre = models.ForeignKey(CostCentre, on_delete=models.PROTECT, related_name="entries")
    key = models.CharField(max_length=200, unique=True)
    debit = models.CharField(max_length=20, choices=Account.choices)
    credit = models.CharField(max_length=20, choices=Account.choices)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    request = models.ForeignKey(
        ApprovalRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    memo = models.CharField(max_length=200, blank=True)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["cost_centre", "created_at", "pk"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="ledger_amount_positive"),
            models.CheckConstraint(condition=~models.Q(debit=models.F("credit")), name="ledger_two_accounts"),
        ]

    def __str__(self) -> str:
        return f"{self.cost_centre.code}: {self.amount} {self.credit} → {self.debit}"


class PurchaseOrder(models.Model):
    """The order a purchase request's fulfilment places: at the endpoint PURCHASE_ORDER_URL names
    (`number` is its own), or, without one, here. One per key (the request and its step), so that
    placing it again (a retried activity) never places a second; cancelled, never deleted."""

    key = models.CharField(max_length=200, unique=True)
    request = models.ForeignKey(ApprovalRequest, on_delete=models.PROTECT, related_name="purchase_orders")
    number = models.CharField(max_length=100)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    external = models.BooleanField(default=False, help_text="Placed at PURCHASE_ORDER_URL.")
    created_at = models.DateTimeField(default=timezone.now)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.number} for {self.request}"


class Fulfilment(models.Model):
    """One attempt at what a request's approval set in motion, as its saga recorded it: each
    step's state, how it ended, and why it failed. `seq` orders the saga's reports, so that a late
    or repeated one never overwrites a newer."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="fulfilments")
    attempt = models.PositiveIntegerField()
    seq = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=FULFILMENT_CHOICES)
    steps = models.JSONField(default=list)  # [{name, label, status, note}]
    failed_step = models.CharField(max_length=100, blank=True)
    reason = models.TextField(blank=True)
    started_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["request", "-attempt"]
        constraints = [models.UniqueConstraint(fields=["request", "attempt"], name="fulfilment_attempt_once")]

    def __str__(self) -> str:
        return f"{self.request}: fulfilment {self.attempt} {self.status}"

    @property
    def steps_shown(self) -> list[dict[str, str]]:
        """The steps, each with its status as a person reads it."""
        ended = self.ended_at is not None

        def label(status: str) -> str:
            return "not run" if ended and status == "waiting" else status.replace("_", " ")

        return [s | {"status_label": label(s.get("status", ""))} for s in self.steps]

    @property
    def undo_failing(self) -> list[dict[str, str]]:
        """The steps whose undoing keeps failing: staff need to look."""
        return [s for s in self.steps if s.get("status") == "undo_failing"]


class Resource(models.Model):
    """Something people ask access to (a system, a shared drive), in the catalogue admins edit:
    the roles one may hold in it, and who approves an extension of someone's access."""

    code = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    roles = models.CharField(
        max_length=200, default="read", help_text="The roles one may ask for, separated by commas."
    )
    max_days = models.PositiveSmallIntegerField(
        "Longest period (days)", default=90, validators=[MaxValueValidator(365)]
    )
    approvers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="+", help_text="Who approves an extension."
    )
    approver_groups = models.ManyToManyField(Group, blank=True, related_name="+")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="resources_owned",
        help_text="Who answers for it: the reviewer of its access in campaigns that say so.",
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def role_list(self) -> list[str]:
        return [r.strip() for r in self.roles.split(",") if r.strip()]


class AccessGrant(models.Model):
    """Access granted by an approved access request: who holds what, as whom, until when. Made
    once per key by the request's fulfilment; its workflow (`grant-<request public id>`) ends it
    on time and records every change here. Never deleted."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"

    key = models.CharField(max_length=200, unique=True)
    request = models.OneToOneField(ApprovalRequest, on_delete=models.PROTECT, related_name="access_grant")
    holder = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="access_grants"
    )
    resource = models.ForeignKey(Resource, on_delete=models.PROTECT, related_name="grants")
    role = models.CharField(max_length=50)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    extensions = models.PositiveIntegerField(default=0)
    # An extension waiting for a decision (workflows.types.Extension), or null.
    extension = models.JSONField(null=True, blank=True)
    approver_ids = models.JSONField(default=list, blank=True, help_text="Who may decide an extension.")
    seq = models.PositiveIntegerField(default=0, help_text="The last change recorded.")
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by_name = models.CharField(max_length=150, blank=True)
    end_reason = models.TextField(blank=True)
    external = models.BooleanField(default=False, help_text="Granted at ACCESS_GRANT_URL.")

    class Meta:
        ordering = ["ends_at", "pk"]
        indexes = [models.Index(fields=["status", "ends_at"], name="grant_status_ends")]

    def __str__(self) -> str:
        return f"{self.holder} · {self.resource} ({self.role})"

    @property
    def pending_extension(self) -> Extension | None:
        """The extension waiting for a decision, as the grant's workflow recorded it."""
        return codec.decode(Extension, self.extension) if self.extension else None

    @property
    def extended_until(self) -> datetime | None:
        """The end the extension asked for would give."""
        extension = self.pending_extension
        return self.ends_at + timedelta(days=extension.days) if extension else None


class GrantEvent(models.Model):
    """The audit trail of one access: granted, reminded, extended or not, ended. Never edited."""

    grant = models.ForeignKey(AccessGrant, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    kind = models.CharField(max_length=30)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    detail = models.TextField(blank=True)
    occurred_at = models.DateTimeField()

    class Meta:
        ordering = ["grant", "seq"]
        constraints = [models.UniqueConstraint(fields=["grant", "seq"], name="grant_event_once_per_seq")]

    def __str__(self) -> str:
        return f"{self.grant} #{self.seq} {self.kind}"

    @property
    def label(self) -> str:
        return self.kind.replace("_", " ").capitalize()


class Manager(models.Model):
    """Whom a person reports to: the reviewer of their access in campaigns that say so, and
    where a reviewer's overdue reviews escalate."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="manager_line"
    )
    manager = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reports")

    def __str__(self) -> str:
        return f"{self.user} reports to {self.manager}"

    def clean(self) -> None:
        if self.user_id and self.user_id == self.manager_id:
            raise ValidationError({"manager": "Nobody reports to themselves."})


class Campaign(models.Model):
    """An access review: every grant it covers (by resource, role, or all active ones) goes in
    front of a reviewer, who keeps or revokes it by the deadline; the end rule decides the rest.
    Its workflow (`campaign-<public id>`) owns it and records its progress here; its reviews are
    fixed as it opens (CampaignItem)."""

    class Reviewer(models.TextChoices):
        MANAGER = "manager", "The holder's manager"
        OWNER = "owner", "The resource's owner"

    class EndRule(models.TextChoices):
        REVOKE = "revoke", "Revoke what nobody reviewed"
        KEEP = "keep", "Keep what nobody reviewed"

    class Status(models.TextChoices):
        STARTING = "starting", "Starting"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=150)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    resource = models.ForeignKey(
        Resource,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="campaigns",
        help_text="Only the access to this resource (all resources when empty).",
    )
    role = models.CharField(max_length=50, blank=True, help_text="Only access in this role (any when empty).")
    reviewer = models.CharField(max_length=10, choices=Reviewer.choices, default=Reviewer.MANAGER)
    deadline = models.DateTimeField()
    remind_every = models.DurationField(null=True, blank=True, help_text="Empty: no reminders.")
    escalate_after = models.DurationField(
        null=True, blank=True, help_text="From the start; empty: no escalation to managers."
    )
    end_rule = models.CharField(max_length=10, choices=EndRule.choices, default=EndRule.REVOKE)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.STARTING)
    # What its workflow last recorded (CampaignReport); `seq` orders its reports.
    seq = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    started = models.PositiveIntegerField(default=0, help_text="Reviews started so far.")
    runs = models.PositiveIntegerField(default=0, help_text="Runs of its workflow (it continues as new).")
    opened_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    cancelled_by_name = models.CharField(max_length=150, blank=True)
    cancel_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("campaign_report", args=[self.public_id])

    @property
    def workflow_id(self) -> str:
        return campaign_id_for(self.public_id)

    @property
    def is_open(self) -> bool:
        return self.status in (self.Status.STARTING, self.Status.RUNNING)


class CampaignItem(models.Model):
    """One grant under review in a campaign: its reviewer, and what became of it, as the
    review's workflow recorded it. Never deleted: it is the evidence an auditor asks for."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        KEPT = "kept", "Kept"
        REVOKING = "revoking", "Being revoked"
        REVOKED = "revoked", "Revoked"
        ENDED = "ended", "Ended before review"
        CANCELLED = "cancelled", "Cancelled"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="items")
    grant = models.ForeignKey(AccessGrant, on_delete=models.PROTECT, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    manager = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The reviewer's manager, who may decide it once escalated.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    by_rule = models.BooleanField(default=False, help_text="Decided by the campaign's end rule.")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_by_name = models.CharField(max_length=150, blank=True)
    comment = models.TextField(blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["campaign", "grant_id"]
        constraints = [models.UniqueConstraint(fields=["campaign", "grant"], name="one_review_per_grant")]
        indexes = [
            models.Index(fields=["reviewer", "status"], name="review_reviewer_status"),
            models.Index(fields=["manager", "status"], name="review_manager_status"),
            models.Index(fields=["campaign", "status"], name="review_campaign_status"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign}: {self.grant}"


class CampaignEvent(models.Model):
    """The audit trail of a campaign: started, cancelled (by whom, why), completed. Never edited."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    detail = models.TextField(blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["campaign", "occurred_at", "pk"]

    def __str__(self) -> str:
        return f"{self.campaign}: {self.kind}"


class ApiToken(models.Model):
    """A person's key to the integration API (/api/v1/): shown once when made, kept here only as
    its SHA-256 (a random 256-bit secret needs no slow hash), with what it may do (its scopes)
    and, if its owner said so, until when."""

    class Scope(models.TextChoices):
        READ = "read", "Read requests, the inbox and policies"
        CREATE = "create", "Create requests"
        DECIDE = "decide", "Decide and comment"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What it is for, to tell it from the others.")
    prefix = models.CharField(max_length=16, help_text="The token's first characters, to recognise it.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list, help_text="Which of read, create and decide it may do.")
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…) of {self.user}"

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())


class ApiTokenUse(models.Model):
    """One call made with a token, as it was answered. Never edited."""

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="uses")
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=300)
    status = models.PositiveSmallIntegerField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["token", "-at"], name="token_use_recent")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} → {self.status} with {self.token_id}"


class ApiIdempotency(models.Model):
    """The answer given to a create or a decision sent with an Idempotency-Key: the same key
    again, with the same body, gets the same answer; with another body, a refusal."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the operation and its body.")
    status = models.PositiveSmallIntegerField()
    body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_once")]

    def __str__(self) -> str:
        return f"{self.key} of {self.user}"


class WebhookSubscriber(models.Model):
    """An address outside that staff registered to hear of chosen events: each is POSTed to it,
    signed with its secret in the Standard Webhooks style (see services.webhooks)."""

    class Event(models.TextChoices):
        SUBMITTED = "request.submitted", "Submitted"
        STAGE_STARTED = "request.stage_started", "Stage started"
        DECIDED = "request.decided", "Decided (approved or rejected)"
        ESCALATED = "request.escalated", "Escalated"
        EXPIRED = "request.expired", "Expired"
        WITHDRAWN = "request.withdrawn", "Withdrawn"
        FULFILLED = "request.fulfilled", "Fulfilled"
        ROLLED_BACK = "request.rolled_back", "Fulfilment rolled back"
        GRANT_REVOKED = "grant.revoked", "Access revoked"

    url = models.URLField(max_length=500, help_text="Where the events are POSTed.")
    description = models.CharField(max_length=200, blank=True, help_text="Whose it is and what it does.")
    events = models.JSONField(default=list, help_text="The event types it hears of.")
    secret = models.CharField(max_length=100, editable=False, help_text="Signs every delivery.")
    is_active = models.BooleanField(default=True, help_text="Off: no new event goes to it.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["url", "pk"]

    def __str__(self) -> str:
        return self.url

    def get_absolute_url(self) -> str:
        return reverse("webhook_detail", args=[self.pk])

    @property
    def event_labels(self) -> list[str]:
        return [self.Event(e).label for e in self.events if e in self.Event.values]


class WebhookEvent(models.Model):
    """One event as it goes out, recorded once (by its source: a timeline event of a request, or
    of a grant) in the same transaction as what it tells of. Its id is the `webhook-id` every
    delivery of it carries, so a receiver can drop a duplicate."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(max_length=40, choices=WebhookSubscriber.Event.choices)
    source = models.CharField(max_length=100, unique=True, help_text="What it tells of, once.")
    request = models.ForeignKey(
        "ApprovalRequest", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    payload = models.JSONField(help_text="The body every delivery sends.")
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"

    @property
    def event_id(self) -> str:
        return f"evt_{self.public_id.hex}"


class WebhookDelivery(models.Model):
    """One event to one subscriber: its rounds (the first, and each redelivery), its attempts,
    and how it stands. Started by the worker's relay; a round gives up after a day of retries,
    and the delivery is then failing until a later round delivers it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to start"
        DELIVERING = "delivering", "Delivering"
        DELIVERED = "delivered", "Delivered"
        FAILING = "failing", "Failing"
        CANCELLED = "cancelled", "Not sent: the subscriber is off"

    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    subscriber = models.ForeignKey(WebhookSubscriber, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    round = models.PositiveIntegerField(default=1, help_text="1, then one more for each redelivery.")
    started_at = models.DateTimeField(null=True, blank=True, help_text="When its round's workflow started.")
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)
    redelivered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    redelivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["event", "subscriber"], name="webhook_delivery_once")]
        indexes = [
            models.Index(
                fields=["created_at"], condition=models.Q(started_at__isnull=True), name="webhook_unstarted"
            ),
            models.Index(fields=["subscriber", "-created_at"], name="webhook_delivery_log"),
            models.Index(fields=["status"], name="webhook_delivery_status"),
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.subscriber}"

    @property
    def workflow_id(self) -> str:
        """The id of its round's workflow."""
        return webhook_id_for(self.event.event_id, self.subscriber_id, self.round)


class WebhookAttempt(models.Model):
    """One POST of a delivery and what came of it, as the delivery log shows it. Never edited."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    round = models.PositiveIntegerField()
    number = models.PositiveIntegerField(help_text="The attempt's number within its round.")
    at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    milliseconds = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "round", "number"], name="webhook_attempt_once")
        ]

    def __str__(self) -> str:
        return (
            f"{self.delivery_id} round {self.round} attempt {self.number}: {self.status_code or self.error}"
        )
