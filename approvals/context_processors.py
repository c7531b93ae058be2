"""What every page's frame shows: the counts of requests, and of access reviews, waiting for this
person."""

from __future__ import annotations

import functools
from typing import Any

from django.http import HttpRequest

from approvals import selectors
from approvals.selectors.campaigns import reviews_open_count


def waiting(request: HttpRequest) -> dict[str, Any]:
    """`waiting_count`, counted once, and only by a page that shows it (templates call it)."""
    user = request.user
    if not user.is_authenticated:
        return {}
    return {
        "waiting_count": functools.cache(lambda: selectors.reviewer_pending_count(user=user)),
        "reviews_count": functools.cache(lambda: reviews_open_count(user=user)),
    }
