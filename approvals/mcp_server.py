"""The MCP server: an agent that speaks the Model Context Protocol asks here before it acts, waits
for a person's decision, and checks the approval it got just before acting.

Its three tools are the agent-action API's (approvals.api.routes) in MCP's terms, over the same
services: `request_approval` submits an exact action and waits for the decision, telling the
client how the wait goes in progress notifications; `approval_status` looks (and waits again);
`verify_approval` spends the approval token. Every call is made as the owner of an API token,
checked on every call as the API checks it (usable, its scope, its rate limit, and put on its
record): the `Authorization: Bearer` header over streamable HTTP (served by the web app at
/mcp), the `APPROVALS_API_TOKEN` of the process over stdio (`manage.py mcp`).

A wait holds no thread: it sleeps on the channel layer as the API's wait does (see
approvals.services.waiting), and wakes at least every `MCP_PROGRESS_SECONDS` to report progress.
A decision that has not come when the wait ends is answered as pending, never as a failure.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from django.conf import settings
from django.contrib.auth.models import User
from django.http.request import split_domain_port, validate_host
from django.urls import reverse
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel, Field

from approvals import audit, selectors, services
from approvals.api import schemas
from approvals.exceptions import ApprovalError, InvalidInput, NotAllowed
from approvals.models import ActionArguments, ApiToken, ApprovalRequest, RequestType
from approvals.services import agents, tokens, waiting
from workflows.types import RISKS, RequestStatus

PATH = "/mcp"
KEYS = uuid.UUID("1f0b6a52-5b9e-4c51-9a57-6d0b2f3b7c1e")  # namespace of idempotency keys' request ids

# The token of a stdio server's process (`manage.py mcp`); over HTTP, each call's own header.
process_token: contextvars.ContextVar[str | None] = contextvars.ContextVar("process_token", default=None)

Decision = Literal[
    "approved", "rejected", "expired", "withdrawn", "cancelled", "changes_requested", "pending"
]
DECISIONS: dict[str, Decision] = {
    RequestStatus.APPROVED: "approved",
    RequestStatus.REJECTED: "rejected",
    RequestStatus.EXPIRED: "expired",
    RequestStatus.WITHDRAWN: "withdrawn",
    RequestStatus.CANCELLED: "cancelled",
    RequestStatus.CHANGES_REQUESTED: "changes_requested",
}

# What the agent is told, by decision: the one place these sentences live.
TELL: dict[Decision, str] = {
    "approved": (
        "Approved. Before you act, present approval_token with exactly these arguments to "
        "verify_approval; act only if it answers valid, and only once."
    ),
    "rejected": "Rejected: do not act. The comment says why.",
    "expired": "Nobody decided in time, and an expired request means no: do not act.",
    "withdrawn": "The request was withdrawn: do not act.",
    "cancelled": "The request was cancelled: do not act.",
    "changes_requested": (
        "A reviewer asked for changes (see the comment): do not act; ask again with a new action."
    ),
    "pending": "Not decided yet: call approval_status with this request_id to wait again. Do not act.",
}
UNUSABLE = "This API token is not usable: it is unknown, revoked or expired, or its owner left."
EDITED = " A reviewer approved it with edits: act with the arguments given here, not the ones you proposed."

server = MCPServer(
    "approvals",
    title="Approvals",
    instructions=(
        "Ask a person before you take an action that needs one. Call request_approval with the "
        "tool you mean to call and its exact arguments; it waits for the decision. If it is "
        "approved, call verify_approval with the approval token and the arguments just before "
        "you act, and act only on a valid answer. Anything but approved means do not act."
    ),
)


# --- Who calls --------------------------------------------------------------------------------


def _bearer(headers: Any) -> str:
    value = (headers.get("authorization") or "").strip()
    scheme, _, plain = value.partition(" ")
    return plain.strip() if scheme.lower() == "bearer" else ""


def _plain_token(ctx: Context) -> str:
    request = ctx.request_context.request
    if request is not None:  # streamable HTTP: this call's header
        return _bearer(request.headers)
    return process_token.get() or ""


def _caller(plain: str, scope: str, tool: str) -> tuple[ApiToken, User]:
    """The token's owner, if the token may make this call now (NotAllowed says why not)."""
    token = tokens.token_authenticate(plain=plain)
    if token is None:
        raise NotAllowed(UNUSABLE)
    if wait := tokens.token_rate_wait(token=token):
        tokens.token_use_record(token=token, method="MCP", path=f"{PATH} {tool}", status=429)
        raise NotAllowed(f"This token made too many calls; try again in {wait} s.")
    try:
        tokens.token_require(token=token, scope=scope)
    except NotAllowed as exc:
        audit.log_refused(token.user, f"MCP {tool} (token {token.pk})", str(exc))
        tokens.token_use_record(token=token, method="MCP", path=f"{PATH} {tool}", status=403)
        raise
    return token, token.user


async def _as_caller(ctx: Context, scope: str, tool: str, work: Callable[[User], Any]) -> Any:
    """Run `work(user)` (which reads or writes the database) as the caller, in the shared pool,
    and put the call on the token's record. An error the person can act on becomes the tool's
    error, in their words."""

    def run() -> Any:
        token, user = _caller(_plain_token(ctx), scope, tool)
        try:
            result = work(user)
        except ApprovalError as exc:
            tokens.token_use_record(token=token, method="MCP", path=f"{PATH} {tool}", status=422)
            raise ToolError(str(exc)) from exc
        tokens.token_use_record(token=token, method="MCP", path=f"{PATH} {tool}", status=200)
        return user, result

    try:
        return await waiting.pooled(run)()
    except NotAllowed as exc:
        raise ToolError(str(exc)) from exc


# --- What the agent is answered ---------------------------------------------------------------


class Outcome(BaseModel):
    """Where an approval stands, as the agent that asked reads it."""

    request_id: str = Field(description="The request's id: ask approval_status about it.")
    url: str = Field(description="Its page, where people decide.")
    decision: Decision
    status: str = Field(description="The request's status, as the API says it.")
    decided_by: str
    comment: str = Field(description="What the person who decided said.")
    tool: str
    arguments: dict[str, Any] = Field(description="The arguments approved (or under review): act with these.")
    sha256: str = Field(description="SHA-256 of the canonical JSON of the tool and the arguments.")
    edited: bool = Field(description="A reviewer changed the arguments.")
    approval_token: str | None = Field(description="For verify_approval, once approved; single use.")
    approval_token_expires_at: datetime | None
    waiting_for: list[str] = Field(description="Who is asked now, while it is pending.")
    message: str


class Verification(BaseModel):
    valid: bool = Field(description="Go ahead, once: true only for the approved arguments, and only once.")
    code: str = Field(description="approved, used, arguments_differ, expired, not_approved or not_a_token.")
    message: str
    request_id: str | None
    sha256: str


def outcome(*, user: User, request: ApprovalRequest) -> Outcome:
    """The request as the API answers it (schemas.request_out), in the terms of an MCP tool."""
    out = schemas.request_out(user=user, request=request)
    decision: Decision = DECISIONS.get(request.status, "pending")
    action = out.action
    edited = action is not None and len({v.sha256 for v in action.versions}) > 1
    return Outcome(
        request_id=str(out.id),
        url=out.url,
        decision=decision,
        status=out.status,
        decided_by=out.decided_by,
        comment=out.decision_comment,
        tool=action.tool if action else "",
        arguments=action.arguments if action else {},
        sha256=action.sha256 if action else "",
        edited=edited,
        approval_token=out.approval_token,
        approval_token_expires_at=out.approval_token_expires_at,
        waiting_for=[w.name or w.username for w in out.waiting_for],
        message=TELL[decision] + (EDITED if edited and decision == "approved" else ""),
    )


def _progress_note(answer: Outcome) -> str:
    if not answer.waiting_for:
        return f"Waiting for the review to start: {answer.url}"
    return f"Waiting for {', '.join(answer.waiting_for)} to decide: {answer.url}"


async def _wait(ctx: Context, user: User, public_id: uuid.UUID, seconds: int) -> Outcome:
    """Wait up to `seconds` for the decision, reporting progress at least every
    MCP_PROGRESS_SECONDS; then the request as it stands."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    request = await waiting.look(user, public_id)
    while not waiting.is_settled(request) and (left := start + seconds - loop.time()) > 0:
        answer = await waiting.pooled(outcome)(user=user, request=request)
        await ctx.report_progress(loop.time() - start, seconds, _progress_note(answer))
        beat = min(left, settings.MCP_PROGRESS_SECONDS)
        request = await waiting.request_wait(user=user, public_id=public_id, timeout=beat)
    return await waiting.pooled(outcome)(user=user, request=request)


WaitSeconds = Annotated[
    int,
    Field(
        ge=0,
        le=settings.MCP_WAIT_MAX_SECONDS,
        description="Seconds to wait at most for the decision; 0 answers at once.",
    ),
]


# --- The tools ---------------------------------------------------------------------------------


def _agent_type(name: str | None) -> RequestType:
    if name:
        found = RequestType.objects.filter(slug=name, for_agents=True).first()
        if found is None:
            raise InvalidInput(f"There is no type of agent action “{name}”.")
        return found
    found = agents.agent_type_default()
    if found is None:
        raise InvalidInput(
            "Name the request type (request_type): there is not exactly one type of agent action."
        )
    return found


def _earlier(*, user: User, public_id: uuid.UUID, tool: str, arguments: Any) -> None:
    """Refuse an idempotency key used before for another action (the same action is answered
    with the request it made)."""
    request = ApprovalRequest.objects.filter(public_id=public_id, requester=user).first()
    if request is None:
        return
    first = ActionArguments.objects.filter(request=request).order_by("pk").first()
    _, sha256 = agents.canonical_action(tool=tool, arguments=arguments)
    if first is None or first.sha256 != sha256:
        raise InvalidInput("This idempotency_key was used for another action; use a new key for a new one.")


@server.tool()
async def request_approval(
    action: Annotated[str, Field(description="The tool you mean to call, such as “orders.refund”.")],
    arguments: Annotated[dict[str, Any], Field(description="Its exact arguments, as you would call it.")],
    reason: Annotated[str, Field(description="Why, for the people who decide: they read it first.")],
    ctx: Context,
    risk: Annotated[
        str | None,
        Field(description=f"How much harm the action could do: {', '.join(RISKS)} (medium if not said)."),
    ] = None,
    agent: Annotated[
        str | None, Field(description="Your name, as reviewers see it; your client's if not said.")
    ] = None,
    request_type: Annotated[
        str | None, Field(description="The type of agent action, where there are several.")
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Field(max_length=200, description="The same key again (after a lost answer, say) asks only once."),
    ] = None,
    wait_seconds: WaitSeconds = 300,
) -> Outcome:
    """Ask a person to approve one exact action before you take it, and wait for the decision.

    Answers the decision, the reviewer's comment and, once approved, a single-use approval token
    for exactly the arguments approved (a reviewer may have edited them: act with those). While
    it waits, it reports progress. If the wait ends first, the decision is "pending": call
    approval_status to wait again."""
    name = agent or _client_name(ctx)

    def submit(user: User) -> ApprovalRequest:
        public_id = uuid.uuid5(KEYS, f"{user.pk}:{idempotency_key}") if idempotency_key else None
        if public_id is not None:
            _earlier(user=user, public_id=public_id, tool=action, arguments=arguments)
        return services.agent_action_submit(
            requester=user,
            request_type=_agent_type(request_type),
            agent=name,
            tool=action,
            arguments=arguments,
            reason=reason,
            risk=risk,
            public_id=public_id,
        )

    user, request = await _as_caller(ctx, "create", "request_approval", submit)
    return await _wait(ctx, user, request.public_id, wait_seconds)


@server.tool()
async def approval_status(
    request_id: Annotated[uuid.UUID, Field(description="The request_id request_approval answered.")],
    ctx: Context,
    wait_seconds: WaitSeconds = 0,
) -> Outcome:
    """Where an approval you asked for (or may see) stands; with wait_seconds, wait for its
    decision that long at most."""
    user, _ = await _as_caller(
        ctx,
        "read",
        "approval_status",
        lambda user: selectors.request_get_visible(user=user, public_id=request_id),
    )
    return await _wait(ctx, user, request_id, wait_seconds)


@server.tool()
async def verify_approval(
    approval_token: Annotated[str, Field(description="The approval_token of an approved request.")],
    action: Annotated[str, Field(description="The tool you are about to call.")],
    arguments: Annotated[
        dict[str, Any], Field(description="The exact arguments you are about to call it with.")
    ],
    ctx: Context,
) -> Verification:
    """Just before you act: whether this token approves exactly this tool with these arguments.
    valid is true once, and never again for the same token; act only then."""

    def verify(user: User) -> agents.Verdict:
        return agents.approval_verify(token=approval_token, tool=action, arguments=arguments, by=user)

    _, verdict = await _as_caller(ctx, "read", "verify_approval", verify)
    return Verification(
        valid=verdict.valid,
        code=verdict.code,
        message=verdict.message,
        request_id=str(verdict.request.public_id) if verdict.request else None,
        sha256=verdict.sha256,
    )


def _client_name(ctx: Context) -> str:
    """The name the MCP client gave itself, for reviewers to see as the agent's."""
    params = getattr(ctx.request_context.session, "client_params", None)
    info = getattr(params, "client_info", None)
    return (getattr(info, "name", "") or "MCP client").strip()[: agents.MAX_AGENT_NAME]


# --- Serving -----------------------------------------------------------------------------------


async def serve_stdio(plain: str) -> None:
    """Serve on stdin and stdout, as the owner of this token, until the client leaves."""
    process_token.set(plain)
    await server.run_stdio_async()


class HttpEndpoint:
    """/mcp of the web app: MCP's streamable HTTP transport, stateless, so that any web replica
    answers any call, behind a check of the Host (Django's ALLOWED_HOSTS) and of the bearer token.
    Its session manager runs for as long as the web process (`run`, from its lifespan)."""

    def __init__(self) -> None:
        # A new app (and session manager) each time: a manager runs once.
        self.app = server.streamable_http_app(
            streamable_http_path=PATH,
            stateless_http=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self.manager = server.session_manager

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        async with self.manager.run():
            yield

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        domain, _ = split_domain_port(headers.get("host", ""))
        if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
            await _answer(send, 400, "This host is not served here.")
            return
        plain = _bearer(headers)
        if not plain or await waiting.pooled(tokens.token_authenticate)(plain=plain) is None:
            await _answer(
                send,
                401,
                f"Send an API token of yours (made at {reverse('tokens')}) as Authorization: Bearer apv_…",
                {"www-authenticate": 'Bearer realm="approvals"'},
            )
            return
        await self.app(scope, receive, send)


async def _answer(send: Any, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
