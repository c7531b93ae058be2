"""What every view module shares: the typed request and paging."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.core.paginator import Page, Paginator
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django_htmx.middleware import HtmxDetails

from approvals import selectors
from approvals.exceptions import NotFound
from approvals.models import ApprovalRequest

logger = logging.getLogger(__name__)


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def log_refused(request: HttpRequest, why: str) -> None:
    """Put on record that a logged-in person was refused a page or an action, and why."""
    logger.warning("Refused %s %s to %s: %s", request.method, request.path, request.user, why)


def visible_request(request: HtmxHttpRequest, public_id: str) -> ApprovalRequest:
    """The request if this person may see it; 404 otherwise, the same whether it exists or not
    (an attempt on one that exists is logged)."""
    try:
        return selectors.request_get_visible(user=request.user, public_id=public_id)
    except NotFound as exc:
        if ApprovalRequest.objects.filter(public_id=public_id).exists():
            log_refused(request, "not theirs to see")
        raise Http404(str(exc)) from exc


def form_errors(form: Form) -> str:
    """A form's errors as one sentence after another, to show where the form was sent from."""
    return " ".join(e for errors in form.errors.values() for e in errors)


PAGE_SIZE = 25


def page_of(request: HttpRequest, queryset: Any) -> Page:
    """One page of a list; a bad or too-large page number gives the first or last page."""
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def staff_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Django's staff_member_required (others are sent to log in as staff), logging the attempts
    of people who are logged in but not staff."""
    guarded = staff_member_required(view)

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated and not request.user.is_staff:
            log_refused(request, "staff only")
        return guarded(request, *args, **kwargs)

    return wrapper
