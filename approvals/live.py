"""Live updates: tell every open page that may show a request that it changed.

The sender (the projection activity, wherever the worker runs) names the request and the
people who may see it; each person's websocket consumer renders the fragments for that person
with the same partials the views use, and htmx's ws extension swaps them in by id.
"""

from __future__ import annotations

import logging
from typing import Any

from channels.layers import get_channel_layer
from django.contrib.auth.models import User
from django.template.loader import render_to_string

from approvals import selectors
from approvals.exceptions import NotFound
from approvals.forms import ActionForm, ResubmitForm
from approvals.models import ApprovalRequest, Participant
from workflows.types import RequestStatus

logger = logging.getLogger(__name__)
STAFF_GROUP = "live-staff"


def user_group(user_id: int) -> str:
    return f"live-user-{user_id}"


def audience(*, public_id: str) -> list[int]:
    """Everyone who may see the request, staff aside: its requester and its participants."""
    requester_id = (
        ApprovalRequest.objects.filter(public_id=public_id).values_list("requester_id", flat=True).first()
    )
    if requester_id is None:
        return []
    participants = Participant.objects.filter(request__public_id=public_id).values_list("user_id", flat=True)
    return sorted({requester_id, *participants})


async def send_changed(*, public_id: str, user_ids: list[int]) -> None:
    """Tell these people's pages, and staff pages, that the request changed."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "request.changed", "public_id": public_id}
    for group in [STAFF_GROUP, *(user_group(uid) for uid in user_ids)]:
        await layer.group_send(group, message)


VIEWS = ("inbox", "mine", "request", "dashboard")


def fragment_for(*, user: User, public_id: str, view: str, shown_id: str = "") -> str:
    """The HTML that the page `view` needs after the request changed ("" when it shows nothing
    of it, or the user may not see it). One element per message: table rows parse on their own."""
    if view == "request" and shown_id != public_id:
        return ""
    try:
        request = selectors.request_get_visible(user=user, public_id=public_id)
    except NotFound:
        return ""
    if view == "mine":
        if user.pk != request.requester_id:
            return ""
        row = selectors.request_list_for_requester(user=user).get(pk=request.pk)
        return render_to_string("approvals/home.html#mine-row", {"r": row}).strip()
    if view == "inbox":
        if user.pk == request.requester_id:
            return ""
        place = request.participants.filter(user=user).select_related("acting_for").first()
        request.mine = place
        pending = place is not None and place.pending
        context: dict[str, Any] = {"r": request, "pending_ids": {request.pk} if pending else set()}
        return render_to_string("approvals/inbox.html#inbox-row", context).strip()
    if view == "request":
        waiting = selectors.waiting_for(request=request)
        abilities = selectors.request_abilities(
            user=user,
            request=request,
            status=RequestStatus(request.status),
            pending_ids={p.user_id for p in waiting},
        )
        context = {
            "r": request,
            "pushed": True,
            "waiting": waiting,
            "events": selectors.request_timeline(request=request),
            "action_form": ActionForm(),
            "resubmit_form": ResubmitForm(instance=request),
            "user": user,
            **abilities,
        }
        return render_to_string("approvals/request_detail.html#pushed", context).strip()
    return ""


# A staff dashboard re-renders its summary at most this often, however fast requests change.
SUMMARY_COALESCE_SECONDS = 1.0


def dashboard_fragment() -> str:
    """The staff dashboard's live summary (the consumer checked that its user is staff)."""
    return render_to_string("approvals/dashboard.html#summary", selectors.dashboard_summary()).strip()
