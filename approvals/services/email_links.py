"""Approve and reject links in emails: signed for one reviewer, one request and one stage version.

A link works once, expires no later than the stage's deadline, and only while its stage is
open. Opening it (GET) changes nothing, since mail scanners open links; only the confirmation
(POST) acts, through a signal, so it works even while no worker runs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from approvals.exceptions import ApprovalError
from approvals.models import ApprovalRequest, EmailLinkUse
from approvals.services.actions import request_signal
from workflows.types import ActionKind, RequestStatus

SALT = "approvals.email-link"
LINK_ACTIONS = (ActionKind.APPROVE, ActionKind.REJECT)
LONGEST = timedelta(days=30)


class LinkRefused(ApprovalError):
    """The link cannot be used; `status` is the HTTP status for the page that says why."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class EmailLink:
    request: ApprovalRequest
    user_id: int
    action: ActionKind
    stage_version: int
    link_id: uuid.UUID
    expires_at: datetime
    action_sha256: str = ""  # an agent action's version, as the email showed it


def email_link_make(*, user: User, request: ApprovalRequest, action: ActionKind) -> str:
    """An absolute URL that lets `user` take `action` on the request's current stage, once."""
    expires = request.deadline or timezone.now() + LONGEST
    payload = {
        "r": str(request.public_id),
        "u": user.pk,
        "a": action.value,
        "v": request.stage_version,
        "n": uuid.uuid4().hex,
        "e": int(min(expires, timezone.now() + LONGEST).timestamp()),
    }
    if request.action_sha256:
        payload["h"] = request.action_sha256
    token = signing.dumps(payload, salt=SALT, compress=True)
    return settings.SITE_URL + reverse("email_action", args=[token])


def email_link_check(*, token: str, user: User) -> EmailLink:
    """The link, if this user may use it now; LinkRefused saying why otherwise."""
    try:
        data = signing.loads(token, salt=SALT)
        action = ActionKind(data["a"])
        if action not in LINK_ACTIONS:
            raise ValueError(action)
        public_id = uuid.UUID(data["r"])
        user_id, stage_version = int(data["u"]), int(data["v"])
        link_id = uuid.UUID(hex=data["n"])
        expires_at = datetime.fromtimestamp(int(data["e"]), tz=UTC)
        action_sha256 = str(data.get("h", ""))
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise LinkRefused("This link is not valid. Open the request from the app instead.", 400) from exc
    if user_id != user.pk:
        raise LinkRefused("This link was sent to someone else. Open the request from the app instead.", 403)
    request = (
        ApprovalRequest.objects.select_related("request_type", "requester")
        .filter(public_id=public_id)
        .first()
    )
    if request is None:
        raise LinkRefused("This request no longer exists.", 404)
    used = EmailLinkUse.objects.filter(link_id=link_id).first()
    if used is not None:
        raise LinkRefused(f"This link was already used on {used.used_at:%Y-%m-%d at %H:%M} UTC.", 409)
    if timezone.now() >= expires_at:
        raise LinkRefused("This link has expired. Open the request from the app to decide.", 410)
    if request.status != RequestStatus.IN_REVIEW:
        by = f" by {request.decided_by_name}" if request.decided_by_name else ""
        status = request.get_status_display().lower()
        raise LinkRefused(f"This request is {status}{by}; the link no longer works.", 409)
    waiting = request.participants.filter(user=user, pending=True).exists()
    if request.stage_version != stage_version or not waiting:
        raise LinkRefused(
            "The stage this link was for is closed or has started again; open the request instead.", 409
        )
    if action == ActionKind.APPROVE and request.action_sha256 != action_sha256:
        raise LinkRefused(
            "The action was edited since this email was sent: open the request to read it again.", 409
        )
    return EmailLink(request, user_id, action, stage_version, link_id, expires_at, action_sha256)


def email_link_use(*, token: str, user: User, comment: str = "") -> bool:
    """Use the link: record it (so it never works twice) and send the decision to the workflow,
    which shows as pending on the request until the read model confirms it. True once Temporal
    has it; False when that is not known (its deadline passed)."""
    link = email_link_check(token=token, user=user)
    try:
        with transaction.atomic():
            EmailLinkUse.objects.create(
                link_id=link.link_id, request=link.request, user=user, action=link.action.value
            )
            # The link id doubles as the action id, so even a signal sent twice counts once.
            return request_signal(
                request=link.request,
                actor=user,
                kind=link.action,
                comment=comment,
                action_id=link.link_id,
                action_sha256=link.action_sha256 or None,
            )
    except IntegrityError as exc:
        raise LinkRefused("This link was just used.", 409) from exc
