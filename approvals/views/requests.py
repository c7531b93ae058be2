"""Pages about requests: asking, the inbox, a request, acting on it, email links."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import retarget

from approvals import selectors, services
from approvals.exceptions import ApprovalError, InvalidInput, NotAllowed
from approvals.forms import (
    ActionForm,
    BulkActionForm,
    EmailConfirmForm,
    InboxFilterForm,
    RequestForm,
    ResubmitForm,
    RoutingPreviewForm,
)
from approvals.models import ApprovalRequest
from approvals.selectors.requests import InboxState
from approvals.views.common import HtmxHttpRequest, form_errors, page_of, visible_request
from workflows.types import ActionKind, ActionResult, RequestState, RequestStatus

logger = logging.getLogger(__name__)


def _detail_context(request: HtmxHttpRequest, approval: ApprovalRequest, **extra: Any) -> dict[str, Any]:
    live: RequestState | None = services.request_live_state(request=approval)
    if live is not None:
        pending_ids = {a.user_id for a in live.pending()}
        status = live.status
    else:
        pending_ids = {p.user_id for p in selectors.waiting_for(request=approval)}
        status = RequestStatus(approval.status)
    return {
        "r": approval,
        "live": live,
        "is_requester": request.user.pk == approval.requester_id,
        **selectors.request_abilities(
            user=request.user, request=approval, status=status, pending_ids=pending_ids
        ),
        "waiting": selectors.waiting_for(request=approval),
        "events": selectors.request_timeline(request=approval),
        "action_form": ActionForm(),
        "resubmit_form": ResubmitForm(instance=approval),
        **extra,
    }


@require_GET
@login_required
def home(request: HtmxHttpRequest) -> HttpResponse:
    state = request.GET.get("state", "")
    state = state if state in ("open", "closed") else ""
    return render(
        request,
        "approvals/home.html",
        {
            "page": page_of(request, selectors.request_list_for_requester(user=request.user, state=state)),
            "state": state,
            "states": [("", "All"), ("open", "Open"), ("closed", "Closed")],
            "pending_count": selectors.reviewer_pending_count(user=request.user),
        },
    )


@require_http_methods(["GET", "POST"])
@login_required
def request_create(request: HtmxHttpRequest) -> HttpResponse:
    form = RequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        try:
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
def request_preview(request: HtmxHttpRequest) -> HttpResponse:
    """Before submitting: who will be asked, and by when, for this type and amount."""
    form = RoutingPreviewForm(request.GET)
    context: dict[str, Any] = {"preview_form": form}
    if form.is_valid() and form.cleaned_data["request_type"] is not None:
        try:
            context["stages"] = services.routing_preview(
                requester=request.user,
                request_type=form.cleaned_data["request_type"],
                amount=form.cleaned_data["amount"],
            )
        except InvalidInput as exc:
            context["preview_error"] = str(exc)
    return render(request, "approvals/request_create.html#routing-preview", context)


@require_GET
@login_required
def request_detail(request: HtmxHttpRequest, public_id: str) -> HttpResponse:
    approval = visible_request(request, public_id)
    template = "approvals/request_detail.html"
    if request.htmx:
        template += "#status"
    return render(request, template, _detail_context(request, approval))


def _inbox_context(
    request: HtmxHttpRequest, *, decided: Sequence[uuid.UUID] = (), **extra: Any
) -> dict[str, Any]:
    """The inbox as filtered by the query string; `decided`: just decided here, so left out even
    before their workflows' projections reach the read model."""
    filters = InboxFilterForm(request.GET)
    chosen = filters.filters()
    items = selectors.inbox_items(user=request.user, **chosen).exclude(request__public_id__in=decided)
    page = page_of(request, items)
    rows = []
    for place in page:
        place.request.mine = place
        rows.append(place.request)
    default = filters.is_default
    return {
        "filters": filters,
        "state": chosen["state"],
        "filtered": not default or chosen["state"] != InboxState.WAITING,
        "live_insert": default,
        "page": page,
        "rows": rows,
        "pending_ids": {p.request_id for p in page if p.pending},
        "requesters": selectors.inbox_requesters(user=request.user),
        "recent": selectors.inbox_recent(user=request.user, limit=10)
        if default and chosen["state"] == InboxState.WAITING and page.number == 1
        else [],
        **extra,
    }


@require_GET
@login_required
def inbox(request: HtmxHttpRequest) -> HttpResponse:
    template = "approvals/inbox.html"
    if request.htmx:
        template += "#inbox-list"
    return render(request, template, _inbox_context(request))


@require_POST
@login_required
def inbox_bulk(request: HtmxHttpRequest) -> HttpResponse:
    """Approve or reject the selected requests; the inbox comes back with one answer per request."""
    template = "approvals/inbox.html"
    if request.htmx:
        template += "#inbox-list"
    form = BulkActionForm(request.POST)
    if not form.is_valid():
        context = _inbox_context(
            request, bulk_error=form_errors(form), bulk_comment=request.POST.get("comment", "")
        )
        return render(request, template, context, status=400)
    data = form.cleaned_data
    outcomes = services.requests_act_bulk(
        actor=request.user,
        public_ids=data["ids"],
        kind=ActionKind(data["kind"]),
        comment=data["comment"],
        bulk_id=data["bulk_id"],
    )
    done = sum(o.ok for o in outcomes)
    context = _inbox_context(
        request,
        decided=[o.public_id for o in outcomes if o.ok],
        bulk_results=outcomes,
        bulk_done=done,
        bulk_refused=len(outcomes) - done,
    )
    return render(request, template, context)


def _refused(request: HtmxHttpRequest, approval: ApprovalRequest, error: str, status: int) -> HttpResponse:
    if not request.htmx:
        return render(request, "approvals/action_error.html", {"r": approval, "error": error}, status=status)
    response = render(
        request, "approvals/inbox.html#action-error", {"r": approval, "error": error}, status=status
    )
    return retarget(response, f"#action-error-{approval.public_id}")


def _acted(request: HtmxHttpRequest, approval: ApprovalRequest, result: ActionResult) -> HttpResponse:
    if not request.htmx:
        messages.success(request, result.message)
        return redirect(approval)
    approval.refresh_from_db()
    if request.htmx.target == f"actions-{approval.public_id}":
        context = _detail_context(request, approval, result=result, oob=True)
        return render(request, "approvals/request_detail.html#after-action", context)
    live = services.request_live_state(request=approval)
    return render(
        request,
        "approvals/inbox.html#inbox-row",
        {"r": approval, "live": live, "result": result, "pending_ids": set(), "action_form": ActionForm()},
    )


def _act(
    request: HtmxHttpRequest, public_id: str, form: ActionForm | ResubmitForm, **action: Any
) -> HttpResponse:
    """Validate the form, take the action through the workflow, answer with the new state or why not.

    Someone who may not see the request is told it is not there (404), as on its page."""
    approval = visible_request(request, public_id)
    if not form.is_valid():
        return _refused(request, approval, form_errors(form), 400)
    data = form.cleaned_data
    kind = action.pop("kind", None) or ActionKind(data["kind"])
    try:
        result = services.request_act(
            request=approval,
            actor=request.user,
            kind=kind,
            comment=data["comment"],
            action_id=data["action_id"],
            **{name: value(data) for name, value in action.items()},
        )
    except NotAllowed as exc:
        logger.warning("Refused %s by %s on %s: %s", kind, request.user, public_id, exc)
        return _refused(request, approval, str(exc), 403)
    except ApprovalError as exc:
        return _refused(request, approval, str(exc), 409)
    return _acted(request, approval, result)


@require_POST
@login_required
def request_act(request: HtmxHttpRequest, public_id: str) -> HttpResponse:
    form = ActionForm(request.POST)
    return _act(
        request,
        public_id,
        form,
        delegate=lambda data: data.get("delegate"),
        extend_by=lambda data: form.extension,
    )


@require_POST
@login_required
def request_resubmit(request: HtmxHttpRequest, public_id: str) -> HttpResponse:
    return _act(
        request,
        public_id,
        ResubmitForm(request.POST),
        kind=ActionKind.RESUBMIT,
        title=lambda data: data["title"],
        details=lambda data: data["details"],
        amount=lambda data: data["amount"],
    )


@require_http_methods(["GET", "POST"])
@login_required
def email_action(request: HtmxHttpRequest, token: str) -> HttpResponse:
    """An approve/reject link from an email: GET asks to confirm and changes nothing; POST acts."""
    template = "approvals/email_action.html"
    try:
        link = services.email_link_check(token=token, user=request.user)
    except services.LinkRefused as exc:
        logger.warning("Refused email link for %s: %s", request.user, exc)
        return render(request, template, {"refused": str(exc)}, status=exc.status)
    context: dict[str, Any] = {"link": link, "r": link.request, "token": token}
    if request.method == "POST":
        form = EmailConfirmForm(request.POST)
        comment = request.POST.get("comment", "")[:4000]
        if not form.is_valid():
            error = form_errors(form)
            return render(request, template, {**context, "error": error, "comment": comment}, status=400)
        comment = form.cleaned_data["comment"]
        try:
            services.email_link_use(token=token, user=request.user, comment=comment)
        except services.LinkRefused as exc:
            return render(request, template, {"refused": str(exc)}, status=exc.status)
        except ApprovalError as exc:
            return render(request, template, {**context, "error": str(exc), "comment": comment}, status=400)
        return render(request, template, {**context, "done": True})
    return render(request, template, context)
