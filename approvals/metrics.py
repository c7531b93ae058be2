"""Prometheus metrics of the web: its requests' counts and latencies by route, and the business's
gauges (open, overdue and escalated requests, failed emails), read on each scrape from the same
counts the staff dashboard shows.

The SDK's own metrics come from each worker process (TEMPORAL_METRICS_ADDRESS, see
approvals.client.connection)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from approvals.middleware import Middleware

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "approvals_http_requests",
    "HTTP requests answered by this web process, by method, route and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "approvals_http_request_duration_seconds",
    "How long this web process took to answer, by method and route.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)

WAITING = Gauge(
    "approvals_waiting_calls",
    "Calls to /api/v1/requests/{id}/wait this web process holds open now, each waiting for a decision.",
    registry=REGISTRY,
)


def _route(request: HttpRequest) -> str:
    """The route's pattern, never the path itself (ids would make a series each)."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    return "/" + (match.route or match.url_name or "unnamed")


class RequestMetrics(Middleware):
    """Middleware: count and time every answer. Websockets are not HTTP requests and are not here."""

    def before(self, request: HttpRequest) -> float:
        return time.perf_counter()

    def after(self, request: HttpRequest, response: Any, started: float) -> Any:
        route, method = _route(request), request.method or ""
        LATENCY.labels(method, route).observe(time.perf_counter() - started)
        REQUESTS.labels(method, route, str(response.status_code)).inc()
        return response


class BusinessCollector(Collector):
    def describe(self) -> list[Any]:
        return []  # nothing read when registered: the gauges are read on each scrape

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from approvals.selectors.dashboard import dashboard_counts

        try:
            summary = dashboard_counts()
        except DatabaseError:
            yield GaugeMetricFamily("approvals_read_model_up", "Whether the database answered.", value=0)
            return
        yield GaugeMetricFamily("approvals_read_model_up", "Whether the database answered.", value=1)
        by_status = GaugeMetricFamily("approvals_requests", "Requests in each status now.", labels=["status"])
        for _label, value, count in summary["counts"]:
            by_status.add_metric([value], count)
        yield by_status
        for name, key, what in [
            ("approvals_requests_overdue", "overdue_count", "Requests in review past their deadline."),
            ("approvals_requests_escalated", "escalated_count", "Requests in review that escalated."),
            ("approvals_emails_failed", "failed_email_count", "Emails that could not be sent."),
            ("approvals_requests_not_started", "not_started", "Requests whose workflow waits to start."),
            ("approvals_webhooks_failing", "failing_webhook_count", "Webhook deliveries that gave up."),
        ]:
            yield GaugeMetricFamily(name, what, value=summary[key])


REGISTRY.register(BusinessCollector())


def exposition() -> bytes:
    return generate_latest(REGISTRY)
