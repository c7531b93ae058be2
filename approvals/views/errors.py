"""The last line of defence: a server error page, a 503 while the database is away, and our own
not-found page even with DEBUG on."""

from __future__ import annotations

import logging
import sys

from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotFound
from django.template import loader
from django.utils.deprecation import MiddlewareMixin

logger = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 30


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's handler500. A database that cannot be reached is not our bug but an outage that
    passes: say so with 503 and when to try again. The pages are rendered without the request,
    so that nothing on them needs the database."""
    error = sys.exc_info()[1]
    if isinstance(error, OperationalError | InterfaceError):
        logger.error("Database unavailable for %s %s: %s", request.method, request.path, error)
        response = HttpResponse(loader.render_to_string("503.html"), status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return HttpResponse(loader.render_to_string("500.html"), status=500)


class NotFoundPage(MiddlewareMixin):
    """Our not-found page for a 404 a view raises, with DEBUG on too (`manage.py up`), where
    Django's would list every URL pattern to whoever opened a request they may not see."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, Http404):
            return None
        page = loader.render_to_string("404.html", {"exception": str(exception)}, request)
        return HttpResponseNotFound(page)
