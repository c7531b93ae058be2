"""Access: what I hold and until when ("My access"), every grant for staff (filtered, exported),
and what people do to a grant: ask for more time, decide an extension, revoke."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from approvals import services
from approvals.exceptions import ActionPending, ApprovalError
from approvals.models import AccessGrant, Resource
from approvals.selectors import access as selectors
from approvals.views import fragments
from approvals.views.common import HtmxHttpRequest, form_errors, log_refused, page_of, staff_only
from approvals.views.dashboard import _cell, _Echo
from workflows import rules
from workflows.types import GrantActionKind


class GrantActionForm(forms.Form):
    kind = forms.ChoiceField(choices=[(k.value, k.value) for k in GrantActionKind])
    days = forms.IntegerField(required=False, min_value=1, max_value=rules.MAX_GRANT_DAYS)
    reason = forms.CharField(required=False, max_length=rules.MAX_COMMENT)
    next = forms.CharField(required=False, max_length=500)


class GrantFilterForm(forms.Form):
    resource = forms.ChoiceField(required=False)
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *AccessGrant.Status.choices])
    q = forms.CharField(required=False, max_length=100, label="Holder")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        codes = Resource.objects.values_list("code", "name")
        self.fields["resource"].choices = [("", "Any resource"), *codes]  # type: ignore[attr-defined]

    def chosen(self) -> dict[str, str]:
        data = self.cleaned_data if self.is_valid() else {}
        return {
            "resource": data.get("resource") or "",
            "status": data.get("status") or "",
            "search": (data.get("q") or "").strip(),
        }


@require_GET
@login_required
def access_mine(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "approvals/access_mine.html", fragments.access_context(user=request.user))


@require_GET
@staff_only
def access_all(request: HtmxHttpRequest) -> HttpResponse:
    form = GrantFilterForm(request.GET)
    chosen = form.chosen()
    context = {
        "form": form,
        "page": page_of(request, selectors.grants(**chosen)),
        "query": request.GET.urlencode(),
    }
    return render(request, "approvals/access_all.html", context)


@require_GET
@staff_only
def access_export(request: HtmxHttpRequest) -> StreamingHttpResponse:
    chosen = GrantFilterForm(request.GET).chosen()
    writer = csv.writer(_Echo())

    def rows() -> Iterator[str]:
        yield writer.writerow(selectors.EXPORT_COLUMNS)
        for row in selectors.grants_export(**chosen):
            yield writer.writerow([_cell(value) for value in row])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="access.csv"'
    return response


@require_POST
@login_required
def access_act(request: HtmxHttpRequest, public_id: str) -> HttpResponse:
    grant = (
        AccessGrant.objects.select_related("request", "resource", "holder")
        .filter(request__public_id=public_id)
        .first()
    )
    user = request.user
    if grant is None or not (
        user.is_staff or user.pk == grant.holder_id or user.pk in (grant.approver_ids or [])
    ):
        if grant is not None:
            log_refused(request, "not their access")
        raise Http404("No such access.")
    form = GrantActionForm(request.POST)
    back = str(request.POST.get("next") or "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = ""
    if not form.is_valid():
        messages.error(request, form_errors(form))
        return redirect(back or "access_mine")
    data = form.cleaned_data
    try:
        said = services.grant_act(
            grant=grant,
            actor=user,
            kind=GrantActionKind(data["kind"]),
            days=data.get("days") or 0,
            reason=data.get("reason") or "",
        )
    except ActionPending as exc:
        messages.info(request, str(exc))
    except ApprovalError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, said)
    return redirect(back or "access_mine")
