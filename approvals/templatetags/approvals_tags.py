from __future__ import annotations

import uuid

from django import template

register = template.Library()


@register.simple_tag
def form_token() -> str:
    """A fresh id for one rendered form: submitting that form twice counts once."""
    return str(uuid.uuid4())
