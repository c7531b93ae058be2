"""A client of the integration API: a person's token, sent as a bearer."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.models import User
from django.test import Client

from approvals.services import tokens

BASE = "/api/v1"
ALL = ["read", "create", "decide"]


class Api:
    """Calls /api/v1/ with `token` (none: no Authorization header)."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        self.client = Client()

    def _headers(self, extra: dict[str, str]) -> dict[str, str]:
        headers = dict(extra)
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def get(self, path: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
        return self.client.get(BASE + path, params, headers=self._headers(headers or {}))

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        return self.client.post(
            BASE + path,
            json.dumps(body),
            content_type="application/json",
            headers=self._headers(headers or {}),
        )


def api_for(user: User, scopes: list[str] = ALL, **kwargs: Any) -> Api:
    _, plain = tokens.token_create(user=user, name="test", scopes=scopes, **kwargs)
    return Api(plain)


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response's problem details, checked for their shape (RFC 9457)."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "about:blank" and body["status"] == status and body["code"] == code, body
    assert body["title"] and body["detail"] and body["instance"].startswith(BASE)
    return body
