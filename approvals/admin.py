from __future__ import annotations

from django.contrib import admin

from approvals.models import ApprovalRequest, Approver, OutboundEmail, RequestEvent, RequestType


@admin.register(RequestType)
class RequestTypeAdmin(admin.ModelAdmin):
    list_display = ["name", "review_deadline", "escalation_manager", "is_active"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["reviewers"]


class ApproverInline(admin.TabularInline):
    model = Approver
    extra = 0
    readonly_fields = ["user", "role", "added_at"]
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


class RequestEventInline(admin.TabularInline):
    model = RequestEvent
    extra = 0
    readonly_fields = ["seq", "kind", "actor", "comment", "occurred_at"]
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(admin.ModelAdmin):
    """Read-only: requests change only through their workflow."""

    list_display = [
        "title",
        "request_type",
        "requester",
        "status",
        "deadline",
        "created_at",
        "workflow_started_at",
    ]
    list_filter = ["status", "request_type"]
    search_fields = ["title", "public_id", "requester__username"]
    inlines = [ApproverInline, RequestEventInline]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(OutboundEmail)
class OutboundEmailAdmin(admin.ModelAdmin):
    list_display = ["subject", "to", "kind", "status", "created_at", "sent_at"]
    list_filter = ["status", "kind"]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False
