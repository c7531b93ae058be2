from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from django.db import transaction

from approvals.models import RequestType

# Demo accounts for the embedded default; `up` prints them. Never run this in production.
DEMO_PASSWORD = "demo-pass-123"
DEMO_USERS = [
    # username, email, is_staff, role
    ("requester", "requester@example.com", False, "asks for approval"),
    ("reviewer1", "reviewer1@example.com", False, "reviews every request type"),
    ("reviewer2", "reviewer2@example.com", False, "reviews every request type"),
    ("manager", "manager@example.com", False, "receives escalations"),
    ("admin", "admin@example.com", True, "staff: dashboards, mailbox, Django admin"),
]
DEMO_TYPES = [
    ("Purchase", "purchase", "Buy equipment, software or services.", timedelta(days=2)),
    ("Time off", "time-off", "Days away from work.", timedelta(days=1)),
    (
        "Quick demo",
        "quick-demo",
        "Escalates after two minutes, to see escalation happen.",
        timedelta(minutes=2),
    ),
]


class Command(BaseCommand):
    help = "Create the demo users and request types (idempotent)."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        users: dict[str, User] = {}
        for username, email, is_staff, _ in DEMO_USERS:
            user, created = User.objects.get_or_create(
                username=username, defaults={"email": email, "is_staff": is_staff, "is_superuser": is_staff}
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            users[username] = user
        for name, slug, description, deadline in DEMO_TYPES:
            request_type, created = RequestType.objects.get_or_create(
                slug=slug,
                defaults={
                    "name": name,
                    "description": description,
                    "review_deadline": deadline,
                    "escalation_manager": users["manager"],
                },
            )
            if created:
                request_type.reviewers.set([users["reviewer1"], users["reviewer2"]])
        if options["verbosity"] > 0:
            self.stdout.write("Demo data ready.")
