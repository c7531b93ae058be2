"""Structured logs: one JSON object a line, with the request id and the workflow id wherever
there is one."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from temporalio.testing import ActivityEnvironment

from approvals.logs import REQUEST_ID, Context, JsonFormatter


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """What the root logger writes, as production writes it, from a thread no request is using
    (a test before may have left its request's id here, as a thread does between requests)."""
    REQUEST_ID.set("")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(Context())
    root = logging.getLogger()
    root.addHandler(handler)
    yield out
    root.removeHandler(handler)


def records(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_every_line_written_while_a_request_is_answered_carries_its_id(
    transactional_db: None, lines: io.StringIO
) -> None:
    answer = Client().get("/no/such/page/")
    request_id = answer["X-Request-ID"]
    logged = [r for r in records(lines) if r["logger"] == "django.request"]
    assert logged and all(r["request_id"] == request_id for r in logged)
    assert logged[0]["level"] == "WARNING" and "Not Found" in logged[0]["message"]

    # A proxy's own id is kept; anything else that calls itself one is replaced.
    assert Client().get("/healthz", headers={"X-Request-ID": "proxy-0123456789"})["X-Request-ID"] == (
        "proxy-0123456789"
    )
    forged = Client().get("/healthz", headers={"X-Request-ID": "x\nFAKE LOG LINE"})["X-Request-ID"]
    assert "\n" not in forged and len(forged) == 32


def test_lines_from_an_activity_or_a_workflow_carry_its_workflow_id(lines: io.StringIO) -> None:
    def an_activity() -> None:
        logging.getLogger("approvals.services.notifications").warning("mail server away")

    ActivityEnvironment().run(an_activity)
    logging.getLogger("temporalio.workflow").info(
        "stage started", extra={"temporal_workflow": {"workflow_id": "approval-1"}}
    )
    logging.getLogger("approvals").info("no workflow here")
    mail, stage, plain = records(lines)[-3:]
    assert mail["workflow_id"] == "test" and mail["message"] == "mail server away"
    assert stage["workflow_id"] == "approval-1"
    assert "workflow_id" not in plain and "request_id" not in plain
    assert set(plain) == {"time", "level", "logger", "message"}
