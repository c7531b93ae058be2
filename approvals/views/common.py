"""What every view module shares: the typed request and paging."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Page, Paginator
from django.forms import BaseForm
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django_htmx.middleware import HtmxDetails

from approvals import audit, selectors
from approvals.exceptions import NotFound
from approvals.models import ApprovalRequest


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails
    user: User  # every view of ours needs someone logged in (login_required, staff_only)


def log_refused(request: HttpRequest, why: str) -> None:
    """Put on record that a logged-in person was refused a page or an action, and why."""
    audit.log_refused(request.user, f"{request.method} {request.path}", why)


def visible_request(request: HtmxHttpRequest, public_id: str) -> ApprovalRequest:
    """The request if this person may see it; 404 otherwise, the same whether it exists or not
    (an attempt on one that exists is logged)."""
    try:
        return selectors.request_get_visible(user=request.user, public_id=public_id)
    except NotFound as exc:
        if ApprovalRequest.objects.filter(public_id=public_id).exists():
            log_refused(request, "not theirs to see")
        raise Http404(str(exc)) from exc


def form_errors(form: BaseForm) -> str:
    """A form's errors as one sentence after another, to show where the form was sent from. A
    field's follow its label ("From: Enter a valid date."), so that two alike say which is which,
    unless they name it already ("A comment is required …")."""
    parts = []
    for name, errors in form.errors.items():
        said = " ".join(str(e) for e in errors)
        field = form.fields.get(name)
        label = str(field.label or name) if field is not None else ""
        parts.append(f"{label}: {said}" if label and label.lower() not in said.lower() else said)
    return " ".join(parts)


PAGE_SIZE = 25


def page_of(request: HttpRequest, queryset: Any) -> Page:
    """One page of a list; a bad or too-large page number gives the first or last page."""
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def staff_only(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """For staff: others are sent to log in; a person logged in but not staff gets a page that
    says so (403), and the attempt is put on record."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            log_refused(request, "staff only")
            return render(request, "403.html", {"staff_only": True}, status=403)
        return view(request, *args, **kwargs)

    return wrapper
