from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib.auth.models import User
from django.utils import timezone

from approvals.models import ApprovalRequest, RequestType
from approvals.selectors.analytics import Period
from approvals.selectors.requests import InboxSort, InboxState
from workflows.types import ActionKind

STALE_FORM = "This form is incomplete; reload the page and submit again."
EXTENSIONS = [
    ("86400", "1 more day"),
    ("259200", "3 more days"),
    ("604800", "1 more week"),
]


def _form_token() -> forms.UUIDField:
    # Generated when the form is shown, so that submitting the same form twice counts once.
    return forms.UUIDField(
        widget=forms.HiddenInput,
        initial=uuid.uuid4,
        error_messages={"required": STALE_FORM, "invalid": STALE_FORM},
    )


class RequestForm(forms.ModelForm):
    submission_id = _form_token()
    request_type = forms.ModelChoiceField(
        queryset=RequestType.objects.filter(is_active=True), empty_label="Choose a type of request"
    )

    class Meta:
        model = ApprovalRequest
        fields = ["request_type", "title", "details", "amount"]
        widgets = {"details": forms.Textarea(attrs={"rows": 5})}
        help_texts = {"amount": "Optional, for requests that cost money."}

    def clean_amount(self) -> Any:
        amount = self.cleaned_data.get("amount")
        if amount is not None and amount < 0:
            raise forms.ValidationError("The amount cannot be negative.")
        return amount


class RoutingPreviewForm(forms.Form):
    """What the routing preview needs from the request form, as it is being filled in."""

    request_type = forms.ModelChoiceField(queryset=RequestType.objects.filter(is_active=True), required=False)
    amount = forms.DecimalField(max_digits=12, decimal_places=2, min_value=0, required=False)


class ActionForm(forms.Form):
    """Every action on a request but resubmission: the button pressed says which."""

    action_id = _form_token()
    kind = forms.ChoiceField(
        choices=[(k.value, k.value) for k in ActionKind if k not in (ActionKind.RESUBMIT, ActionKind.CANCEL)]
    )
    comment = forms.CharField(required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2}))
    delegate = forms.ModelChoiceField(queryset=User.objects.filter(is_active=True), required=False)
    extend_by = forms.TypedChoiceField(choices=EXTENSIONS, coerce=int, required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("kind")
        if kind in (ActionKind.REJECT, ActionKind.REQUEST_CHANGES) and not data.get("comment", "").strip():
            self.add_error("comment", "A comment is required to reject or to request changes.")
        if kind == ActionKind.COMMENT and not data.get("comment", "").strip():
            self.add_error("comment", "Write a comment first.")
        if kind == ActionKind.DELEGATE and not data.get("delegate"):
            self.add_error("delegate", "Choose someone to delegate to.")
        if kind == ActionKind.EXTEND and not data.get("extend_by"):
            self.add_error("extend_by", "Choose how much more time you need.")
        return data

    @property
    def extension(self) -> timedelta | None:
        seconds = self.cleaned_data.get("extend_by")
        return timedelta(seconds=seconds) if seconds else None


class ResubmitForm(forms.ModelForm):
    action_id = _form_token()
    comment = forms.CharField(
        required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2}), label="What changed"
    )

    class Meta:
        model = ApprovalRequest
        fields = ["title", "details", "amount"]
        widgets = {"details": forms.Textarea(attrs={"rows": 5})}

    def clean_amount(self) -> Any:
        return RequestForm.clean_amount(self)  # type: ignore[arg-type]


class InboxFilterForm(forms.Form):
    """The inbox's filters, from the query string; a bad value is reported and ignored."""

    q = forms.CharField(required=False, max_length=100, label="Search")
    type = forms.ModelChoiceField(
        queryset=RequestType.objects.order_by("name"),
        to_field_name="slug",
        required=False,
        empty_label="Any type",
        label="Type",
    )
    requester = forms.CharField(required=False, max_length=150, label="Requester")
    state = forms.TypedChoiceField(
        choices=[(s.value, s.label) for s in InboxState],
        coerce=InboxState,
        required=False,
        empty_value=InboxState.WAITING,
        label="Show",
    )
    sort = forms.TypedChoiceField(
        choices=[(s.value, s.label) for s in InboxSort],
        coerce=InboxSort,
        required=False,
        empty_value=InboxSort.DEADLINE,
        label="Sort by",
    )

    def filters(self) -> dict[str, Any]:
        """Keyword arguments for `selectors.inbox_items`: the valid filters only."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {
            "state": data.get("state") or InboxState.WAITING,
            "sort": data.get("sort") or InboxSort.DEADLINE,
            "search": (data.get("q") or "").strip(),
            "request_type": data.get("type"),
            "requester": (data.get("requester") or "").strip(),
        }

    @property
    def is_default(self) -> bool:
        """Unfiltered: what newly arrives live belongs on this page."""
        f = self.filters()
        return f["state"] in (InboxState.WAITING, InboxState.ALL) and not (
            f["search"] or f["request_type"] or f["requester"]
        )


BULK_LIMIT = 100


class BulkActionForm(forms.Form):
    """Approve or reject many requests with one comment; each still goes through its own workflow.

    The selected ids arrive as repeated `ids` values (checkboxes in the inbox rows)."""

    bulk_id = _form_token()
    kind = forms.ChoiceField(
        choices=[(ActionKind.APPROVE.value, "Approve"), (ActionKind.REJECT.value, "Reject")]
    )
    comment = forms.CharField(required=False, max_length=4000)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        ids: list[uuid.UUID] = []
        for value in self.data.getlist("ids") if hasattr(self.data, "getlist") else []:
            try:
                ids.append(uuid.UUID(str(value)))
            except ValueError:
                raise forms.ValidationError(
                    "The selection is not valid; reload the page and try again."
                ) from None
        ids = list(dict.fromkeys(ids))
        if not ids:
            raise forms.ValidationError("Select at least one request.")
        if len(ids) > BULK_LIMIT:
            raise forms.ValidationError(f"Select at most {BULK_LIMIT} requests at a time.")
        data["ids"] = ids
        if data.get("kind") == ActionKind.REJECT and not data.get("comment", "").strip():
            self.add_error("comment", "A comment is required to reject.")
        return data


PERIODS = [("7", "Last 7 days"), ("30", "Last 30 days"), ("90", "Last 90 days"), ("365", "Last year")]
DEFAULT_PERIOD_DAYS = 30
MAX_PERIOD_DAYS = 366


class PeriodForm(forms.Form):
    """The dashboard's period: one of the last N days, or from one date to another (inclusive).

    A bad value is reported and the default period used instead."""

    days = forms.TypedChoiceField(
        choices=PERIODS,
        coerce=int,
        required=False,
        empty_value=DEFAULT_PERIOD_DAYS,
        initial=DEFAULT_PERIOD_DAYS,
        label="Period",
    )
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if bool(since) != bool(until):
            raise forms.ValidationError("Give both dates of the period, or neither.")
        if since and until:
            if until < since:
                raise forms.ValidationError("The period must end on or after the day it starts.")
            if (until - since).days + 1 > MAX_PERIOD_DAYS:
                raise forms.ValidationError(f"Choose at most {MAX_PERIOD_DAYS} days.")
        return data

    def period(self) -> Period:
        """The period chosen, or the last 30 days when nothing valid was chosen."""
        data = self.cleaned_data if self.is_valid() else {}
        since, until = data.get("since"), data.get("until")
        if since and until:
            tz = timezone.get_current_timezone()
            start = datetime.combine(since, time.min, tzinfo=tz)
            end = datetime.combine(until + timedelta(days=1), time.min, tzinfo=tz)
            return Period(start, end)
        return Period.last(data.get("days") or DEFAULT_PERIOD_DAYS)

    def query(self) -> str:
        """The valid choice as a query string, for links (the CSV export) that keep the period."""
        if not self.is_valid():
            return ""
        data = self.cleaned_data
        if data.get("since"):
            return urlencode({"since": data["since"].isoformat(), "until": data["until"].isoformat()})
        return urlencode({"days": data.get("days") or DEFAULT_PERIOD_DAYS})


class StaffCancelForm(forms.Form):
    reason = forms.CharField(
        max_length=2000,
        label="Why cancel",
        error_messages={"required": "Say why the request is cancelled: the requester will read it."},
    )


class EmailConfirmForm(forms.Form):
    """The confirmation page of an approve/reject link from an email."""

    comment = forms.CharField(required=False, max_length=4000)
