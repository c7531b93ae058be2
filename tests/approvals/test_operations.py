"""What an operator runs the app with: /healthz, /readyz, and the metrics of the web and of the
Temporal SDK in a worker."""

from __future__ import annotations

import urllib.request
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from temporalio.client import Client as TemporalClient

from approvals import client as temporal_client
from approvals import metrics, services
from approvals.models import ApprovalRequest, OutboundEmail, RequestType
from tests.conftest import LoopThread, RunningWorker, as_user, free_port, make_request, wait_until


def test_healthz_answers_while_everything_else_is_away_and_asks_nothing_of_it(
    transactional_db: None, temporal_unreachable: str, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(0):
        answer = Client().get("/healthz")
    assert answer.status_code == 200 and answer.content == b"ok\n"
    assert "no-cache" in answer["Cache-Control"]


def test_readyz_says_which_dependency_is_away(transactional_db: None, temporal_unreachable: str) -> None:
    answer = Client().get("/readyz")
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"]["ok"] is True and body["checks"]["channel_layer"]["ok"] is True
    assert body["checks"]["temporal"]["ok"] is False
    assert temporal_unreachable in body["checks"]["temporal"]["error"]


@pytest.mark.temporal_server
def test_readyz_is_ready_when_the_database_temporal_and_the_channel_layer_answer(
    transactional_db: None, dev_server_settings: TemporalClient
) -> None:
    temporal_client.reset()
    answer = Client().get("/readyz")
    assert answer.status_code == 200, answer.content
    assert answer.json()["status"] == "ready"
    assert {name for name, check in answer.json()["checks"].items() if check["ok"]} == {
        "database",
        "temporal",
        "channel_layer",
    }


def sample(name: str, labels: dict[str, str]) -> float:
    """A series' value in this process now (0 before its first sample)."""
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_web_metrics_count_and_time_answers_by_route_and_show_the_business_gauges(
    people: dict[str, User], purchase: RequestType, temporal_unreachable: str, settings: Any
) -> None:
    late = make_request(people, purchase, started=True)
    ApprovalRequest.objects.filter(pk=late.pk).update(deadline=timezone.now() - timedelta(hours=1))
    make_request(people, purchase, started=True)
    OutboundEmail.objects.create(
        to="x@example.com", subject="s", kind="assigned", idempotency_key="k", status="failed", body_text="b"
    )
    inbox = {"method": "GET", "route": "/inbox/"}
    detail = {"method": "GET", "route": "/requests/<uuid:public_id>/", "status": "200"}
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    before = {
        "inbox": sample("approvals_http_requests_total", {**inbox, "status": "200"}),
        "inbox_timed": sample("approvals_http_request_duration_seconds_count", inbox),
        "detail": sample("approvals_http_requests_total", detail),
        "unmatched": sample("approvals_http_requests_total", unmatched),
    }
    reviewer = as_user(people["reviewer1"])
    for _ in range(3):
        assert reviewer.get("/inbox/").status_code == 200
    assert reviewer.get(f"/requests/{late.public_id}/").status_code == 200
    Client().get("/no/such/page/")

    text = Client().get("/metrics").content.decode()
    assert sample("approvals_http_requests_total", {**inbox, "status": "200"}) == before["inbox"] + 3
    assert sample("approvals_http_request_duration_seconds_count", inbox) == before["inbox_timed"] + 3
    assert sample("approvals_http_requests_total", detail) == before["detail"] + 1  # the pattern, not the id
    assert sample("approvals_http_requests_total", unmatched) == before["unmatched"] + 1
    assert 'approvals_http_request_duration_seconds_bucket{le="0.5",method="GET",route="/inbox/"}' in text
    assert 'approvals_requests{status="in_review"} 2.0' in text
    assert "approvals_requests_overdue 1.0" in text
    assert "approvals_emails_failed 1.0" in text
    assert "approvals_read_model_up 1.0" in text

    settings.METRICS_TOKEN = "s3cret-metrics"
    refused = Client().get("/metrics")
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert Client().get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"}).status_code == 200


@pytest.mark.temporal_server
def test_a_worker_serves_the_temporal_sdks_own_metrics(
    transactional_db: None,
    loop: LoopThread,
    settings: Any,
    dev_server_settings: TemporalClient,
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    port = free_port()
    settings.TEMPORAL_METRICS_ADDRESS = f"127.0.0.1:{port}"
    client = loop.run(temporal_client.connect())  # as the worker process connects
    worker = RunningWorker(loop, client, task_queue=settings.TEMPORAL_TASK_QUEUE)
    try:
        temporal_client.reset()
        request = services.request_submit(requester=people["requester"], request_type=purchase, title="Lamp")
        wait_until(lambda: request.participants.filter(pending=True).exists(), what="the stage's approvers")

        def metrics() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                return answer.read().decode()

        series = ("temporal_workflow_task_execution_latency", "temporal_activity_execution_latency")
        wait_until(lambda: all(name in metrics() for name in series), what="the SDK's series")
        text = metrics()
        assert f'task_queue="{settings.TEMPORAL_TASK_QUEUE}"' in text
        assert "temporal_worker_task_slots_available" in text
        assert "temporal_activity_execution_latency" in text
    finally:
        worker.stop()
