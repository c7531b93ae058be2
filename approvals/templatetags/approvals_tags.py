from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

from django import template
from django.forms import BaseForm
from django.template import Context
from django.utils import timezone
from django.utils.safestring import mark_safe

from approvals.charts import short_duration
from approvals.views.common import form_errors
from workflows import rules
from workflows.types import ActionKind, Held

register = template.Library()


@register.simple_tag
def form_token() -> str:
    """A fresh id for one rendered form: submitting that form twice counts once."""
    return str(uuid.uuid4())


@register.filter
def errors_said(form: BaseForm) -> str:
    """A form's errors as the views say them (views.common.form_errors)."""
    return form_errors(form)


@register.filter
def duration(value: timedelta | None) -> str:
    """A duration in its two largest units: 3d 4h, 5h 20m, 12m."""
    return "—" if value is None else short_duration(value)


def relative_due(when: datetime, now: datetime) -> str:
    """A deadline as people say it: "in 3 h", "in 2 days", "2 days late", "5 min late"."""
    seconds = (when - now).total_seconds()
    late = seconds < 0
    seconds = abs(seconds)
    if seconds < 60:
        return "late by a moment" if late else "in under a minute"
    for size, one, many in ((86400, "day", "days"), (3600, "h", "h"), (60, "min", "min")):
        if seconds >= size:
            amount = int(seconds / size + 0.5)
            unit = one if amount == 1 else many
            return f"{amount} {unit} late" if late else f"in {amount} {unit}"
    raise AssertionError("unreachable")


@register.inclusion_tag("approvals/_due.html")
def due(when: datetime) -> dict[str, object]:
    """A deadline, relative ("in 3 h", "2 days late"), with the exact time on hover."""
    now = timezone.now()
    return {"when": when, "relative": relative_due(when, now), "late": when < now}


@register.inclusion_tag("approvals/_countdown.html")
def countdown(when: datetime) -> dict[str, object]:
    """A moment seconds away (a held decision taking effect): "in 8 s", which live.js counts
    down, with the exact time beside it."""
    seconds = max(0, int((when - timezone.now()).total_seconds() + 0.5))
    return {"when": when, "seconds": seconds}


@register.simple_tag
def undo_fields(held: Held) -> str:
    """The fields of an Undo of this held decision, as JSON (htmx's hx-vals)."""
    return json.dumps(
        {"kind": ActionKind.UNDO.value, "target": held.action.action_id, "action_id": form_token()}
    )


@register.filter
def noun(kind: str) -> str:
    """An action's kind as a sentence names it: "approval", "request for changes"."""
    return rules.NOUNS[ActionKind(kind)]


LIMITS = {"comment": rules.MAX_COMMENT, "title": rules.MAX_TITLE}


@register.simple_tag
def limit(name: str) -> int:
    """A limit of the rules (workflows.rules), for a field's maxlength: "comment", "title"."""
    return LIMITS[name]


@register.simple_tag(takes_context=True)
def preserve(context: Context, *parts: object) -> str:
    """`hx-preserve` for the element with this id, so that a swap keeps it as the person left it
    (what they typed or chose): always, except the form whose answer this is (`fresh`), which
    comes back afresh for the next action."""
    element_id = "".join(str(part) for part in parts)
    return "" if element_id == context.get("fresh") else mark_safe(' hx-preserve="true"')
