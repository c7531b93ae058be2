"""The fragments a change of one request redraws, from the read model alone, for one person.

One context function per fragment family serves the page, the HTTP answer to an action and the
live push alike, so a person sees the same thing live and after a reload. What the person may be
working on (the forms they may be filling in, what they selected, the last answer they got) is
marked `hx-preserve`, so that no swap wipes it nor moves their focus; only the answer to their
own action draws that form, and the answer's place, afresh.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.http import QueryDict
from django.template.loader import render_to_string

from approvals import selectors
from approvals.exceptions import NotFound
from approvals.forms import ActionForm, InboxFilterForm, ResubmitForm
from approvals.models import AccessGrant, ApprovalRequest, Participant, PendingAction
from approvals.selectors import access as access_selectors
from approvals.selectors import campaigns as campaign_selectors
from approvals.selectors.agents import agent_action
from approvals.services.trouble import temporal_ui_url
from workflows import rules
from workflows.types import ActionResult, Held

REVIEW_PAGE_SIZE = 200  # reviews on one page of the Reviews tab: "select all" takes them all


def request_context(
    *,
    user: User,
    request: ApprovalRequest,
    result: ActionResult | None = None,
    fresh: str = "",
    refill: str = "",
) -> dict[str, Any]:
    """A request's page: its heading and content, what this person may do, its status and timeline.
    With `result`: the answer to the person's own action, from the form whose id is `fresh`;
    `refill`: the comment of a decision they just undid, back in the decision's form."""
    state = selectors.request_state(request=request)
    held = {h.action.actor_id: h for h in state.held}
    return {
        "r": request,
        "st": state,
        "may": selectors.request_abilities(user=user, request=request, state=state),
        # Who the stage waits for, each with the decision they made that is not in effect yet.
        "waiting": [(a, held.get(a.user_id)) for a in state.pending()]
        if request.status == "in_review"
        else [],
        "mine_held": held.get(user.pk),
        "refill": refill,
        "events": selectors.request_timeline(request=request),
        "agent": agent_action(request=request),
        "fulfilment": request.fulfilments.first() if request.fulfilment else None,
        "fulfils": bool(request.policy.get("fulfilment")),
        **_grant_context(user, request),
        "action_form": ActionForm(),
        "delegates": selectors.delegate_choices(state=state),
        "sent": selectors.pending_actions(user=user, requests=[request]).get(request.pk, []),
        "resubmit_form": ResubmitForm(instance=request),
        "result": result,
        "fresh": fresh,
        "user": user,
        # Staff follow the request's workflow into Temporal's UI (every run of it).
        "temporal_url": temporal_ui_url(workflow_id=request.workflow_id)
        if user.is_staff and request.workflow_started_at
        else "",
    }


def _grant_context(user: User, request: ApprovalRequest) -> dict[str, Any]:
    """The access the request granted, if any: its state, its history, what this person may do
    (no query for a request that asked for no access)."""
    if request.resource_id is None:
        return {"grant": None}
    grant = (
        AccessGrant.objects.select_related("resource", "holder", "request").filter(request=request).first()
    )
    if grant is None:
        return {"grant": None}
    return {
        "grant": grant,
        "grant_can": access_selectors.grant_abilities(user=user, grant=grant),
        "grant_events": list(grant.events.all()),
    }


def request_html(
    *,
    user: User,
    request: ApprovalRequest,
    result: ActionResult | None = None,
    fresh: str = "",
    refill: str = "",
) -> str:
    context = request_context(user=user, request=request, result=result, fresh=fresh, refill=refill)
    return render_to_string("approvals/request_detail.html#changed", context).strip()


def toast_html(*, user: User, request: ApprovalRequest, result: ActionResult) -> str:
    """For the answer to a decision held for its undo period: a toast that offers Undo until it
    takes effect ("" for any other answer)."""
    if result.undo_until is None:
        return ""
    held = rules.held_by(selectors.request_state(request=request), user.pk)
    if held is None:  # in effect already, or undone, by the time the read model was read
        return ""
    return render_to_string("approvals/_toast.html", {"r": request, "h": held}).strip()


def decision_context(*, user: User, request: ApprovalRequest, action_id: str) -> dict[str, Any]:
    """Where one of this person's decisions stands (the confirmation page of an email link)."""
    status, held = selectors.decision_status(request=request, action_id=action_id)
    context: dict[str, Any] = {"r": request, "status": status, "h": held, "action_id": action_id}
    if held is not None:
        context["noun"] = rules.NOUNS[held.action.kind]
    return context


@dataclass
class InboxRow:
    """One request in a reviewer's inbox: the request, the reviewer's place on it, what they may do."""

    r: ApprovalRequest
    mine: Participant
    may: rules.Abilities
    sent: list[PendingAction]  # their actions on it not confirmed yet
    held: Held | None = None  # their decision on it in its undo period
    others_held: list[Held] = field(default_factory=list)  # other people's, in theirs


def inbox_rows(*, user: User, places: list[Participant], recent: bool = False) -> list[InboxRow]:
    """The rows of a list of the inbox; "Recently on your desk" (`recent`) offers nothing to do,
    nor shows what is pending."""
    sent = {} if recent else selectors.pending_actions(user=user, requests=[p.request for p in places])
    return [_row(user, p.request, p, sent.get(p.request_id, []), recent=recent) for p in places]


def _row(
    user: User,
    request: ApprovalRequest,
    place: Participant,
    sent: list[PendingAction],
    *,
    recent: bool = False,
) -> InboxRow:
    if recent:
        return InboxRow(request, place, rules.Abilities(), sent)
    state = selectors.request_state(request=request)
    return InboxRow(
        request,
        place,
        selectors.request_abilities(user=user, request=request, state=state),
        sent,
        rules.held_by(state, user.pk),
        [h for h in state.held if h.action.actor_id != user.pk],
    )


def inbox_row_context(
    *,
    user: User,
    request: ApprovalRequest,
    place: Participant,
    filters: InboxFilterForm,
    result: ActionResult | None = None,
    fresh: str = "",
    refill: str = "",
    answer: bool = False,
) -> dict[str, Any]:
    """A request's rows in a reviewer's inbox: in the list the filters show (added on top when it
    newly belongs there), and in "Recently on your desk" once it no longer waits for them (but in
    an `answer` over HTTP, which leaves that to the push)."""
    chosen = filters.filters()
    on_first_page = filters.data.get("page") in (None, "", "1")
    listed = selectors.inbox_items(user=user, **chosen)
    belongs = listed.filter(pk=place.pk).exists()
    place.request = request
    return {
        "row": _row(
            user, request, place, selectors.pending_actions(user=user, requests=[request]).get(request.pk, [])
        ),
        "insert": belongs and on_first_page,
        # A row the list no longer holds stays where it is (nothing moves under the cursor), and
        # says so; the list's count is drawn again.
        "gone": not belongs,
        "state": chosen["state"],
        "count": listed.count(),
        "recent_shown": filters.is_default and chosen["state"] == "waiting",
        "result": result,
        "answer": answer,
        "fresh": fresh,
        "refill": refill,
    }


def inbox_html(
    *,
    user: User,
    request: ApprovalRequest,
    filters: InboxFilterForm,
    result: ActionResult | None = None,
    fresh: str = "",
    refill: str = "",
    answer: bool = False,
) -> str:
    place = request.participants.filter(user=user).select_related("acting_for").first()
    if place is None or user.pk == request.requester_id:
        return ""
    context = inbox_row_context(
        user=user,
        request=request,
        place=place,
        filters=filters,
        result=result,
        fresh=fresh,
        refill=refill,
        answer=answer,
    )
    return render_to_string("approvals/inbox.html#changed", context).strip()


def mine_html(*, user: User, request: ApprovalRequest) -> str:
    if user.pk != request.requester_id:
        return ""
    row = selectors.request_list_for_requester(user=user).get(pk=request.pk)
    return render_to_string("approvals/home.html#mine-row", {"r": row}).strip()


def access_context(*, user: User) -> dict[str, Any]:
    """ "My access": what this person holds (with what they may do to each), and the extensions
    waiting for their decision."""
    held = list(access_selectors.my_access(user=user))
    return {
        "held": [(g, access_selectors.grant_abilities(user=user, grant=g)) for g in held],
        "to_decide": access_selectors.extensions_waiting_for(user=user),
    }


def access_html(*, user: User) -> str:
    return render_to_string(
        "approvals/access_mine.html#access", {**access_context(user=user), "user": user}
    ).strip()


def reviews_context(*, user: User, page: str | None = None) -> dict[str, Any]:
    """The Reviews tab: the access reviews waiting for this person, a page of them."""
    items = campaign_selectors.reviews_open_for(user=user)
    shown = Paginator(items, REVIEW_PAGE_SIZE).get_page(page)
    return {"page": shown, "items": list(shown.object_list)}


def reviews_html(*, user: User, page: str | None = None) -> str:
    """The Reviews tab's list after a campaign changed (pushed: out of band)."""
    context = {**reviews_context(user=user, page=page), "user": user, "oob": True}
    return render_to_string("approvals/reviews.html#reviews-list", context).strip()


VIEWS = ("inbox", "mine", "request", "dashboard", "access", "reviews")


def pushed_html(*, user: User, public_id: str, view: str, shown_id: str = "", filters: str = "") -> str:
    """What the page `view` needs after the request changed (nothing of the request when it shows
    nothing of it, or the person may not see it), and this person's waiting count; `filters`: the
    inbox's query string, as the page last showed it."""
    return _shown_html(user=user, public_id=public_id, view=view, shown_id=shown_id, filters=filters) + (
        waiting_html(user=user)
    )


def _shown_html(*, user: User, public_id: str, view: str, shown_id: str, filters: str) -> str:
    if view == "request" and shown_id != public_id:
        return ""
    if view == "access":  # this person's own list, redrawn when an access changed
        grants = ApprovalRequest.objects.filter(public_id=public_id, resource__isnull=False)
        return access_html(user=user) if grants.exists() else ""
    try:
        request = selectors.request_get_visible(user=user, public_id=public_id)
    except NotFound:
        return ""
    if view == "request":
        return request_html(user=user, request=request)
    if view == "inbox":
        return inbox_html(user=user, request=request, filters=InboxFilterForm(QueryDict(filters)))
    if view == "mine":
        return mine_html(user=user, request=request)
    return ""


def waiting_html(*, user: User) -> str:
    """How many requests and access reviews wait for this person, as the navigation, their home
    page and the inbox's tabs show it, out of band: every push brings it, so that no count goes
    stale."""
    context = {
        "waiting_count": selectors.reviewer_pending_count(user=user),
        "reviews_count": campaign_selectors.reviews_open_count(user=user),
        "oob": True,
    }
    return render_to_string("approvals/_waiting.html", context).strip()


def dashboard_html(*, user: User) -> str:
    """The staff dashboard's live summary (the consumer checked that its user is staff), with
    this person's waiting count."""
    summary = render_to_string("approvals/dashboard.html#summary", selectors.dashboard_summary()).strip()
    return summary + waiting_html(user=user)
