from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from approvals.models import (
    ApprovalRequest,
    Assignment,
    Delegation,
    EscalationLevel,
    OutboundEmail,
    Participant,
    PendingAction,
    RequestEvent,
    RequestRevision,
    RequestType,
    StaffAction,
    Stage,
    StageRun,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the system alone: staff may read and search them, never change them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class StageInline(admin.StackedInline):
    model = Stage
    extra = 0
    show_change_link = True
    filter_horizontal = ["approver_users", "approver_groups"]
    fields = [
        ("order", "name"),
        ("approver_users", "approver_groups"),
        ("rule", "required_approvals"),
        ("deadline", "reminder_interval", "on_exhausted"),
        ("condition_field", "condition_operator", "condition_value"),
    ]


@admin.register(RequestType)
class RequestTypeAdmin(admin.ModelAdmin):
    list_display = ["name", "is_active", "allow_auto_approve", "distinct_approvers", "undo_seconds"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [StageInline]


class EscalationLevelInline(admin.TabularInline):
    model = EscalationLevel
    extra = 0
    filter_horizontal = ["users", "groups"]


@admin.register(Stage)
class StageAdmin(admin.ModelAdmin):
    """A stage with its escalation chain (edited here, since inlines do not nest)."""

    list_display = ["__str__", "rule", "deadline", "reminder_interval", "on_exhausted"]
    list_filter = ["request_type"]
    filter_horizontal = ["approver_users", "approver_groups"]
    inlines = [EscalationLevelInline]


@admin.register(Delegation)
class DelegationAdmin(admin.ModelAdmin):
    list_display = ["user", "delegate", "starts_at", "ends_at", "reason"]
    list_filter = ["starts_at"]
    search_fields = ["user__username", "delegate__username"]


class ParticipantInline(ReadOnlyInline):
    model = Participant
    readonly_fields = ("user", "pending", "level", "acting_for", "added_at")
    fields = readonly_fields


class RevisionInline(ReadOnlyInline):
    model = RequestRevision
    readonly_fields = ("number", "title", "details", "amount", "created_at")
    fields = readonly_fields


class EventInline(ReadOnlyInline):
    model = RequestEvent
    readonly_fields = ("seq", "occurred_at", "kind", "actor_name", "stage", "comment", "detail")
    fields = readonly_fields


class StageRunInline(ReadOnlyInline):
    model = StageRun
    readonly_fields = ("stage_name", "stage_version", "started_at", "closed_at", "outcome", "seconds")
    fields = readonly_fields


class AssignmentInline(ReadOnlyInline):
    model = Assignment
    readonly_fields = (
        "user",
        "stage_name",
        "stage_version",
        "level",
        "asked_at",
        "closed_at",
        "outcome",
        "seconds",
    )
    fields = readonly_fields


class StaffActionInline(ReadOnlyInline):
    model = StaffAction
    readonly_fields = ("created_at", "actor", "kind", "reason", "ok", "outcome", "workflow_status", "run_id")
    fields = readonly_fields


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(ReadOnlyAdmin):
    """Read-only: requests change only through their workflow, and the audit trail never."""

    list_display = ["title", "request_type", "requester", "status", "stage_name", "deadline", "created_at"]
    list_filter = ["status", "request_type"]
    search_fields = ["title", "public_id", "requester__username"]
    inlines = [
        ParticipantInline,
        RevisionInline,
        EventInline,
        StageRunInline,
        AssignmentInline,
        StaffActionInline,
    ]


@admin.register(RequestEvent)
class RequestEventAdmin(ReadOnlyAdmin):
    """The audit trail across every request: who did what, when."""

    list_display = ["occurred_at", "request", "kind", "actor_name", "stage", "comment"]
    list_filter = ["kind", "occurred_at"]
    search_fields = ["request__title", "request__public_id", "actor_name", "comment"]
    list_select_related = ["request"]
    date_hierarchy = "occurred_at"


@admin.register(StaffAction)
class StaffActionAdmin(ReadOnlyAdmin):
    """What staff did to workflows from the dashboard (cancel, retry), refused attempts too."""

    list_display = ["created_at", "actor", "kind", "request", "ok", "workflow_status", "outcome"]
    list_filter = ["kind", "ok"]
    search_fields = ["request__title", "request__public_id", "actor__username", "reason"]
    list_select_related = ["request", "actor"]


@admin.register(OutboundEmail)
class OutboundEmailAdmin(ReadOnlyAdmin):
    list_display = ["subject", "to", "kind", "status", "created_at", "sent_at"]
    list_filter = ["status", "kind"]
    search_fields = ["subject", "to"]


@admin.register(PendingAction)
class PendingActionAdmin(ReadOnlyAdmin):
    """Actions sent to a workflow that it has not confirmed yet (their senders see them as pending)."""

    list_display = ["sent_at", "actor", "kind", "via", "request", "action_id"]
    list_filter = ["kind", "via"]
    search_fields = ["request__title", "request__public_id", "actor__username", "action_id"]
