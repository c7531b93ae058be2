"""Logging in, with failed attempts counted and logged, and repeated failures slowed down."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.models import User
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

from approvals import audit

logger = logging.getLogger(__name__)

# Per address, across usernames: enough for a shared office, too few for credential stuffing.
ADDRESS_FACTOR = 4


def _key(*parts: str) -> str:
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
    return f"login-failures:{digest}"


class LoginView(auth_views.LoginView):
    """Django's login, refused with 429 for a while after too many failures.

    Failures are counted per username and address, and per address alone, in the cache (Redis
    when configured, so every web process shares the count). A success clears the username's
    count. The lock never reveals whether the username exists."""

    def _keys(self, request: HttpRequest) -> tuple[str, str]:
        address = request.META.get("REMOTE_ADDR", "")
        # As Django reads the name before checking the password (NFKC: a full-width "ｍａｎａｇｅｒ"
        # is "manager"), and without case, so no spelling of a name escapes its count.
        name = User.normalize_username(str(request.POST.get("username", "")))
        username = name.strip().casefold()[:150]
        return _key("user", username, address), _key("address", address)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user_key, address_key = self._keys(request)
        limit = settings.LOGIN_FAILURE_LIMIT
        if cache.get(user_key, 0) >= limit or cache.get(address_key, 0) >= limit * ADDRESS_FACTOR:
            who = f"{request.POST.get('username', '')[:150]!r} from {request.META.get('REMOTE_ADDR', '')}"
            audit.log_refused(who, "a login", "too many failed logins; try again later")
            context = self.get_context_data(form=self.get_form(), locked=True)
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(settings.LOGIN_LOCKOUT_SECONDS)
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: Any) -> HttpResponse:
        request = self.request
        logger.warning(
            "Failed login for %r from %s",
            request.POST.get("username", "")[:150],
            request.META.get("REMOTE_ADDR", ""),
        )
        for key in self._keys(request):
            cache.add(key, 0, timeout=settings.LOGIN_LOCKOUT_SECONDS)
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, timeout=settings.LOGIN_LOCKOUT_SECONDS)
        return super().form_invalid(form)

    def form_valid(self, form: Any) -> HttpResponse:
        cache.delete(self._keys(self.request)[0])
        return super().form_valid(form)
