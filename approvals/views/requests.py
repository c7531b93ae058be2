"""Pages about requests: asking, the inbox, a request, acting on it, email links."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import reswap, retarget

from approvals import selectors, services
from approvals.exceptions import ActionPending, ApprovalError, InvalidInput, NotAllowed
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
from approvals.selectors.agents import agent_action
from approvals.selectors.requests import InboxState
from approvals.views import fragments
from approvals.views.common import HtmxHttpRequest, form_errors, log_refused, page_of, visible_request
from workflows import rules
from workflows.types import ActionKind, ActionResult


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
            if approval.workflow_stopped:
                messages.error(
                    request,
                    "Your request is saved, but the workflow service refused to start its review "
                    f"({approval.workflow_stopped}). Staff see it on their dashboard.",
                )
            elif approval.workflow_started_at is None:
                messages.warning(
                    request,
                    "Your request is saved. The workflow service is not reachable right now; "
                    "review will start as soon as it is back, without you doing anything.",
                )
            else:
                # True while it waits for review: the page drops it once a change says otherwise.
                messages.success(
                    request, "Your request is submitted and waiting for review.", extra_tags="while-in-review"
                )
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
            context["distinct_approvers"] = form.cleaned_data["request_type"].distinct_approvers
        except InvalidInput as exc:
            context["preview_error"] = str(exc)
    return render(request, "approvals/request_create.html#routing-preview", context)


@require_GET
@login_required
def request_detail(request: HtmxHttpRequest, public_id: str) -> HttpResponse:
    approval = visible_request(request, public_id)
    template = "approvals/request_detail.html"
    if request.htmx:
        template += "#changed"
    return render(request, template, fragments.request_context(user=request.user, request=approval))


def _inbox_context(request: HtmxHttpRequest, **extra: Any) -> dict[str, Any]:
    """The inbox as filtered by the query string."""
    filters = InboxFilterForm(request.GET)
    chosen = filters.filters()
    page = page_of(request, selectors.inbox_items(user=request.user, **chosen))
    default = filters.is_default
    recent = []
    if default and chosen["state"] == InboxState.WAITING and page.number == 1:
        recent = selectors.inbox_recent(user=request.user, limit=10)
    return {
        "filters": filters,
        "state": chosen["state"],
        "filtered": not default or chosen["state"] != InboxState.WAITING,
        "page": page,
        "rows": fragments.inbox_rows(user=request.user, places=list(page)),
        "recent": fragments.inbox_rows(user=request.user, places=recent, recent=True),
        **extra,
    }


@require_GET
@login_required
def inbox(request: HtmxHttpRequest) -> HttpResponse:
    template = "approvals/inbox.html"
    if request.htmx:
        template += "#inbox-list"
    return render(request, template, _inbox_context(request))


@require_GET
@login_required
def inbox_requesters(request: HtmxHttpRequest) -> HttpResponse:
    """The requester filter's suggestions: the people whose requests wait for this person."""
    requesters = selectors.inbox_requesters(user=request.user)
    return render(request, "approvals/inbox.html#requester-options", {"requesters": requesters})


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
        undo_of=data.get("undo_of"),
    )
    done, pending = sum(o.ok for o in outcomes), sum(o.pending for o in outcomes)
    context = _inbox_context(
        request,
        bulk_id=data["bulk_id"],
        bulk_verb="undone" if data["kind"] == ActionKind.UNDO else "done",
        bulk_held=[o for o in outcomes if o.undo_until],
        bulk_results=outcomes,
        bulk_done=done,
        bulk_pending=pending,
        bulk_refused=len(outcomes) - done - pending,
    )
    return render(request, template, context)


def _refused(request: HtmxHttpRequest, approval: ApprovalRequest, error: str, status: int) -> HttpResponse:
    """Why the action was not taken, where the person acted; what they typed stays as it was."""
    context = {"r": approval, "error": error}
    if not request.htmx:
        return render(request, "approvals/action_error.html", context, status=status)
    response = render(request, "approvals/_answer_error.html", context, status=status)
    return reswap(retarget(response, f"#answer-{approval.public_id}"), "outerHTML")


def _acted(
    request: HtmxHttpRequest,
    approval: ApprovalRequest,
    result: ActionResult | None,
    pending: str = "",
    refill: str = "",
) -> HttpResponse:
    """The answer: what changed, drawn as a live push draws it (the update answers once the read
    model shows the action), with the workflow's own words in the answer's place; a decision
    held for its undo period adds a toast that offers Undo.

    With no answer in time (`pending` says so, 202), the same, with the action shown as pending
    until the read model confirms it, and the form as it was sent: sent again, it counts once.
    `refill`: the comment of the decision just undone, back in its form."""
    if not request.htmx:
        if result:
            messages.success(request, result.message)
        else:
            messages.warning(request, pending)
        return redirect(approval)
    approval.refresh_from_db()
    page = urlsplit(request.htmx.current_url_abs_path or "")
    fresh = (request.htmx.trigger or "") if result else ""  # the form sent: it alone comes back as new
    if page.path == reverse("inbox"):
        filters = InboxFilterForm(QueryDict(page.query))
        html = fragments.inbox_html(
            user=request.user,
            request=approval,
            filters=filters,
            result=result,
            fresh=fresh,
            refill=refill,
            answer=True,
        )
    else:
        html = fragments.request_html(
            user=request.user, request=approval, result=result, fresh=fresh, refill=refill
        )
    if result:
        html += fragments.toast_html(user=request.user, request=approval, result=result)
    return HttpResponse(html, status=202 if pending else 200)


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
    # An undone decision's comment goes back into its form (its held event keeps it).
    target = data.get("target", "")
    refill = selectors.held_comment(request=approval, action_id=target) if kind == ActionKind.UNDO else ""
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
        log_refused(request, f"{kind}: {exc}")
        return _refused(request, approval, str(exc), 403)
    except InvalidInput as exc:
        return _refused(request, approval, str(exc), 400)
    except ActionPending as exc:
        return _acted(request, approval, None, pending=str(exc))
    except ApprovalError as exc:
        return _refused(request, approval, str(exc), 409)
    return _acted(request, approval, result, refill=refill)


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
        target_id=lambda data: data.get("target", ""),
        action_sha256=lambda data: data.get("action_sha256") or None,
        edited_arguments=lambda data: data.get("arguments"),
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
        log_refused(request, f"email link: {exc}")
        return render(request, template, {"refused": str(exc)}, status=exc.status)
    context: dict[str, Any] = {
        "link": link,
        "r": link.request,
        "token": token,
        "noun": rules.NOUNS[link.action],
        "agent": agent_action(request=link.request),
    }
    if request.method == "POST":
        form = EmailConfirmForm(request.POST, action=link.action)
        comment = request.POST.get("comment", "")[: rules.MAX_COMMENT]
        if not form.is_valid():
            error = form_errors(form)
            return render(request, template, {**context, "error": error, "comment": comment}, status=400)
        comment = form.cleaned_data["comment"]
        try:
            delivered = services.email_link_use(token=token, user=request.user, comment=comment)
        except services.LinkRefused as exc:
            return render(request, template, {"refused": str(exc)}, status=exc.status)
        except ApprovalError as exc:
            return render(request, template, {**context, "error": str(exc), "comment": comment}, status=400)
        link_id = str(link.link_id)  # the decision's action id
        decision = fragments.decision_context(user=request.user, request=link.request, action_id=link_id)
        return render(request, template, {**context, "done": True, "delivered": delivered, **decision})
    return render(request, template, context)


@require_GET
@login_required
def decision_status(request: HtmxHttpRequest, public_id: str, action_id: str) -> HttpResponse:
    """Where one of this person's decisions on the request stands (sent, held with Undo, in
    effect, undone or let go): the confirmation page of an email link asks until it settles."""
    approval = visible_request(request, public_id)
    context = fragments.decision_context(user=request.user, request=approval, action_id=action_id)
    context["delivered"] = request.GET.get("delivered") == "1"  # as the page first said
    if context["h"] is not None and context["h"].action.actor_id != request.user.pk:
        context.update(status=selectors.Decision.UNKNOWN, h=None)  # someone else's: nothing to say
    return render(request, "approvals/email_action.html#decision", context)
