"""Access-review campaigns: a reviewer's "Reviews" tab (keep or revoke, one at a time or in
bulk), and staff's side: start a campaign, watch its progress, read its report (HTML and CSV),
cancel it."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from approvals import services
from approvals.exceptions import ApprovalError
from approvals.models import AccessGrant, Campaign, CampaignItem, Resource
from approvals.selectors import campaigns as selectors
from approvals.views import fragments
from approvals.views.common import HtmxHttpRequest, form_errors, log_refused, staff_only
from approvals.views.dashboard import _cell, _Echo
from workflows import rules

BULK_LIMIT = 500


class ReviewDecisionForm(forms.Form):
    ids = forms.TypedMultipleChoiceField(
        coerce=int, label="Reviews", error_messages={"required": "Select at least one review."}
    )
    kind = forms.ChoiceField(choices=[("keep", "Keep"), ("revoke", "Revoke")])
    comment = forms.CharField(required=False, max_length=rules.MAX_COMMENT)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["ids"].choices = [(v, v) for v in self.data.getlist("ids")][: BULK_LIMIT + 1]  # type: ignore[attr-defined]

    def clean_ids(self) -> list[int]:
        ids = self.cleaned_data["ids"]
        if len(ids) > BULK_LIMIT:
            raise forms.ValidationError(f"Select at most {BULK_LIMIT} reviews at a time.")
        return ids


@require_GET
@login_required
def reviews(request: HtmxHttpRequest) -> HttpResponse:
    """The Reviews tab: the access reviews waiting for me, by campaign and person."""
    return render(
        request,
        "approvals/reviews.html",
        fragments.reviews_context(user=request.user, page=request.GET.get("page")),
    )


@require_POST
@login_required
def reviews_decide(request: HtmxHttpRequest) -> HttpResponse:
    """Keep or revoke the selected reviews, with one comment; each gets its own answer."""
    form = ReviewDecisionForm(request.POST)
    context: dict[str, Any] = {}
    if not form.is_valid():
        context["decide_error"] = form_errors(form)
    else:
        data = form.cleaned_data
        mine = {
            item.pk: item for item in selectors.reviews_open_for(user=request.user).filter(pk__in=data["ids"])
        }
        if request.user.is_staff:
            others = CampaignItem.objects.select_related("campaign", "grant__holder", "grant__resource")
            mine |= {item.pk: item for item in others.filter(pk__in=set(data["ids"]) - set(mine))}
        try:
            answers = services.reviews_decide(
                actor=request.user,
                items=mine.values(),
                keep=data["kind"] == "keep",
                comment=data["comment"] or "",
            )
        except ApprovalError as exc:
            context["decide_error"] = str(exc)
            context["decide_comment"] = data["comment"]
        else:
            results = [
                {"item": mine[a.item_id], "ok": a.ok, "pending": a.pending, "message": a.message}
                for a in answers
            ]
            gone = [i for i in data["ids"] if i not in mine]
            if gone:
                log_refused(request, f"reviews not theirs or closed: {gone[:10]}")
                results += [
                    {"item": None, "ok": False, "pending": False, "message": rules.REVIEW_CLOSED}
                ] * len(gone)
            context["results"] = results
            context["fresh"] = "reviews-comment"  # answered: the comment comes back empty
            context["results_done"] = sum(r["ok"] for r in results)
            context["results_verb"] = "kept" if data["kind"] == "keep" else "revoked"
    context |= fragments.reviews_context(user=request.user, page=request.GET.get("page"))
    if request.htmx:
        return render(request, "approvals/reviews.html#reviews-list", context)
    return render(request, "approvals/reviews.html", context)


# --- Staff: campaigns ---------------------------------------------------------------------------


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=150)
    resource = forms.ModelChoiceField(
        queryset=Resource.objects.all(), required=False, empty_label="All resources", to_field_name="code"
    )
    role = forms.CharField(
        required=False, max_length=50, help_text="Only access in this role; any when empty."
    )
    reviewer = forms.ChoiceField(choices=Campaign.Reviewer.choices, label="Reviewed by")
    days = forms.FloatField(min_value=0.001, max_value=365, initial=14, label="Deadline in (days)")
    remind_days = forms.FloatField(
        required=False,
        min_value=0.001,
        max_value=365,
        initial=3,
        label="Remind every (days)",
        help_text="Empty: no reminders.",
    )
    escalate_days = forms.FloatField(
        required=False,
        min_value=0.001,
        max_value=365,
        initial=10,
        label="Escalate to managers after (days)",
        help_text="Empty: no escalation.",
    )
    end_rule = forms.ChoiceField(choices=Campaign.EndRule.choices, label="At the deadline")


def _days(value: float | None) -> timedelta | None:
    return timedelta(days=value) if value else None


@require_http_methods(["GET", "POST"])
@staff_only
def campaigns(request: HtmxHttpRequest) -> HttpResponse:
    """Start a campaign; every campaign's progress."""
    form = CampaignForm(request.POST or None)
    if request.method == "POST":
        if not form.is_valid():
            messages.error(request, form_errors(form))
        else:
            data = form.cleaned_data
            try:
                campaign = services.campaign_start(
                    actor=request.user,
                    name=data["name"],
                    resource=data["resource"],
                    role=data["role"].strip(),
                    reviewer=data["reviewer"],
                    deadline=timezone.now() + timedelta(days=data["days"]),
                    remind_every=_days(data["remind_days"]),
                    escalate_after=_days(data["escalate_days"]),
                    end_rule=data["end_rule"],
                )
            except ApprovalError as exc:
                messages.error(request, str(exc))
            else:
                messages.success(request, f"“{campaign.name}” started: its reviews go out now.")
                return redirect("campaigns")
    context = {
        "form": form,
        "campaigns": selectors.campaigns_shown(limit=50),
        "active_grants": AccessGrant.objects.filter(status=AccessGrant.Status.ACTIVE).count(),
    }
    return render(request, "approvals/campaigns.html", context)


def _campaign(public_id: str) -> Campaign:
    campaign = Campaign.objects.select_related("resource", "created_by").filter(public_id=public_id).first()
    if campaign is None:
        raise Http404("No such campaign.")
    return campaign


@require_GET
@staff_only
def campaign_report(request: HtmxHttpRequest, public_id: str) -> HttpResponse:
    """The campaign's report: its progress, its audit trail, and every review's outcome."""
    campaign = _campaign(public_id)
    context = {
        "campaign": campaign,
        "progress_list": selectors.campaign_progress([campaign]),
        "events": campaign.events.all(),
        "page": Paginator(selectors.campaign_items(campaign), 100).get_page(request.GET.get("page")),
    }
    return render(request, "approvals/campaign_report.html", context)


@require_GET
@staff_only
def campaign_report_csv(request: HtmxHttpRequest, public_id: str) -> StreamingHttpResponse:
    campaign = _campaign(public_id)
    writer = csv.writer(_Echo())

    def rows() -> Iterator[str]:
        yield writer.writerow(selectors.REPORT_COLUMNS)
        for row in selectors.campaign_report_rows(campaign):
            yield writer.writerow([_cell(value) for value in row])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="access-review-{campaign.public_id}.csv"'
    return response


@require_POST
@staff_only
def campaign_cancel(request: HtmxHttpRequest, public_id: str) -> HttpResponse:
    campaign = _campaign(public_id)
    try:
        said = services.campaign_cancel(
            campaign=campaign, actor=request.user, reason=request.POST.get("reason", "")
        )
    except ApprovalError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, said)
    return redirect("campaign_report", public_id=campaign.public_id)
