"""The Django admin's site, logging the attempts of people who are logged in but not staff."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from approvals.views.common import log_refused


class AdminSite(admin.AdminSite):
    def has_permission(self, request: HttpRequest) -> bool:
        allowed = super().has_permission(request)
        if not allowed and request.user.is_authenticated:
            log_refused(request, "staff only")
        return allowed
