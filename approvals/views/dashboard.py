"""Staff pages: the dashboard and the mailbox."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from approvals import selectors
from approvals.views.common import HtmxHttpRequest


@require_GET
@staff_member_required
def dashboard(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "approvals/dashboard.html", selectors.dashboard_summary())


@require_GET
@staff_member_required
def mailbox(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "approvals/mailbox.html", {"emails": selectors.mailbox()})
