"""Staff pages: the dashboard, its CSV export, and the mailbox."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from approvals import charts, selectors
from approvals.forms import PeriodForm
from approvals.selectors.analytics import Period
from approvals.views.common import HtmxHttpRequest


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
@staff_member_required
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
@staff_member_required
def dashboard_export(request: HtmxHttpRequest) -> HttpResponse:
    """Every request submitted or decided in the period, one CSV row each, streamed."""
    form = PeriodForm(request.GET)
    if not form.is_valid():
        errors = " ".join(e for errors in form.errors.values() for e in errors)
        return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
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


@require_GET
@staff_member_required
def mailbox(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "approvals/mailbox.html", {"emails": selectors.mailbox()})
