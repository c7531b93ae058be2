from __future__ import annotations

import uuid
from typing import Any

from django import forms

from approvals.models import ApprovalRequest, RequestType
from workflows.types import Decision


class RequestForm(forms.ModelForm):
    # Generated when the form is shown: submitting the same form twice makes one request.
    submission_id = forms.UUIDField(
        widget=forms.HiddenInput,
        initial=uuid.uuid4,
        error_messages={
            "required": "This form is incomplete; reload the page and submit again.",
            "invalid": "This form is incomplete; reload the page and submit again.",
        },
    )
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


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[(d.value, d.value.title()) for d in Decision])
    comment = forms.CharField(required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("decision") == Decision.REJECT.value and not data.get("comment", "").strip():
            self.add_error("comment", "Say why you reject the request: a comment is required.")
        return data
