from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ApprovalsConfig(AppConfig):
    default = True  # this module also holds the admin's config
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        from django.core.signals import request_finished

        from approvals.logs import request_done

        request_finished.connect(request_done, dispatch_uid="approvals.logs.request_done")


class AdminConfig(admin_apps.AdminConfig):
    """Django's admin, on a site that logs refused attempts."""

    default = False
    default_site = "approvals.admin_site.AdminSite"
