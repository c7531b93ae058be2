"""Only this site's own pages may open a live socket, as only they may POST.

Channels' AllowedHostsOriginValidator compares the Origin's host name with ALLOWED_HOSTS and
ignores its scheme and port, so a page served on another port of the same host (another app)
could open a socket with the victim's cookies. Django's CSRF check refuses that origin for a
POST; this refuses it for a socket, by the same measure: the Origin is the scheme, host and
port the socket was opened on, or one of CSRF_TRUSTED_ORIGINS.
"""

from __future__ import annotations

from typing import Any

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


def _scheme(scope: dict[str, Any]) -> str:
    """The scheme of the page that opened the socket, as Django's request.is_secure() tells it."""
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if proxy:
        header, secure = proxy
        forwarded = _header(scope, header.removeprefix("HTTP_").replace("_", "-").lower().encode())
        if forwarded:
            return "https" if forwarded.split(",")[0].strip() == secure else "http"
    return "https" if scope.get("scheme") in ("wss", "https") else "http"


def same_origin(scope: dict[str, Any]) -> bool:
    origin = _header(scope, b"origin").lower()
    host = _header(scope, b"host").lower()
    if not origin or not host:
        return False
    domain, _ = split_domain_port(host)
    if not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    trusted = {o.lower() for o in settings.CSRF_TRUSTED_ORIGINS}
    return origin == f"{_scheme(scope)}://{host}" or origin in trusted


class SameOriginValidator:
    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not same_origin(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
