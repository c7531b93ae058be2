"""API tokens: made and revoked by their owners (or staff), checked on every call, rate-limited.

A token is `apv_` and 43 random URL-safe characters (256 bits). Only its SHA-256 is kept, so a
leaked database gives no usable token; the owner sees it once, when it is made.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.utils import timezone

from approvals.exceptions import InvalidInput, NotAllowed, NotFound
from approvals.models import ApiToken, ApiTokenUse

PREFIX = "apv_"
SHOWN = 12  # characters kept in clear (with the prefix) to recognise a token in lists and logs
MAX_TOKENS_PER_USER = 50


def _digest(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()


def token_create(
    *, user: User, name: str, scopes: Iterable[str], expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """A new token for `user`, and the token itself, which is never shown again."""
    name, chosen = name.strip(), sorted(set(scopes))
    token_check(user=user, name=name, scopes=chosen, expires_at=expires_at)
    plain = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name[:100],
        prefix=plain[:SHOWN],
        digest=_digest(plain),
        scopes=chosen,
        expires_at=expires_at,
    )
    return token, plain


def token_check(*, user: User, name: str, scopes: Iterable[str], expires_at: datetime | None) -> None:
    """Why such a token cannot be made (InvalidInput), if it cannot."""
    chosen = set(scopes)
    if not name.strip():
        raise InvalidInput("Give the token a name, to tell it from your others.")
    if not chosen:
        raise InvalidInput("Choose at least one thing the token may do.")
    if unknown := chosen - set(ApiToken.Scope.values):
        raise InvalidInput(f"There is no scope {', '.join(sorted(unknown))}.")
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput("The expiry must be in the future.")
    if ApiToken.objects.filter(user=user, revoked_at__isnull=True).count() >= MAX_TOKENS_PER_USER:
        raise InvalidInput(f"{user} has {MAX_TOKENS_PER_USER} tokens already; revoke one no longer used.")


def token_revoke(*, token_id: int, by: User) -> ApiToken:
    """Revoke a token: its owner's, or anyone's for staff. Revoking twice changes nothing."""
    token = ApiToken.objects.filter(pk=token_id).select_related("user").first()
    if token is None or (token.user_id != by.pk and not by.is_staff):
        raise NotFound("There is no such token.")
    if token.revoked_at is None:
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        token.refresh_from_db()
    return token


def token_authenticate(*, plain: str) -> ApiToken | None:
    """The usable token this is, with its user, or None (unknown, revoked, expired, or its owner
    can no longer log in)."""
    if not plain.startswith(PREFIX) or len(plain) > 200:
        return None
    token = ApiToken.objects.select_related("user").filter(digest=_digest(plain)).first()
    if token is None or not token.is_usable or not token.user.is_active:
        return None
    return token


def token_require(*, token: ApiToken, scope: str) -> None:
    if scope not in token.scopes:
        raise NotAllowed(f"This token may not {scope}: its scopes are {', '.join(token.scopes)}.")


def token_rate_wait(*, token: ApiToken) -> int:
    """Count one call against the token's limit: 0 if it may go on, else the seconds to wait.

    A fixed window in the cache, shared by every web process where the cache is Redis."""
    limit, window = settings.API_RATE_LIMIT, settings.API_RATE_WINDOW_SECONDS
    now = time.time()
    start = int(now // window) * window
    key = f"api-rate:{token.pk}:{start}"
    cache.add(key, 0, timeout=window + 1)
    try:
        used = cache.incr(key)
    except ValueError:  # expired between the two calls: this call starts a new window
        cache.add(key, 1, timeout=window + 1)
        used = 1
    if used <= limit:
        return 0
    return max(1, math.ceil(start + window - now))


def token_use_record(*, token: ApiToken, method: str, path: str, status: int) -> None:
    """Put one call on the token's record, and note when it was last used."""
    now = timezone.now()
    ApiTokenUse.objects.create(token=token, method=method[:10], path=path[:300], status=status)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
