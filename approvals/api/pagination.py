"""Cursor pagination over a total order (keyset): a page goes on from where the last one ended,
however many rows arrive or leave meanwhile, and costs the same on page one and page one hundred."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db.models import Model, Q, QuerySet

from approvals.api.problems import ApiProblem

M = TypeVar("M", bound=Model)
MAX_LIMIT = 100


def encode_cursor(values: Sequence[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def _decode(cursor: str, size: int) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        values = None
    if (
        not isinstance(values, list)
        or len(values) != size
        or not all(isinstance(v, str | int) for v in values)
    ):
        raise ApiProblem(400, "bad_cursor", "This cursor is not one this API gave; start again without it.")
    return values


def keyset_page(
    qs: QuerySet[M],
    *,
    order: Sequence[str],
    key: Callable[[M], Sequence[Any]],
    cursor: str | None,
    limit: int,
) -> tuple[list[M], str | None]:
    """One page of `qs` in `order` (fields, "-" for descending, the last one unique), after
    `cursor`; and the cursor of the next page, if there is one. `key` gives an item's values of
    the order's fields."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiProblem(400, "bad_limit", f"Ask for 1 to {MAX_LIMIT} items a page.")
    qs = qs.order_by(*order)
    if cursor:
        after = _decode(cursor, len(order))
        try:
            qs = qs.filter(_after(order, after))
            items = list(qs[: limit + 1])
        except (ValueError, TypeError, ValidationError) as exc:  # a value that does not fit its field
            raise ApiProblem(400, "bad_cursor", "This cursor is not one this API gave; start again.") from exc
    else:
        items = list(qs[: limit + 1])
    more = len(items) > limit
    items = items[:limit]
    return items, encode_cursor(key(items[-1])) if more and items else None


def _after(order: Sequence[str], values: Sequence[Any]) -> Q:
    """Rows strictly after `values` in `order`: (a, b) > (x, y) is a > x, or a = x and b > y."""
    result = Q()
    for i, field in enumerate(order):
        name = field.lstrip("-")
        step = Q(**{f"{name}__{'lt' if field.startswith('-') else 'gt'}": values[i]})
        for earlier, value in zip(order[:i], values[:i], strict=False):
            step &= Q(**{earlier.lstrip("-"): value})
        result |= step
    return result
