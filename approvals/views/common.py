"""What every view module shares: the typed request and paging."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest
from django_htmx.middleware import HtmxDetails

from approvals import selectors
from approvals.exceptions import NotFound
from approvals.models import ApprovalRequest


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def visible_request(request: HtmxHttpRequest, public_id: str) -> ApprovalRequest:
    try:
        return selectors.request_get_visible(user=request.user, public_id=public_id)
    except NotFound as exc:
        raise Http404(str(exc)) from exc


PAGE_SIZE = 25


def page_of(request: HttpRequest, queryset: Any) -> Page:
    """One page of a list; a bad or too-large page number gives the first or last page."""
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))
