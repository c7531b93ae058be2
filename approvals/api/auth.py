"""Who is calling: a bearer token (see approvals.services.tokens), allowed the operation's scope,
within its rate limit."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DatabaseError
from django.http import HttpRequest
from ninja.security import HttpBearer

from approvals import audit
from approvals.api.problems import ApiProblem
from approvals.exceptions import NotAllowed
from approvals.middleware import Middleware
from approvals.models import ApiToken
from approvals.services import tokens

logger = logging.getLogger("approvals.api")


class TokenAuth(HttpBearer):
    """`Authorization: Bearer apv_…`, for operations that need `scope`."""

    def __init__(self, scope: str) -> None:
        super().__init__()
        self.scope = scope

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken | None:
        found = tokens.token_authenticate(plain=token.strip())
        if found is None:
            return None  # 401
        request.user = found.user
        request.api_token = found  # type: ignore[attr-defined]  # the use log reads it
        if wait := tokens.token_rate_wait(token=found):
            raise ApiProblem(
                429,
                "rate_limited",
                f"This token made too many calls; try again in {wait} s.",
                headers={"Retry-After": str(wait)},
            )
        try:
            tokens.token_require(token=found, scope=self.scope)
        except NotAllowed as exc:
            audit.log_refused(found.user, f"{request.method} {request.path} (token {found.pk})", str(exc))
            raise ApiProblem(403, "scope", str(exc)) from exc
        return found


READ, CREATE, DECIDE = TokenAuth("read"), TokenAuth("create"), TokenAuth("decide")


class TokenUseLog(Middleware):
    """Middleware: every call made with a token goes on its record, with the token's id, once
    answered (the refused ones too)."""

    async def after_async(self, request: HttpRequest, response: Any, state: Any) -> Any:
        if getattr(request, "api_token", None) is None:
            return response
        return await sync_to_async(self.after)(request, response, state)

    def after(self, request: HttpRequest, response: Any, state: Any) -> Any:
        token = getattr(request, "api_token", None)
        if token is not None:
            try:
                tokens.token_use_record(
                    token=token, method=request.method or "", path=request.path, status=response.status_code
                )
            except DatabaseError:  # the answer stands; the log line below still names the token
                logger.warning("Could not record a use of token %s", token.pk, exc_info=True)
            logger.info(
                "%s %s → %s (token %s of %s)",
                request.method,
                request.path,
                response.status_code,
                token.pk,
                token.user.username,
            )
        return response
