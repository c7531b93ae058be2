from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class RequestType(models.Model):
    """What can be asked for, who reviews it, and who is escalated to when nobody decides."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(unique=True)
    description = models.TextField(blank=True)
    reviewers = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="reviewable_types")
    escalation_manager = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="escalated_types",
        help_text="Becomes an approver, and is emailed, when the review deadline passes.",
    )
    review_deadline = models.DurationField(default=timedelta(days=2))
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RequestStatus(models.TextChoices):
    # Kept equal to workflows.types.RequestStatus, which the workflow reports.
    SUBMITTED = "submitted", "Submitted"
    IN_REVIEW = "in_review", "In review"
    ESCALATED = "escalated", "Escalated"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


OPEN_STATUSES = (RequestStatus.SUBMITTED, RequestStatus.IN_REVIEW, RequestStatus.ESCALATED)


class ApprovalRequest(models.Model):
    """One request and the read model of its workflow's state.

    The workflow owns the state; activities project each change here, guarded by `version`
    so that a retried or late projection never overwrites newer state.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    request_type = models.ForeignKey(RequestType, on_delete=models.PROTECT, related_name="requests")
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="requests")
    title = models.CharField(max_length=200)
    details = models.TextField(blank=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)

    status = models.CharField(max_length=20, choices=RequestStatus.choices, default=RequestStatus.SUBMITTED)
    version = models.PositiveIntegerField(default=0)
    deadline = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_comment = models.TextField(blank=True)

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
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("request_detail", args=[self.public_id])

    @property
    def workflow_id(self) -> str:
        return f"approval-{self.public_id}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_overdue(self) -> bool:
        return self.is_open and self.deadline is not None and self.deadline < timezone.now()


class ApproverRole(models.TextChoices):
    REVIEWER = "reviewer", "Reviewer"
    ESCALATION = "escalation", "Escalation"


class Approver(models.Model):
    """Who may decide a request: its reviewers, and whoever an escalation added."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="approvers")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    role = models.CharField(max_length=20, choices=ApproverRole.choices, default=ApproverRole.REVIEWER)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["request", "user"], name="approver_once_per_request")]

    def __str__(self) -> str:
        return f"{self.user} on {self.request}"


class RequestEvent(models.Model):
    """The audit trail: one row per workflow state change, numbered by the workflow."""

    class Kind(models.TextChoices):
        SUBMITTED = "submitted", "Submitted"
        REVIEW_STARTED = "review_started", "Review started"
        ESCALATED = "escalated", "Escalated"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    kind = models.CharField(max_length=30, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    comment = models.TextField(blank=True)
    occurred_at = models.DateTimeField()

    class Meta:
        ordering = ["request", "seq"]
        constraints = [models.UniqueConstraint(fields=["request", "seq"], name="event_once_per_seq")]

    def __str__(self) -> str:
        return f"{self.request} #{self.seq} {self.kind}"


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
