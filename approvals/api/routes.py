"""The operations of /api/v1/: each validates, calls the service or selector the browser's view
calls, and answers with the same words, as JSON."""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from django.conf import settings
from django.db.models import DateTimeField, Value
from django.db.models.functions import Coalesce
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from ninja import Field, Header, Query, Router
from ninja.responses import NinjaJSONEncoder

from approvals import selectors, services
from approvals.api import schemas
from approvals.api.auth import CREATE, DECIDE, READ
from approvals.api.pagination import MAX_LIMIT, keyset_page
from approvals.api.problems import ApiProblem, Problem
from approvals.exceptions import ActionPending
from approvals.forms import ActionForm, ApiRequestForm, ApiRoutingPreviewForm
from approvals.models import ApiIdempotency, ApprovalRequest, PendingAction, RequestType
from approvals.selectors.requests import InboxState
from approvals.services import agents, waiting
from approvals.services.policies import policy_snapshot
from workflows import codec
from workflows.types import ActionKind, Policy

router = Router()
V = TypeVar("V", bound=Callable[..., Any])
KEYS = uuid.UUID("5b0c8f39-7c8d-4f0e-9a57-2f1d8e6c4a10")  # the namespace of ids made from keys
REPLAYED = "Idempotent-Replayed"
MAX_KEY = 200
# The form's field names as the API names them.
API_NAMES = {"request_type": "type", "__all__": "", "submission_id": ""}


def _user(request: HttpRequest) -> Any:
    return request.user


def _visible(request: HttpRequest, public_id: uuid.UUID) -> ApprovalRequest:
    """The request, if the caller may see it; NotFound (a 404, as for one that does not exist)."""
    return selectors.request_get_visible(user=_user(request), public_id=public_id)


def _form_problem(form: BaseForm) -> ApiProblem:
    errors = [
        {"field": API_NAMES.get(name, name), "message": " ".join(str(e) for e in messages)}
        for name, messages in form.errors.items()
    ]
    detail = " ".join(e["message"] for e in errors)
    return ApiProblem(422, "invalid", detail, errors=errors)


def known_query(model: type[schemas.Schema] | None = None) -> Callable[[V], V]:
    """Refuse query parameters the operation does not have: a misspelt one (`limt=5`) is told,
    never silently ignored."""
    allowed = set(model.model_fields) if model is not None else set()

    def decorate(view: V) -> V:
        @functools.wraps(view)
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            _refuse_unknown(request, allowed)
            return view(request, *args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorate


def _refuse_unknown(request: HttpRequest, allowed: set[str]) -> None:
    if unknown := sorted(set(request.GET) - allowed):
        names = ", ".join(f"“{name}”" for name in unknown)
        raise ApiProblem(
            422,
            "unknown_parameter",
            f"This operation has no parameter {names}.",
            errors=[{"field": name, "message": "No such parameter."} for name in unknown],
        )


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(
        json.dumps(body, cls=NinjaJSONEncoder), status=status, content_type="application/json"
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _idempotent(
    request: HttpRequest,
    key: str | None,
    operation: str,
    body: dict[str, Any],
    run: Callable[[uuid.UUID], tuple[int, Any, dict[str, str]]],
) -> HttpResponse:
    """Run the operation once per key: `run` gets an id made from the key (the same for a
    retry, so that two calls at once make one request or one decision too), and its final answer
    is kept; the same key again gets it back. An answer still pending is not kept: sent again,
    the action goes to the workflow again, which counts it once."""
    user = _user(request)
    if key is None:
        status, out, headers = run(uuid.uuid4())
        return _json(status, out, headers)
    fingerprint = hashlib.sha256(
        json.dumps([operation, body], sort_keys=True, default=str).encode()
    ).hexdigest()
    earlier = ApiIdempotency.objects.filter(user=user, key=key).first()
    if earlier is not None:
        if earlier.fingerprint != fingerprint:
            raise ApiProblem(
                422,
                "idempotency_key_reused",
                "This Idempotency-Key was used for another call; use a new key for a new one.",
            )
        return _json(earlier.status, earlier.body, {REPLAYED: "true"})
    status, out, headers = run(uuid.uuid5(KEYS, f"{user.pk}:{key}"))
    if status != 202:
        data = json.loads(json.dumps(out, cls=NinjaJSONEncoder))
        ApiIdempotency.objects.get_or_create(
            user=user, key=key, defaults={"fingerprint": fingerprint, "status": status, "body": data}
        )
    return _json(status, out, headers)


def _created(request: HttpRequest, approval: ApprovalRequest) -> tuple[int, Any, dict[str, str]]:
    """The answer to a create: the request as it now stands, and where it lives."""
    approval.refresh_from_db()
    out = schemas.request_out(user=_user(request), request=approval).dict()
    location = reverse("api:request_get", kwargs={"public_id": approval.public_id})
    return 201, out, {"Location": location}


IDEMPOTENCY_KEY = Header(
    None,
    alias="Idempotency-Key",
    min_length=1,
    max_length=MAX_KEY,
    pattern=r"^[ -~]+$",
    description=(
        "1 to 200 printable ASCII characters. Sent again with the same key and body, the call is "
        "answered as the first time, and does nothing more."
    ),
)
PROBLEMS: dict[int, type[Problem]] = {code: Problem for code in (400, 401, 403, 404, 409, 422, 429, 503)}


@router.post(
    "/requests",
    response={201: schemas.RequestOut, **PROBLEMS},
    auth=CREATE,
    tags=["requests"],
    summary="Create a request",
)
@known_query()
def request_create(
    request: HttpRequest, payload: schemas.RequestIn, idempotency_key: str | None = IDEMPOTENCY_KEY
) -> HttpResponse:
    """Submit a request as the token's owner; its review starts at once (or as soon as the
    workflow service is back: `workflow_started` says which)."""
    body = payload.dict()

    def run(public_id: uuid.UUID) -> tuple[int, Any, dict[str, str]]:
        data = {
            "submission_id": str(public_id),
            "request_type": payload.type,
            "title": payload.title,
            "details": payload.details,
            "amount": "" if payload.amount is None else str(payload.amount),
            "cost_centre": payload.cost_centre or "",
            "resource": payload.resource or "",
            "access_role": payload.access_role,
            "access_days": "" if payload.access_days is None else str(payload.access_days),
        }
        form = ApiRequestForm(data)
        if not form.is_valid():
            raise _form_problem(form)
        cleaned = dict(form.cleaned_data)
        approval = services.request_submit(
            requester=_user(request), public_id=cleaned.pop("submission_id"), **cleaned
        )
        return _created(request, approval)

    return _idempotent(request, idempotency_key, "create", body, run)


CURSOR = Field(
    None, min_length=1, max_length=500, description="The `next` of the page before; none for the first page."
)
LIMIT = Field(25, ge=1, le=MAX_LIMIT, description="Items a page.")


class ListQuery(schemas.Schema):
    state: Literal["", "open", "closed"] = ""
    cursor: str | None = CURSOR
    limit: int = LIMIT


@router.get("/requests", response={200: schemas.RequestPage, **PROBLEMS}, auth=READ, tags=["requests"])
@known_query(ListQuery)
def request_list(request: HttpRequest, query: Query[ListQuery]) -> schemas.RequestPage:
    """What the token's owner asked for, newest first."""
    qs = selectors.request_list_for_requester(user=_user(request), state=query.state)
    items, after = keyset_page(
        qs,
        order=("-created_at", "-id"),
        key=lambda r: (r.created_at, r.pk),
        cursor=query.cursor,
        limit=query.limit,
    )
    return schemas.RequestPage(
        results=[schemas.request_out(user=_user(request), request=r) for r in items], next=after
    )


@router.get(
    "/requests/{public_id}",
    response={200: schemas.RequestOut, **PROBLEMS},
    auth=READ,
    tags=["requests"],
    url_name="request_get",
)
@known_query()
def request_get(request: HttpRequest, public_id: uuid.UUID) -> schemas.RequestOut:
    """A request as it stands: its status, its stage, who it waits for, what you may do."""
    return schemas.request_out(user=_user(request), request=_visible(request, public_id))


@router.get(
    "/requests/{public_id}/timeline",
    response={200: list[schemas.Event], **PROBLEMS},
    auth=READ,
    tags=["requests"],
)
@known_query()
def request_timeline(request: HttpRequest, public_id: uuid.UUID) -> list[schemas.Event]:
    """Every event of the request, oldest first, as its page's timeline shows them."""
    approval = _visible(request, public_id)
    return [schemas.event_out(e) for e in selectors.request_timeline(request=approval)]


@router.get(
    "/requests/{public_id}/snapshots",
    response={200: schemas.Snapshots, **PROBLEMS},
    auth=READ,
    tags=["requests"],
)
@known_query()
def request_snapshots(request: HttpRequest, public_id: uuid.UUID) -> schemas.Snapshots:
    """The request's content as each revision was submitted, and its policy as submitted."""
    approval = _visible(request, public_id)
    policy = codec.decode(Policy, approval.policy) if approval.policy else Policy("", [])
    return schemas.Snapshots(
        revisions=[schemas.revision_out(r) for r in approval.revisions.all()],
        policy=schemas.policy_out(policy),
    )


@router.post(
    "/requests/{public_id}/actions",
    response={200: schemas.ActionOut, 202: schemas.ActionOut, **PROBLEMS},
    auth=DECIDE,
    tags=["requests"],
    summary="Decide or comment",
)
@known_query()
def request_act(
    request: HttpRequest,
    public_id: uuid.UUID,
    payload: schemas.ActionIn,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> HttpResponse:
    """Approve, reject, request changes or comment, as the token's owner, with the browser's
    rules and answers: 200 once the workflow took it, 202 while that is not known yet (it shows
    as pending, and counts once however often it is sent again with the same key)."""
    approval = _visible(request, public_id)
    body = {"request": str(public_id), **payload.dict()}

    def run(action_id: uuid.UUID) -> tuple[int, Any, dict[str, str]]:
        form = ActionForm({"action_id": str(action_id), "kind": payload.kind, "comment": payload.comment})
        if not form.is_valid():
            raise _form_problem(form)
        try:
            result = services.request_act(
                request=approval,
                actor=_user(request),
                kind=ActionKind(payload.kind),
                comment=form.cleaned_data["comment"],
                action_id=action_id,
                via=PendingAction.Via.API,
                action_sha256=payload.action_sha256,
            )
        except ActionPending as exc:
            approval.refresh_from_db()
            out = schemas.ActionOut(
                outcome="pending",
                message=str(exc),
                undo_until=None,
                request=schemas.request_out(user=_user(request), request=approval),
            )
            return 202, out.dict(), {}
        approval.refresh_from_db()
        out = schemas.ActionOut(
            outcome="done",
            message=result.message,
            undo_until=result.undo_until,
            request=schemas.request_out(user=_user(request), request=approval),
        )
        return 200, out.dict(), {}

    return _idempotent(request, idempotency_key, "act", body, run)


@router.post(
    "/agent-actions",
    response={201: schemas.RequestOut, **PROBLEMS},
    auth=CREATE,
    tags=["agent actions"],
    summary="Ask for approval of an exact action",
)
@known_query()
def agent_action_create(
    request: HttpRequest, payload: schemas.AgentActionIn, idempotency_key: str | None = IDEMPOTENCY_KEY
) -> HttpResponse:
    """An agent asks, as the token's owner, before it calls a tool: the request names the tool and
    its exact arguments, whose canonical JSON and SHA-256 reviewers see. Once it is approved, the
    request's `approval_token` (for you alone) holds for those arguments only; wait for the
    decision with /requests/{id}/wait."""
    body = payload.dict()

    def run(public_id: uuid.UUID) -> tuple[int, Any, dict[str, str]]:
        if payload.type is None:
            request_type = agents.agent_type_default()
            if request_type is None:
                raise ApiProblem(
                    422,
                    "invalid",
                    "Name the request type (`type`): there is not exactly one type of agent action.",
                    errors=[{"field": "type", "message": "Name the request type."}],
                )
        else:
            request_type = RequestType.objects.filter(slug=payload.type, for_agents=True).first()
            if request_type is None:
                raise ApiProblem(
                    422,
                    "invalid",
                    f"There is no type of agent action “{payload.type}”.",
                    errors=[{"field": "type", "message": "No such type of agent action."}],
                )
        approval = services.agent_action_submit(
            requester=_user(request),
            request_type=request_type,
            agent=payload.agent,
            tool=payload.tool,
            arguments=payload.arguments,
            reason=payload.reason,
            risk=payload.risk,
            public_id=public_id,
        )
        return _created(request, approval)

    return _idempotent(request, idempotency_key, "agent-action", body, run)


@router.post(
    "/agent-actions/verify",
    response={200: schemas.VerifyOut, **PROBLEMS},
    auth=READ,
    tags=["agent actions"],
    summary="Check an approval token before acting",
)
@known_query()
def agent_action_verify(request: HttpRequest, payload: schemas.VerifyIn) -> schemas.VerifyOut:
    """Whether this token approves exactly this tool and these arguments now: `valid` is true
    once, and never again for the same token; then act. Present it from the agent, or from the
    tool it calls."""
    verdict = agents.approval_verify(
        token=payload.token, tool=payload.tool, arguments=payload.arguments, by=_user(request)
    )
    return schemas.VerifyOut(
        valid=verdict.valid,
        code=verdict.code,  # type: ignore[arg-type]  # one of the Literal's, by Verdict's contract
        message=verdict.message,
        request=verdict.request.public_id if verdict.request else None,
        sha256=verdict.sha256,
    )


class WaitQuery(schemas.Schema):
    timeout: int = Field(
        30,
        ge=0,
        le=settings.AGENT_WAIT_MAX_SECONDS,
        description="Seconds to wait at most for a decision.",
    )


@router.get(
    "/requests/{public_id}/wait",
    response={200: schemas.RequestOut, **PROBLEMS},
    auth=READ,
    tags=["requests"],
    summary="Wait for the decision",
)
async def request_wait(request: HttpRequest, public_id: uuid.UUID, query: Query[WaitQuery]) -> Any:
    """The request as soon as it is decided (approved, rejected, expired, withdrawn, cancelled) or
    changes are requested, or as it stands once `timeout` seconds have passed: look at its
    `status`, and call again to wait longer. Waiting costs the server no thread and no polling."""
    _refuse_unknown(request, set(WaitQuery.model_fields))
    user = _user(request)
    approval = await waiting.request_wait(user=user, public_id=public_id, timeout=query.timeout)
    return await waiting.pooled(schemas.request_out)(user=user, request=approval)


class InboxQuery(schemas.Schema):
    state: Literal["waiting", "overdue", "escalated", "done"] = "waiting"
    cursor: str | None = CURSOR
    limit: int = LIMIT


@router.get("/inbox", response={200: schemas.InboxPage, **PROBLEMS}, auth=READ, tags=["inbox"])
@known_query(InboxQuery)
def inbox(request: HttpRequest, query: Query[InboxQuery]) -> schemas.InboxPage:
    """What the token's owner was asked to decide: what waits for them, soonest deadline first
    (one with no deadline last); `done`: what no longer does, most recently assigned first."""
    user = _user(request)
    qs = selectors.inbox_items(user=user, state=InboxState(query.state))
    if query.state == "done":
        order: tuple[str, ...] = ("-added_at", "-request_id")

        def key(p: Any) -> tuple[Any, ...]:
            return (p.added_at, p.request_id)
    else:
        latest = timezone.now().replace(year=9999, month=12, day=31)
        qs = qs.annotate(due=Coalesce("deadline", Value(latest), output_field=DateTimeField()))
        order = ("due", "request_id")

        def key(p: Any) -> tuple[Any, ...]:
            return (p.due, p.request_id)

    items, after = keyset_page(qs, order=order, key=key, cursor=query.cursor, limit=query.limit)
    return schemas.InboxPage(results=[schemas.inbox_item_out(user=user, place=p) for p in items], next=after)


class PreviewQuery(schemas.Schema):
    type: str = Field(min_length=1, max_length=50, description="The request type's slug.")
    amount: str | None = Field(
        None, min_length=1, max_length=30, description="The amount the request would name."
    )


@router.get(
    "/routing-preview",
    response={200: schemas.RoutingPreviewOut, **PROBLEMS},
    auth=READ,
    tags=["request types"],
)
@known_query(PreviewQuery)
def routing_preview(request: HttpRequest, query: Query[PreviewQuery]) -> schemas.RoutingPreviewOut:
    """Who a request of this type (and amount) from you would go to, and by when, if submitted now."""
    form = ApiRoutingPreviewForm({"request_type": query.type, "amount": query.amount or ""})
    if not form.is_valid():
        raise _form_problem(form)
    request_type = form.cleaned_data["request_type"]
    stages = services.routing_preview(
        requester=_user(request), request_type=request_type, amount=form.cleaned_data["amount"]
    )
    return schemas.RoutingPreviewOut(
        stages=[schemas.stage_preview_out(s) for s in stages],
        distinct_approvers=request_type.distinct_approvers,
    )


@router.get(
    "/request-types",
    response={200: list[schemas.RequestTypeOut], **PROBLEMS},
    auth=READ,
    tags=["request types"],
)
@known_query()
def request_types(request: HttpRequest) -> list[schemas.RequestTypeOut]:
    """The types of request open to submission, each with its policy as a request submitted now
    would carry it."""
    return [
        schemas.RequestTypeOut(
            slug=t.slug,
            name=t.name,
            description=t.description,
            fulfilment=t.fulfilment,
            policy=schemas.policy_out(policy_snapshot(request_type=t)),
        )
        for t in RequestType.objects.filter(is_active=True).order_by("name")
    ]
