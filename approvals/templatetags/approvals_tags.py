from __future__ import annotations

import uuid
from datetime import timedelta

from django import template

from approvals.charts import short_duration

register = template.Library()


@register.simple_tag
def form_token() -> str:
    """A fresh id for one rendered form: submitting that form twice counts once."""
    return str(uuid.uuid4())


@register.filter
def duration(value: timedelta | None) -> str:
    """A duration in its two largest units: 3d 4h, 5h 20m, 12m."""
    return "—" if value is None else short_duration(value)
