"""Logs as one JSON object a line in production (LOG_FORMAT=json), each with the request id of
the HTTP request it came from and the workflow id of the activity or workflow it came from,
wherever there is one, so that one search follows a request or a workflow across processes."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from approvals.middleware import Middleware

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
HEADER = "X-Request-ID"
GIVEN = re.compile(r"^[A-Za-z0-9._:-]{8,100}$")  # a proxy's own id, taken as it is when it looks like one


class RequestIds(Middleware):
    """Middleware: each HTTP request gets an id (the proxy's X-Request-ID, or a new one), on every
    log line written while it is answered and on its answer's X-Request-ID."""

    def before(self, request: Any) -> str:
        given = request.headers.get(HEADER, "")
        request_id = given if GIVEN.match(given) else uuid.uuid4().hex
        # Kept until the answer is sent (`request_done`): Django logs a 4xx or 5xx after every
        # middleware returned.
        REQUEST_ID.set(request_id)
        return request_id

    def after(self, request: Any, response: Any, request_id: str) -> Any:
        response[HEADER] = request_id
        return response


def request_done(**kwargs: Any) -> None:
    """Django's request_finished: what is logged from now on is no longer this request's."""
    REQUEST_ID.set("")


class Context(logging.Filter):
    """Put `request_id` and `workflow_id` on every record that has them (empty otherwise)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        record.workflow_id = _workflow_id(record)
        return True


def _workflow_id(record: logging.LogRecord) -> str:
    for extra in ("temporal_workflow", "temporal_activity"):  # the SDK's own loggers' details
        details = getattr(record, extra, None)
        if isinstance(details, dict) and details.get("workflow_id"):
            return str(details["workflow_id"])
    if activity.in_activity():  # any logger, inside an activity (a service it calls, say)
        return activity.info().workflow_id or ""
    return ""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ("request_id", "workflow_id"):
            if value := getattr(record, name, ""):
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)
