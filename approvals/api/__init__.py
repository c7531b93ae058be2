"""The integration API, /api/v1/: JSON over HTTP for other systems, described by OpenAPI 3.1.

Built with django-ninja (see the README for why): its operations are typed functions whose
pydantic schemas validate what comes in and document what goes out, and it serves the schema
and Swagger UI (from its own static files: no CDN) itself.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from approvals.api.problems import PROBLEM_TYPE, ApiProblem, problem_response
from approvals.api.routes import router
from approvals.exceptions import (
    ActionRefused,
    ApprovalError,
    InvalidInput,
    NotAllowed,
    NotFound,
    WorkflowUnavailable,
)

logger = logging.getLogger("approvals.api")

# A domain error's status and code: the same exceptions the browser's views turn into pages.
DOMAIN_ERRORS: list[tuple[type[ApprovalError], int, str]] = [
    (NotFound, 404, "not_found"),
    (NotAllowed, 403, "not_allowed"),
    (InvalidInput, 422, "invalid"),
    (ActionRefused, 409, "refused"),
    (WorkflowUnavailable, 503, "workflow_unavailable"),
    (ApprovalError, 409, "refused"),
]


class ApprovalsAPI(NinjaAPI):
    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> Any:
        """The schema, with every error answer's media type the problem type it is sent as."""
        schema = super().get_openapi_schema(*args, **kwargs)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for status, answer in operation.get("responses", {}).items():
                    content = answer.get("content", {})
                    if int(status) >= 400 and "application/json" in content:
                        content[PROBLEM_TYPE] = content.pop("application/json")
        return schema


api = ApprovalsAPI(
    title="Approvals API",
    version="1",
    description=(
        "Create requests, follow them, and decide them, as the token's owner, with the same rules "
        "and answers as the browser. Authenticate with `Authorization: Bearer <token>` (made on "
        "your Settings page); errors are RFC 9457 problem details."
    ),
    urls_namespace="api",
)
api.add_router("", router)


@api.exception_handler(ApiProblem)
def _problem(request: HttpRequest, exc: ApiProblem) -> HttpResponse:
    return problem_response(request, exc.status, exc.code, exc.detail, errors=exc.errors, headers=exc.headers)


@api.exception_handler(ValidationError)
def _invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = []
    for error in exc.errors:
        where = [str(part) for part in error.get("loc", [])[1:]]
        if where[:1] == ["payload"]:  # the body's own fields, as the schema names them
            where = where[1:]
        errors.append({"field": ".".join(where), "message": str(error.get("msg", "is not valid"))})
    detail = " ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors)
    return problem_response(request, 422, "invalid", detail or "The request is not valid.", errors=errors)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return problem_response(
        request,
        401,
        "unauthenticated",
        "Send a valid API token: Authorization: Bearer <token>. It may have expired or been revoked.",
        headers={"WWW-Authenticate": 'Bearer realm="approvals"'},
    )


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    code = "bad_request" if exc.status_code == 400 else HTTPStatus(exc.status_code).name.lower()
    return problem_response(request, exc.status_code, code, str(exc))


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return problem_response(request, 404, "not_found", "There is no such thing here.")


@api.exception_handler(ApprovalError)
def _domain(request: HttpRequest, exc: ApprovalError) -> HttpResponse:
    for kind, status, code in DOMAIN_ERRORS:
        if isinstance(exc, kind):
            return problem_response(request, status, code, str(exc))
    raise exc  # not reached: ApprovalError is the last kind


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("The API failed on %s %s", request.method, request.path)
    return problem_response(
        request,
        500,
        "server_error",
        (
            "Something went wrong on our side, and it is logged. What you sent may or may not have "
            "been recorded: look before sending it again, or send it with the same Idempotency-Key."
        ),
    )
