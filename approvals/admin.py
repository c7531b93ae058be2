from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from approvals.models import (
    ApprovalRequest,
    Delegation,
    EscalationLevel,
    OutboundEmail,
    Participant,
    RequestEvent,
    RequestRevision,
    RequestType,
    Stage,
)


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
    list_display = ["name", "is_active", "allow_auto_approve"]
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
    fields = ["user", "pending", "level", "acting_for", "added_at"]
    readonly_fields = fields


class RevisionInline(ReadOnlyInline):
    model = RequestRevision
    fields = ["number", "title", "details", "amount", "created_at"]
    readonly_fields = fields


class EventInline(ReadOnlyInline):
    model = RequestEvent
    fields = ["seq", "occurred_at", "kind", "actor_name", "stage", "comment", "detail"]
    readonly_fields = fields


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(admin.ModelAdmin):
    """Read-only: requests change only through their workflow, and the audit trail never."""

    list_display = ["title", "request_type", "requester", "status", "stage_name", "deadline", "created_at"]
    list_filter = ["status", "request_type"]
    search_fields = ["title", "public_id", "requester__username"]
    inlines = [ParticipantInline, RevisionInline, EventInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(OutboundEmail)
class OutboundEmailAdmin(admin.ModelAdmin):
    list_display = ["subject", "to", "kind", "status", "created_at", "sent_at"]
    list_filter = ["status", "kind"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
