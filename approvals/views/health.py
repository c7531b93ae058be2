"""For the proxy, the orchestrator and Prometheus: alive, ready, and the metrics."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from approvals import metrics
from approvals.services.health import readiness


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """The process is alive and answers; it asks nothing of anything else."""
    return HttpResponse("ok\n", content_type="text/plain")


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready to serve: the database, Temporal and the channel layer answered just now (503 if not)."""
    checks = readiness()
    ready = all(check.ok for check in checks.values())
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {
            name: {"ok": c.ok, "ms": c.ms, **({"error": c.error} if c.error else {})}
            for name, c in checks.items()
        },
    }
    return JsonResponse(body, status=200 if ready else 503)


@never_cache
@require_GET
def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    """This web process's metrics in Prometheus's text format; with METRICS_TOKEN set, only for
    `Authorization: Bearer <METRICS_TOKEN>`."""
    if settings.METRICS_TOKEN:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), settings.METRICS_TOKEN.encode()):
            response = HttpResponse("Send the metrics token: Authorization: Bearer <token>\n", status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return HttpResponse(metrics.exposition(), content_type="text/plain; version=0.0.4; charset=utf-8")
