"""The API against its own OpenAPI schema, with schemathesis: generated calls to every operation,
valid and invalid alike, as a person with requests, an inbox and a token of every scope. None may
answer 500, and every answer must be one the schema describes (status, media type, body and
headers)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from approvals.api.pagination import encode_cursor
from approvals.models import RequestType, Stage
from approvals.services import tokens
from tests.conftest import make_request, make_user


@pytest.fixture
def bearer(transactional_db: None, temporal_unreachable: str) -> dict[str, str]:
    requester, reviewer = make_user("requester"), make_user("reviewer1")
    travel = RequestType.objects.create(name="Travel", slug="travel", undo_seconds=0)
    stage = Stage.objects.create(request_type=travel, name="Team")
    stage.approver_users.set([reviewer])
    for title in ("Lyon", "Oslo", "Porto"):
        make_request({"requester": requester}, travel, started=True, title=title)
    _, plain = tokens.token_create(user=reviewer, name="schemathesis", scopes=["read", "create", "decide"])
    return {"Authorization": f"Bearer {plain}"}


# Beyond what a schema can say, a well-formed call may still be refused for what it names (a
# request type there is no such thing as): 422, with problem details like every refusal.
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429", "503"]
            }
        }
    }
)
# The schema as the app serves it (reading it touches no database).
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application(), config=CONFIG)


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    database=None,
    derandomize=True,  # the same calls on every run: a failure in CI is one to re-run here
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_call_fails_on_our_side_and_every_answer_is_as_documented(
    case: Any, bearer: dict[str, str]
) -> None:
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if positive and case.query and isinstance(case.query.get("cursor"), str):
        # A cursor of the shape this API gives (a page's last date and id): any other string is
        # refused as not ours, with a 400 that tests/api/test_api.py shows.
        earlier = timezone.now() - timedelta(seconds=len(case.query["cursor"]))
        case.query["cursor"] = encode_cursor([earlier, 2])
    case.call_and_validate(headers=bearer)
