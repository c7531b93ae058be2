from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from approvals.exceptions import InvalidInput
from approvals.models import (
    AccessGrant,
    ApiIdempotency,
    ApiToken,
    ApiTokenUse,
    ApprovalRequest,
    Assignment,
    Campaign,
    CampaignEvent,
    CampaignItem,
    CostCentre,
    Delegation,
    EscalationLevel,
    Fulfilment,
    LedgerEntry,
    Manager,
    OutboundEmail,
    Participant,
    PendingAction,
    PurchaseOrder,
    RequestEvent,
    RequestRevision,
    RequestType,
    Resource,
    StaffAction,
    Stage,
    StageRun,
    WebhookDelivery,
    WebhookSubscriber,
)
from approvals.selectors.budgets import balance
from approvals.services import tokens as token_services
from approvals.services.budgets import budget_allocate
from approvals.services.webhooks import subscriber_save


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
    filter_horizontal = ["approver_users", "approver_groups", "auto_approve_groups"]
    fields = [
        ("order", "name"),
        ("approver_users", "approver_groups"),
        ("rule", "required_approvals"),
        ("deadline", "reminder_interval", "on_exhausted"),
        ("condition_field", "condition_operator", "condition_value", "condition_text"),
        "auto_approve_groups",
    ]


@admin.register(RequestType)
class RequestTypeAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "is_active",
        "fulfilment",
        "for_agents",
        "allow_auto_approve",
        "distinct_approvers",
        "undo_seconds",
    ]
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
    filter_horizontal = ["approver_users", "approver_groups", "auto_approve_groups"]
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
    readonly_fields = ("number", "title", "details", "amount", "action_sha256", "created_at")
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


@admin.register(CostCentre)
class CostCentreAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "is_active"]
    search_fields = ["code", "name"]
    prepopulated_fields = {"code": ["name"]}


class AllocationForm(forms.ModelForm):
    """An allocation, the one movement made by hand: a positive amount gives the cost centre more
    budget, a negative one takes back what is still available (services.budget_allocate)."""

    # Not the model's `amount` (always positive, from one account to another): a signed sum.
    allocation = forms.DecimalField(
        label="Amount", max_digits=14, decimal_places=2, help_text="Negative: take budget back."
    )

    class Meta:
        model = LedgerEntry
        # The amount is the form's own (signed): the service makes the movement from it.
        fields = ["cost_centre", "memo"]

    def _post_clean(self) -> None:
        """No instance to check: the service makes the movement from the cleaned data, and checks
        it (the model's own checks speak of the positive amount and the two accounts)."""

    def clean_allocation(self) -> Decimal:
        amount: Decimal = self.cleaned_data["allocation"]
        if amount == 0:
            raise forms.ValidationError("Allocate an amount other than zero.")
        return amount

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        centre, amount = data.get("cost_centre"), data.get("allocation")
        if centre is not None and amount is not None and amount < 0:
            available = balance(cost_centre=centre, account=LedgerEntry.Account.AVAILABLE)
            if available < -amount:
                taken = f"Only {available} of {centre.code}'s budget is available to take back."
                self.add_error("allocation", taken)
        return data


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    """The ledger, to read; the only movement added here is an allocation (the rest come from
    purchases), and none is ever changed or deleted."""

    form = AllocationForm
    list_display = ["created_at", "cost_centre", "credit", "debit", "amount", "memo", "request", "by"]
    list_filter = ["cost_centre", "debit", "credit"]
    search_fields = ["key", "memo", "request__title"]
    date_hierarchy = "created_at"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # Through the service, which checks again under the cost centre's lock.
        entry = budget_allocate(
            cost_centre=form.cleaned_data["cost_centre"],
            amount=form.cleaned_data["allocation"],
            by=request.user if request.user.is_authenticated else None,
            memo=form.cleaned_data["memo"],
        )
        obj.pk = entry.pk
        obj.refresh_from_db()  # as made, for the admin's message


@admin.register(PurchaseOrder)
class PurchaseOrderAdmin(ReadOnlyAdmin):
    list_display = ["number", "request", "amount", "external", "created_at", "cancelled_at"]
    search_fields = ["number", "key", "request__title"]


@admin.register(Fulfilment)
class FulfilmentAdmin(ReadOnlyAdmin):
    list_display = ["request", "attempt", "status", "failed_step", "started_at", "ended_at"]
    list_filter = ["status"]
    search_fields = ["request__title", "failed_step", "reason"]


@admin.register(Resource)
class ResourceAdmin(admin.ModelAdmin):
    """The catalogue of what people ask access to."""

    list_display = ["name", "code", "roles", "max_days", "owner", "is_active"]
    prepopulated_fields = {"code": ["name"]}
    raw_id_fields = ["owner"]
    filter_horizontal = ["approvers", "approver_groups"]


@admin.register(AccessGrant)
class AccessGrantAdmin(ReadOnlyAdmin):
    """Grants change only through their workflow (the Access page revokes them)."""

    list_display = ["holder", "resource", "role", "status", "starts_at", "ends_at", "extensions"]
    list_filter = ["status", "resource"]
    search_fields = ["holder__username", "holder__email", "resource__name"]


@admin.register(Manager)
class ManagerAdmin(admin.ModelAdmin):
    """Who reports to whom: the reviewers of access in campaigns that say so, and where
    overdue reviews escalate."""

    list_display = ["user", "manager"]
    search_fields = ["user__username", "manager__username"]
    raw_id_fields = ["user", "manager"]


class CampaignEventInline(ReadOnlyInline):
    model = CampaignEvent
    fields = ["occurred_at", "kind", "actor_name", "detail"]


@admin.register(Campaign)
class CampaignAdmin(ReadOnlyAdmin):
    """Campaigns are started, and cancelled, from the dashboard (Access reviews): through their
    workflow, with an audit entry."""

    list_display = ["name", "status", "total", "started", "deadline", "end_rule", "created_by", "created_at"]
    list_filter = ["status", "end_rule", "reviewer"]
    search_fields = ["name"]
    inlines = [CampaignEventInline]


@admin.register(CampaignItem)
class CampaignItemAdmin(ReadOnlyAdmin):
    list_display = ["campaign", "grant", "reviewer", "status", "by_rule", "decided_by_name", "decided_at"]
    list_filter = ["status", "by_rule", "campaign"]
    search_fields = ["grant__holder__username", "reviewer__username", "campaign__name"]
    list_select_related = ["campaign", "grant__holder", "grant__resource", "reviewer"]


class ApiTokenAddForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=ApiToken.Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiToken
        fields = ["user", "name", "scopes", "expires_at"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            token_services.token_check(
                user=data["user"], name=data["name"], scopes=data["scopes"], expires_at=data.get("expires_at")
            )
        except InvalidInput as exc:
            raise forms.ValidationError(str(exc)) from exc
        return data


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Staff make a token for someone (shown once, in the message after saving) and revoke any;
    a token is never edited, and only its SHA-256 is kept."""

    list_display = [
        "name",
        "user",
        "prefix",
        "scopes",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix", "user__username"]
    raw_id_fields = ["user"]
    actions = ["revoke"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ApiTokenAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        return ["user", "name", "prefix", "scopes", "expires_at", "created_at", "last_used_at", "revoked_at"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["user", "name", "scopes", "expires_at"]
        return self.get_readonly_fields(request, obj)

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            return  # nothing of a token changes but its revocation (the action)
        token, plain = token_services.token_create(
            user=form.cleaned_data["user"],
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            expires_at=form.cleaned_data["expires_at"],
        )
        obj.pk = token.pk
        messages.warning(request, f"The token for {token.user}, shown only this once (copy it now): {plain}")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoked, never deleted: its use log stays

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        for token in queryset:
            token_services.token_revoke(token_id=token.pk, by=request.user)  # type: ignore[arg-type]
        self.message_user(request, f"{queryset.count()} token(s) revoked.")


@admin.register(ApiTokenUse)
class ApiTokenUseAdmin(ReadOnlyAdmin):
    list_display = ["at", "token", "method", "path", "status"]
    list_filter = ["status", "method"]
    search_fields = ["token__name", "token__prefix", "token__user__username", "path"]
    list_select_related = ["token__user"]


@admin.register(ApiIdempotency)
class ApiIdempotencyAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "user", "key", "status"]
    search_fields = ["user__username", "key"]


class WebhookSubscriberAdminForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    events = forms.MultipleChoiceField(
        choices=WebhookSubscriber.Event.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookSubscriber
        fields = ["url", "description", "events", "is_active"]


@admin.register(WebhookSubscriber)
class WebhookSubscriberAdmin(admin.ModelAdmin):
    """Subscribers, as on the staff's Webhooks page (which also shows each one's delivery log);
    a new one gets its signing secret here too."""

    form = WebhookSubscriberAdminForm
    list_display = ["url", "description", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["url", "description"]
    readonly_fields = ["secret", "created_by", "created_at"]

    def save_model(self, request: HttpRequest, obj: WebhookSubscriber, form: Any, change: bool) -> None:
        saved = subscriber_save(
            subscriber=obj if change else None,
            by=request.user,  # type: ignore[arg-type]
            **form.cleaned_data,
        )
        obj.pk, obj.secret = saved.pk, saved.secret


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "event", "subscriber", "status", "round", "attempts", "last_status_code"]
    list_filter = ["status"]
    search_fields = ["subscriber__url", "event__type", "event__request__title"]
    list_select_related = ["event", "subscriber"]
