"""Staff pages: the dashboard, its CSV export, workflows in trouble, and the mailbox."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from typing import Any

from django.contrib import messages
from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from approvals import charts, selectors, services
from approvals.exceptions import ApprovalError
from approvals.forms import MailboxFilterForm, PeriodForm
from approvals.selectors.analytics import Period
from approvals.views.common import HtmxHttpRequest, form_errors, page_of, staff_only, visible_request


def _figures(period: Period) -> dict[str, Any]:
    by_type = selectors.decision_times_by_type(period=period)
    unit, buckets = selectors.throughput(period=period)
    return {
        "period": period,
        "by_type": by_type,
        "by_stage": selectors.decision_times_by_stage(period=period),
        "load": selectors.approver_load(),
        "responders": selectors.slowest_responders(period=period),
        "throughput_chart": charts.throughput_chart(buckets, unit),
        "by_type_chart": charts.durations_chart(
            by_type, title="Time from submission to decision, per request type"
        ),
        "submitted_total": sum(b.submitted for b in buckets),
        "decided_total": sum(b.decided for b in buckets),
    }


@require_GET
@staff_only
def dashboard(request: HtmxHttpRequest) -> HttpResponse:
    """What is late and what failed, live; and how the chosen period went, on request."""
    form = PeriodForm(request.GET if set(request.GET) & set(PeriodForm.base_fields) else None)
    context = {"period_form": form, "export_query": form.query(), **_figures(form.period())}
    template = "approvals/dashboard.html"
    if request.htmx and request.htmx.target == "dashboard-figures":
        return render(request, template + "#figures", context)
    context.update(selectors.dashboard_summary())
    return render(request, template, context)


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> Any:
    """Text a spreadsheet would run as a formula is written as text (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@require_GET
@staff_only
def dashboard_export(request: HtmxHttpRequest) -> HttpResponseBase:
    """Every request submitted or decided in the period, one CSV row each, streamed."""
    form = PeriodForm(request.GET)
    if not form.is_valid():
        return HttpResponse(form_errors(form), status=400, content_type="text/plain; charset=utf-8")
    period = form.period()
    writer = csv.writer(_Echo())

    def rows() -> Iterator[str]:
        yield writer.writerow(selectors.EXPORT_COLUMNS)
        for row in selectors.requests_export(period=period):
            yield writer.writerow([_cell(value) for value in row])

    local = timezone.localtime
    name = f"requests-{local(period.since):%Y%m%d}-{local(period.until):%Y%m%d}.csv"
    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _troubles(request: HtmxHttpRequest, **extra: Any) -> HttpResponse:
    troubles, note = services.workflows_in_trouble()
    context = {
        "troubles": troubles,
        "note": note,
        "staff_actions": selectors.staff_actions_recent(),
        **extra,
    }
    return render(request, "approvals/dashboard.html#troubles", context)


@require_GET
@staff_only
def dashboard_workflows(request: HtmxHttpRequest) -> HttpResponse:
    """Workflows that need a person, asked of Temporal on request (the page loads it lazily)."""
    return _troubles(request)


def _staff_acted(
    request: HtmxHttpRequest,
    ok: bool,
    message: str,
    answer: Callable[[bool, str], HttpResponse] | None = None,
) -> HttpResponse:
    """What a staff action's form gets back: without htmx, the dashboard with a message; with it,
    `answer` (the list of workflows in trouble, by default) saying what happened."""
    if not request.htmx:
        (messages.success if ok else messages.error)(request, message)
        return redirect("dashboard")
    if answer is None:
        return _troubles(request, staff_notice=message, staff_notice_ok=ok)
    return answer(ok, message)


@require_POST
@staff_only
def dashboard_cancel(request: HtmxHttpRequest, public_id: str) -> HttpResponse:
    approval = visible_request(request, public_id)
    # The reason is weighed by the service, by the rules, so that a refused attempt is on record.
    reason = str(request.POST.get("reason", ""))
    try:
        done = services.request_cancel_by_staff(request=approval, actor=request.user, reason=reason)
    except ApprovalError as exc:
        return _staff_acted(request, False, f"“{approval.title}”: {exc}")
    return _staff_acted(request, True, f"“{approval.title}”: {done.outcome}")


@require_POST
@staff_only
def dashboard_retry(request: HtmxHttpRequest, public_id: str) -> HttpResponse:
    approval = visible_request(request, public_id)
    try:
        done = services.request_retry_by_staff(request=approval, actor=request.user)
    except ApprovalError as exc:
        return _staff_acted(request, False, f"“{approval.title}”: {exc}")
    return _staff_acted(request, True, f"“{approval.title}”: {done.outcome}")


@require_POST
@staff_only
def dashboard_fulfil(request: HtmxHttpRequest, public_id: str) -> HttpResponse:
    """Retry a request's fulfilment that was rolled back, as a new attempt (on the record)."""
    approval = visible_request(request, public_id)
    reason = str(request.POST.get("reason", ""))

    def answer(ok: bool, message: str) -> HttpResponse:  # the summary, and the notice beside it
        context = {
            **selectors.dashboard_summary(),
            "fulfil_notice": message,
            "fulfil_notice_ok": ok,
            "fresh": f"fulfil-reason-{approval.public_id}",  # drawn afresh for the next retry
        }
        summary = render_to_string("approvals/dashboard.html#summary", context, request=request)
        notice = render_to_string("approvals/dashboard.html#fulfil-notice", context, request=request)
        return HttpResponse(summary + notice)

    try:
        done = services.fulfilment_retry_by_staff(request=approval, actor=request.user, reason=reason)
    except ApprovalError as exc:
        return _staff_acted(request, False, f"“{approval.title}”: {exc}", answer)
    return _staff_acted(request, True, f"“{approval.title}”: {done.outcome}", answer)


@require_GET
@staff_only
def mailbox(request: HtmxHttpRequest) -> HttpResponse:
    """Every email sent or tried, a page at a time, searchable; its links work."""
    form = MailboxFilterForm(request.GET)
    chosen = form.cleaned_data if form.is_valid() else {}
    search, status = (chosen.get("q") or "").strip(), chosen.get("status") or ""
    emails = selectors.mailbox(search=search, status=status)
    context = {"form": form, "page": page_of(request, emails), "filtered": bool(search or status)}
    return render(request, "approvals/mailbox.html", context)


@require_GET
@staff_only
def budgets(request: HtmxHttpRequest) -> HttpResponse:
    """Each cost centre's budget (allocated, reserved, available), and one centre's ledger."""
    all_budgets = selectors.budgets()
    code = request.GET.get("centre", "")
    shown = next((b for b in all_budgets if b.centre.code == code), None)
    if shown is None and all_budgets:
        shown = all_budgets[0]
    context = {
        "budgets": all_budgets,
        "shown": shown,
        "page": page_of(request, selectors.ledger(cost_centre=shown.centre)) if shown else None,
    }
    return render(request, "approvals/budgets.html", context)
