from __future__ import annotations

import json
import uuid
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib.auth.models import User
from django.utils import timezone

from approvals.models import (
    ApiToken,
    ApprovalRequest,
    CostCentre,
    OutboundEmail,
    RequestType,
    Resource,
    WebhookSubscriber,
)
from approvals.selectors.analytics import Period
from approvals.selectors.requests import InboxSort, InboxState
from approvals.services.access import access_problems
from approvals.services.agents import MAX_ACTION_BYTES
from approvals.services.requests import purchase_problems
from workflows import rules
from workflows.types import Action, ActionKind, Content

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


def _not_negative(amount: Any) -> Any:
    if amount is not None and amount < 0:
        raise forms.ValidationError("The amount cannot be negative.")
    return amount


class PointsAtErrors(forms.BaseForm):
    """A form that, once checked, marks its bad fields for assistive technology (aria-invalid,
    described by their error) and puts the cursor in the first of them."""

    def full_clean(self) -> None:
        super().full_clean()
        first = True
        for name, field in self.fields.items():
            if name not in self.errors or field.widget.is_hidden:
                continue
            described = f"{self[name].id_for_label}-error"
            field.widget.attrs.update({"aria-invalid": "true", "aria-describedby": described})
            if first:
                field.widget.attrs["autofocus"] = True
                first = False


class RequestTypeSelect(forms.Select):
    """Each type's option says what its approval sets in motion, so that the form shows the
    fields that fulfilment needs (static/approvals/request_form.js) and hides the others."""

    def create_option(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option: dict[str, Any] = super().create_option(*args, **kwargs)
        instance = getattr(option["value"], "instance", None)
        if isinstance(instance, RequestType):
            option["attrs"]["data-fulfilment"] = instance.fulfilment
        return option


class ResourceChoiceField(forms.ModelChoiceField):
    """Each resource with its roles and its longest period, so that neither is a surprise."""

    def label_from_instance(self, obj: Any) -> str:
        return f"{obj} (roles: {', '.join(obj.role_list)}; up to {obj.max_days} days)"


class RequestForm(PointsAtErrors, forms.ModelForm):
    submission_id = _form_token()
    request_type = forms.ModelChoiceField(
        # Agent actions come through the API alone (approvals.services.agents).
        queryset=RequestType.objects.filter(is_active=True, for_agents=False),
        empty_label="Choose a type of request",
        widget=RequestTypeSelect,
    )

    cost_centre = forms.ModelChoiceField(
        queryset=CostCentre.objects.filter(is_active=True),
        required=False,
        empty_label="None",
        help_text="For purchases: the budget it is paid from, reserved once it is approved.",
        widget=forms.Select(attrs={"data-for": "purchase"}),
    )

    resource = ResourceChoiceField(
        queryset=Resource.objects.filter(is_active=True),
        required=False,
        empty_label="None",
        help_text="For access requests: what you need access to.",
        widget=forms.Select(attrs={"data-for": "access"}),
    )
    access_role = forms.CharField(
        label="Role",
        required=False,
        max_length=50,
        help_text="For access requests: as whom (read, write…).",
        widget=forms.TextInput(attrs={"data-for": "access"}),
    )
    access_days = forms.IntegerField(
        label="Period (days)",
        required=False,
        min_value=1,
        max_value=365,
        error_messages={"min_value": "Ask for 1 to 365 days.", "max_value": "Ask for 1 to 365 days."},
        help_text=(
            "For access requests: how long you need it (each resource says its longest). "
            "It ends by itself after that."
        ),
        widget=forms.NumberInput(attrs={"data-for": "access"}),
    )

    class Meta:
        model = ApprovalRequest
        fields = [
            "request_type",
            "title",
            "details",
            "amount",
            "cost_centre",
            "resource",
            "access_role",
            "access_days",
        ]
        help_texts = {"amount": "For requests that cost money (a purchase needs it)."}
        widgets = {
            "details": forms.Textarea(attrs={"rows": 5}),
            "amount": forms.NumberInput(attrs={"data-not-for": "access"}),
        }

    def clean_amount(self) -> Any:
        return _not_negative(self.cleaned_data.get("amount"))

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if (request_type := cleaned.get("request_type")) is not None and "amount" not in self.errors:
            for name, problem in purchase_problems(
                request_type=request_type,
                amount=cleaned.get("amount"),
                cost_centre=cleaned.get("cost_centre"),
            ).items():
                self.add_error(name, problem)
            if "access_days" not in self.errors:
                for name, problem in access_problems(
                    request_type=request_type,
                    resource=cleaned.get("resource"),
                    role=(cleaned.get("access_role") or "").strip(),
                    days=cleaned.get("access_days"),
                ).items():
                    self.add_error(name, problem)
        return cleaned


class RoutingPreviewForm(forms.Form):
    """What the routing preview needs from the request form, as it is being filled in."""

    request_type = forms.ModelChoiceField(queryset=RequestType.objects.filter(is_active=True), required=False)
    amount = forms.DecimalField(max_digits=12, decimal_places=2, min_value=0, required=False)


def _comment_field(label: str = "Comment") -> forms.CharField:
    return forms.CharField(
        required=False, max_length=rules.MAX_COMMENT, widget=forms.Textarea(attrs={"rows": 2}), label=label
    )


def _add_rule_errors(form: forms.BaseForm, action: Action) -> None:
    """What the workflow's rules find wrong with what was sent, on the fields it concerns."""
    for field, message in rules.input_problems(action).items():
        if field in form.fields and field not in form.errors:
            form.add_error(field, message)


class ActionForm(forms.Form):
    """Every action on a request but resubmission: the button pressed says which."""

    action_id = _form_token()
    kind = forms.ChoiceField(
        choices=[(k.value, k.value) for k in ActionKind if k not in (ActionKind.RESUBMIT, ActionKind.CANCEL)]
    )
    comment = _comment_field()
    delegate = forms.ModelChoiceField(queryset=User.objects.filter(is_active=True), required=False)
    extend_by = forms.TypedChoiceField(choices=EXTENSIONS, coerce=int, required=False)
    target = forms.CharField(required=False, max_length=rules.MAX_ACTION_ID)  # the decision to undo
    # An agent action: the version the approver read, and the arguments they approve instead.
    action_sha256 = forms.RegexField(regex=r"^[0-9a-f]{64}$", required=False)
    arguments = forms.CharField(required=False, max_length=MAX_ACTION_BYTES * 2)

    def clean_arguments(self) -> dict[str, Any] | None:
        text = self.cleaned_data.get("arguments", "")
        if not text.strip():
            return None
        try:
            arguments = json.loads(text)
        except json.JSONDecodeError as exc:
            where = f"{exc.msg}, line {exc.lineno}"
            raise forms.ValidationError(f"These arguments are not JSON ({where}).") from exc
        if not isinstance(arguments, dict):
            raise forms.ValidationError('The arguments are a JSON object: {"name": value, …}.')
        return arguments

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("arguments") is not None and data.get("kind") != ActionKind.APPROVE:
            self.add_error("arguments", "Edited arguments go with an approval only.")
        if "kind" in data:
            delegate = data.get("delegate")
            _add_rule_errors(
                self,
                Action(
                    kind=ActionKind(data["kind"]),
                    actor_id=0,
                    actor_name="",
                    comment=data.get("comment", ""),
                    delegate_id=delegate.pk if delegate else None,
                    extend_seconds=data.get("extend_by") or 0,
                    target_id=data.get("target", ""),
                ),
            )
        return data

    @property
    def extension(self) -> timedelta | None:
        seconds = self.cleaned_data.get("extend_by")
        return timedelta(seconds=seconds) if seconds else None


class ResubmitForm(forms.ModelForm):
    action_id = _form_token()
    comment = _comment_field(label="What changed")

    class Meta:
        model = ApprovalRequest
        fields = ["title", "details", "amount"]
        widgets = {"details": forms.Textarea(attrs={"rows": 5})}

    def clean_amount(self) -> Any:
        return _not_negative(self.cleaned_data.get("amount"))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        content = Content(title=data.get("title", ""), details=data.get("details", ""))
        _add_rule_errors(
            self, Action(ActionKind.RESUBMIT, 0, "", comment=data.get("comment", ""), content=content)
        )
        return data


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
        choices=[
            (ActionKind.APPROVE.value, "Approve"),
            (ActionKind.REJECT.value, "Reject"),
            (ActionKind.UNDO.value, "Undo"),
        ]
    )
    comment = forms.CharField(required=False, max_length=rules.MAX_COMMENT)
    undo_of = forms.UUIDField(required=False)  # for an undo: the bulk id of the decision undone

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
        if data.get("kind") == ActionKind.UNDO and not data.get("undo_of"):
            raise forms.ValidationError("Say which bulk decision to undo.")
        if "kind" in data:
            kind, target = ActionKind(data["kind"]), str(data.get("undo_of") or "")
            _add_rule_errors(self, Action(kind, 0, "", comment=data.get("comment", ""), target_id=target))
        return data


PERIODS = [("7", "Last 7 days"), ("30", "Last 30 days"), ("90", "Last 90 days"), ("365", "Last year")]
DEFAULT_PERIOD_DAYS = 30
MAX_PERIOD_DAYS = 366
FIRST_DAY = date(2000, 1, 1)  # before any request; a period's days lie from here to a year ahead


# Dates are written as everywhere else in the app, 2026-12-03, whatever the browser's locale (a
# date input would show the locale's, 12/03/2026 in the United States).
ISO_DATE = forms.DateInput(
    format="%Y-%m-%d",
    attrs={"placeholder": "YYYY-MM-DD", "pattern": r"\d{4}-\d{2}-\d{2}", "inputmode": "numeric", "size": 10},
)


class PeriodForm(forms.Form):
    """The dashboard's period: one of the last N days, or from one date to another (inclusive).

    A bad value is reported and the default period used instead."""

    days = forms.TypedChoiceField(
        choices=PERIODS,
        coerce=int,
        required=False,
        empty_value=None,
        initial=DEFAULT_PERIOD_DAYS,
        label="Period",
    )
    since = forms.DateField(required=False, label="From", widget=ISO_DATE, input_formats=["%Y-%m-%d"])
    until = forms.DateField(required=False, label="To", widget=ISO_DATE, input_formats=["%Y-%m-%d"])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if bool(since) != bool(until):
            raise forms.ValidationError("Give both dates of the period, or neither.")
        if since and until:
            last_day = timezone.localdate() + timedelta(days=MAX_PERIOD_DAYS)
            if not (FIRST_DAY <= since and until <= last_day):
                raise forms.ValidationError(
                    f"Choose days between {FIRST_DAY.isoformat()} and {last_day.isoformat()}."
                )
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


class EmailConfirmForm(forms.Form):
    """The confirmation page of an approve/reject link from an email (whose action it knows)."""

    comment = forms.CharField(required=False, max_length=rules.MAX_COMMENT)

    def __init__(self, *args: Any, action: ActionKind, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.action = action

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        _add_rule_errors(self, Action(self.action, 0, "", comment=data.get("comment", "")))
        return data


class MailboxFilterForm(forms.Form):
    """The mailbox's search: words in an email's address, subject, kind or text, and its status."""

    q = forms.CharField(required=False, max_length=100, label="Search")
    status = forms.ChoiceField(
        required=False, label="Status", choices=[("", "Any status"), *OutboundEmail.Status.choices]
    )


def _by_code(field: forms.ModelChoiceField, name: str, noun: str) -> forms.ModelChoiceField:
    """The same field, naming its choice by `name` (a slug, a code) instead of its number."""
    return forms.ModelChoiceField(
        queryset=field.queryset,
        required=field.required,
        to_field_name=name,
        error_messages={
            "required": f"Name the {noun}.",
            "invalid_choice": f"There is no {noun} “%(value)s” open to requests.",
        },
    )


class ApiRequestForm(RequestForm):
    """The request form as the API fills it in: the same fields and rules, with the request type
    named by its slug and the cost centre and resource by their codes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A type of agent action is named too, for request_submit to say where those go.
        self.fields["request_type"].queryset = RequestType.objects.filter(is_active=True)  # type: ignore[attr-defined]
        self.fields["request_type"] = _by_code(self.fields["request_type"], "slug", "request type")  # type: ignore[arg-type]
        self.fields["cost_centre"] = _by_code(self.fields["cost_centre"], "code", "cost centre")  # type: ignore[arg-type]
        self.fields["resource"] = _by_code(self.fields["resource"], "code", "resource")  # type: ignore[arg-type]


class ApiRoutingPreviewForm(RoutingPreviewForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["request_type"]
        self.fields["request_type"] = _by_code(field, "slug", "request type")  # type: ignore[arg-type]
        self.fields["request_type"].required = True


TOKEN_EXPIRY = [("30", "In 30 days"), ("90", "In 90 days"), ("365", "In a year"), ("", "Never")]


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What it is for: the system that will use it.")
    scopes = forms.MultipleChoiceField(
        choices=ApiToken.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[ApiToken.Scope.READ],
        error_messages={"required": "Choose at least one thing the token may do."},
    )
    expires = forms.ChoiceField(choices=TOKEN_EXPIRY, required=False, initial="90", label="Expires")

    @property
    def expires_at(self) -> datetime | None:
        days = self.cleaned_data.get("expires")
        return timezone.now() + timedelta(days=int(days)) if days else None


class WebhookSubscriberForm(forms.Form):
    url = forms.URLField(
        max_length=500,
        label="Address",
        assume_scheme="https",
        help_text="Where the events are POSTed, as JSON, signed.",
        error_messages={"invalid": "Enter an address that starts with https:// (or http://)."},
    )
    description = forms.CharField(max_length=200, required=False, help_text="Whose it is and what it does.")
    events = forms.MultipleChoiceField(
        choices=WebhookSubscriber.Event.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one event to send it."},
    )
    is_active = forms.BooleanField(required=False, initial=True, label="On: new events go to it")

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        if not url.lower().startswith(("http://", "https://")):
            raise forms.ValidationError("Enter an address that starts with https:// (or http://).")
        return url
