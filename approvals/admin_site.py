"""The Django admin's site, logging the attempts of people who are logged in but not staff."""

from __future__ import annotations

import logging

from django.contrib import admin
from django.http import HttpRequest

logger = logging.getLogger(__name__)


class AdminSite(admin.AdminSite):
    def has_permission(self, request: HttpRequest) -> bool:
        allowed = super().has_permission(request)
        if not allowed and request.user.is_authenticated:
            logger.warning("Refused %s %s to %s: staff only", request.method, request.path, request.user)
        return allowed
