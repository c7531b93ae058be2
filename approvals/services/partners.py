"""Calls to partners' HTTP endpoints (purchase orders, access grants): one POST of JSON with an
Idempotency-Key, so that the partner does the work once however often it is asked.

Each call has a deadline and makes one attempt: the activity that calls it retries with backoff.
What the partner refuses as it is (a 4xx other than 408 and 429) is `refused`, which retrying
cannot help; anything else that goes wrong is `unavailable`, worth another try.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from approvals.exceptions import PartnerRefused, PartnerUnavailable

RETRYABLE_STATUSES = frozenset({408, 429})


def partner_post(
    *,
    url: str,
    key: str,
    body: dict[str, Any],
    timeout: float,
    what: str,
    refused: type[PartnerRefused] = PartnerRefused,
    unavailable: type[PartnerUnavailable] = PartnerUnavailable,
    none_is: int | None = None,
) -> dict[str, Any]:
    """One POST, its JSON answer ({} for the status `none_is`); `what` names the endpoint in
    the errors a person reads."""
    call = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Idempotency-Key": key, "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(call, timeout=timeout) as response:
            text = response.read().decode() or "{}"
    except urllib.error.HTTPError as exc:
        if exc.code == none_is:
            return {}
        said = exc.read().decode(errors="replace")[:300]
        if 400 <= exc.code < 500 and exc.code not in RETRYABLE_STATUSES:
            raise refused(f"{what} refused it ({exc.code}): {said}") from exc
        raise unavailable(f"{what} failed ({exc.code}): {said}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise unavailable(f"{what} did not answer: {exc}") from exc
    try:
        answer = json.loads(text)
    except ValueError as exc:
        raise unavailable(f"{what} answered with something not JSON.") from exc
    if not isinstance(answer, dict):
        raise unavailable(f"{what} answered with something not an object.")
    return answer
