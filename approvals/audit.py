"""One record of every refusal: who was refused what, and why.

Views, consumers, services and the admin all put a refusal on record through `log_refused`, so
that staff (and their log alerts) find every attempt in one place, in one shape.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("approvals.refused")


def log_refused(who: object, what: str, why: str) -> None:
    logger.warning("Refused %s to %s: %s", what, who, why)
