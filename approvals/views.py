from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import retarget
from django_htmx.middleware import HtmxDetails

from approvals import selectors, services
from approvals.exceptions import ApprovalError, InvalidInput, NotAllowed, NotFound
from approvals.forms import DecisionForm, RequestForm
from approvals.models import ApprovalRequest
from workflows.types import Decision

logger = logging.getLogger(__name__)


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _visible_request(request: HtmxHttpRequest, public_id: str) -> ApprovalRequest:
    try:
        return selectors.request_get_visible(user=request.user, public_id=public_id)
    except NotFound as exc:
        raise Http404(str(exc)) from exc


@require_GET
@login_required
def home(request: HtmxHttpRequest) -> HttpResponse:
    return render(
        request,
        "approvals/home.html",
        {
            "my_requests": selectors.request_list_for_requester(user=request.user)[:50],
            "pending_count": selectors.reviewer_pending_count(user=request.user),
        },
    )


@require_http_methods(["GET", "POST"])
@login_required
def request_create(request: HtmxHttpRequest) -> HttpResponse:
    form = RequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            data = dict(form.cleaned_data)
            approval = services.request_submit(
                requester=request.user, public_id=data.pop("submission_id"), **data
            )
        except InvalidInput as exc:
            form.add_error(None, str(exc))
        else:
            approval.refresh_from_db()
            if approval.workflow_started_at is None:
                messages.warning(
                    request,
                    "Your request is saved. The workflow service is not reachable right now; "
                    "review will start as soon as it is back, without you doing anything.",
                )
            else:
                messages.success(request, "Your request is submitted and waiting for review.")
            return redirect(approval)
    status = 400 if form.is_bound else 200
    return render(request, "approvals/request_create.html", {"form": form}, status=status)


@require_GET
@login_required
def request_detail(request: HtmxHttpRequest, public_id: str) -> HttpResponse:
    approval = _visible_request(request, public_id)
    context = {
        "r": approval,
        "live": services.request_live_state(request=approval),
        "may_decide": selectors.user_may_decide(user=request.user, request=approval),
        "events": approval.events.select_related("actor"),
        "approvers": approval.approvers.select_related("user").order_by("added_at"),
        "decision_form": DecisionForm(),
    }
    template = "approvals/request_detail.html"
    if request.htmx:
        template += "#status"
    return render(request, template, context)


@require_GET
@login_required
def inbox(request: HtmxHttpRequest) -> HttpResponse:
    template = "approvals/inbox.html"
    if request.htmx:
        template += "#inbox-list"
    return render(
        request,
        template,
        {"items": selectors.inbox_for_reviewer(user=request.user), "decision_form": DecisionForm()},
    )


@require_POST
@login_required
def request_decide(request: HtmxHttpRequest, public_id: str) -> HttpResponse:
    approval = (
        ApprovalRequest.objects.select_related("request_type", "requester", "decided_by")
        .filter(public_id=public_id)
        .first()
    )
    if approval is None:
        raise Http404("There is no such request.")
    form = DecisionForm(request.POST)
    error: str | None = None
    status = 200
    if not form.is_valid():
        error = " ".join(str(e) for errors in form.errors.values() for e in errors)
        status = 400
    else:
        try:
            services.decision_submit(
                request=approval,
                actor=request.user,
                decision=Decision(form.cleaned_data["decision"]),
                comment=form.cleaned_data["comment"],
            )
        except NotAllowed as exc:
            logger.warning("Refused decision by %s on %s: %s", request.user, approval.public_id, exc)
            error, status = str(exc), 403
        except ApprovalError as exc:
            error, status = str(exc), 409
    if error is None:
        if not request.htmx:
            messages.success(request, "Your decision is recorded.")
            return redirect(approval)
        context = {"r": approval, "live": services.request_live_state(request=approval), "sent": True}
        if request.htmx.target == f"decide-{approval.public_id}":
            return render(request, "approvals/request_detail.html#decide", context)
        return render(request, "approvals/inbox.html#inbox-row", context)
    if not request.htmx:
        return render(
            request, "approvals/decision_error.html", {"r": approval, "error": error}, status=status
        )
    response = render(
        request, "approvals/inbox.html#decision-error", {"r": approval, "error": error}, status=status
    )
    return retarget(response, f"#decision-error-{approval.public_id}")


@require_GET
@staff_member_required
def mailbox(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "approvals/mailbox.html", {"emails": selectors.mailbox()})
