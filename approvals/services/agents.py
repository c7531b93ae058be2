"""Agent actions: a software agent asks before it acts, and the yes it gets holds for one exact
action only.

An agent action is a request naming a tool and its arguments. Their canonical JSON (RFC 8785,
so that the same action hashes the same whoever serialises it) and its SHA-256 are kept; the
workflow carries the hash, and an approval names the version its approver saw. Once approved,
the requester (the agent's account) gets an approval token signed over the request, the hash
and an expiry; whoever is about to act presents it with the arguments, and the verification
answers yes once, and only for those arguments.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import rfc8785
from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals.exceptions import InvalidInput
from approvals.models import ActionArguments, ApprovalRequest, ApprovalTokenUse, RequestType
from workflows.types import RISKS, RequestStatus

MAX_ACTION_BYTES = 16_000  # an action's canonical JSON at most: reviewers read it whole
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.:/-]{1,100}$")
MAX_AGENT_NAME = 100
DEFAULT_RISK = "medium"  # an action whose agent gives no risk counts as this
TOKEN_SALT = "approvals.agent-approval-token"


@dataclass(frozen=True)
class ProposedAction:
    """What an agent asks to do, checked and canonicalised."""

    agent: str
    tool: str
    risk: str
    canonical: str
    sha256: str


def canonical_action(*, tool: str, arguments: Any) -> tuple[str, str]:
    """The action's canonical JSON and its SHA-256 (hex): the same for the same tool and
    arguments, whatever order or spacing they were sent in. InvalidInput when they cannot be."""
    if not isinstance(tool, str) or not TOOL_NAME.match(tool):
        raise InvalidInput(
            "A tool's name is 1 to 100 letters, digits and _ . : / - (such as “orders.refund”)."
        )
    if not isinstance(arguments, dict):
        raise InvalidInput("The arguments are a JSON object, of the names and values the tool takes.")
    try:
        data = rfc8785.dumps({"tool": tool, "arguments": arguments})
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise InvalidInput(f"These arguments have no canonical JSON: {exc}") from exc
    if len(data) > MAX_ACTION_BYTES:
        raise InvalidInput(f"An action is limited to {MAX_ACTION_BYTES:,} bytes of JSON.")
    return data.decode(), hashlib.sha256(data).hexdigest()


def action_propose(*, agent: str, tool: str, arguments: Any, risk: str | None) -> ProposedAction:
    agent = (agent or "").strip()
    if not agent or len(agent) > MAX_AGENT_NAME or not agent.isprintable():
        raise InvalidInput(f"Name the agent, in 1 to {MAX_AGENT_NAME} printable characters.")
    if risk in (None, ""):
        risk = DEFAULT_RISK
    if risk not in RISKS:
        raise InvalidInput(f"A risk is one of {', '.join(RISKS)}.")
    canonical, sha256 = canonical_action(tool=tool, arguments=arguments)
    return ProposedAction(agent=agent, tool=tool, risk=risk, canonical=canonical, sha256=sha256)


def agent_type_default() -> RequestType | None:
    """The type an agent action goes to when the agent names none: the only active one."""
    types = list(RequestType.objects.filter(for_agents=True, is_active=True)[:2])
    return types[0] if len(types) == 1 else None


def action_version_keep(*, request: ApprovalRequest, actor: User, arguments: Any) -> str:
    """Keep the arguments a reviewer approves instead of the agent's (approving with edits), as a
    version of the request's action, and return its hash. The tool stays the same."""
    canonical, sha256 = canonical_action(tool=request.tool, arguments=arguments)
    ActionArguments.objects.get_or_create(
        request=request, sha256=sha256, defaults={"canonical": canonical, "proposed_by": actor}
    )
    return sha256


def action_arguments(request: ApprovalRequest, sha256: str) -> Any:
    """The arguments of this version of the request's action (None if none is kept)."""
    version = ActionArguments.objects.filter(request=request, sha256=sha256).first()
    return json.loads(version.canonical)["arguments"] if version else None


# --- The approval token -------------------------------------------------------------------


def token_expiry(request: ApprovalRequest) -> datetime | None:
    if request.decided_at is None:
        return None
    return request.decided_at + timedelta(seconds=settings.AGENT_TOKEN_SECONDS)


def approval_token(request: ApprovalRequest) -> str | None:
    """The approved action's token: signed (with the site's secret key) over the request, the
    hash of the version approved and an expiry. None unless the action is approved."""
    expires = token_expiry(request)
    if request.status != RequestStatus.APPROVED or not request.action_sha256 or expires is None:
        return None
    claims = {
        "request": str(request.public_id),
        "sha256": request.action_sha256,
        "exp": int(expires.timestamp()),
    }
    return "apt_" + signing.Signer(salt=TOKEN_SALT).sign_object(claims)


@dataclass(frozen=True)
class Verdict:
    """The answer to "may I do this now?": `valid` once, for the exact action approved."""

    valid: bool
    code: str  # approved, not_a_token, expired, not_approved, arguments_differ, used
    message: str
    request: ApprovalRequest | None = None
    sha256: str = ""


def approval_verify(*, token: str, tool: str, arguments: Any, by: User | None) -> Verdict:
    """Whether this token approves this exact action now. The first yes uses it up."""
    try:
        if not isinstance(token, str) or not token.startswith("apt_"):
            raise signing.BadSignature
        claims = signing.Signer(salt=TOKEN_SALT).unsign_object(token.removeprefix("apt_"))
        public_id, approved_sha, expires = claims["request"], claims["sha256"], claims["exp"]
    except (signing.BadSignature, KeyError, TypeError):
        return Verdict(False, "not_a_token", "This is not an approval token of this app (or it was altered).")
    request = ApprovalRequest.objects.filter(public_id=public_id).first()
    if request is None:
        return Verdict(False, "not_a_token", "This token's request is not here.")
    if timezone.now().timestamp() >= expires:
        return Verdict(False, "expired", "This approval token has expired: ask again.", request, approved_sha)
    if request.status != RequestStatus.APPROVED or request.action_sha256 != approved_sha:
        return Verdict(False, "not_approved", "This action is not approved.", request, approved_sha)
    try:
        _, sha256 = canonical_action(tool=tool, arguments=arguments)
    except InvalidInput:
        sha256 = ""
    if sha256 != approved_sha:
        message = "These are not the arguments that were approved: this token holds for those only."
        return Verdict(False, "arguments_differ", message, request, approved_sha)
    try:
        with transaction.atomic():
            ApprovalTokenUse.objects.create(request=request, sha256=sha256, used_by=by)
    except IntegrityError:
        use = ApprovalTokenUse.objects.get(request=request)
        message = f"This approval token was used already, at {use.used_at:%Y-%m-%d %H:%M:%S} UTC."
        return Verdict(False, "used", message, request, approved_sha)
    return Verdict(True, "approved", "Approved: go ahead, once.", request, approved_sha)
