from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.text import slugify

from approvals.models import CostCentre, EscalationLevel, Manager, RequestType, Resource, Stage
from approvals.services.budgets import budget_allocate
from workflows.types import Fulfilment, Operator, Rule

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
        finance, _ = Group.objects.get_or_create(name="Finance")
        finance.user_set.add(users["manager"])
        reviewers = [users["reviewer1"], users["reviewer2"]]
        self._request_type(
            "Purchase",
            "Buy equipment, software or services. Above 1,000 it also needs Finance.",
            [
                dict(
                    name="Team lead",
                    users=reviewers,
                    deadline=timedelta(days=2),
                    reminder=timedelta(days=1),
                    escalation=[(timedelta(days=1), [users["manager"]])],
                ),
                dict(
                    name="Finance",
                    groups=[finance],
                    rule=Rule.ALL,
                    deadline=timedelta(days=3),
                    condition=("amount", Operator.GT, Decimal("1000")),
                ),
            ],
        )
        self._request_type(
            "Time off",
            "Days away from work: both team leads agree.",
            [
                dict(
                    name="Team leads",
                    users=reviewers,
                    rule=Rule.ALL,
                    deadline=timedelta(days=1),
                    escalation=[(timedelta(days=1), [users["manager"]])],
                )
            ],
        )
        self._request_type(
            "Quick demo",
            "Reminds every minute, escalates to the manager after two minutes, expires after four.",
            [
                dict(
                    name="Review",
                    users=reviewers,
                    deadline=timedelta(minutes=2),
                    reminder=timedelta(minutes=1),
                    escalation=[(timedelta(minutes=2), [users["manager"]])],
                )
            ],
        )
        self._request_type(
            "Purchase order",
            "Buy through a purchase order: once approved, the amount is reserved from the cost "
            "centre's budget and the order placed; if a step fails, what was done is undone.",
            [
                dict(
                    name="Team lead",
                    users=reviewers,
                    deadline=timedelta(days=2),
                    escalation=[(timedelta(days=1), [users["manager"]])],
                )
            ],
            fulfilment=Fulfilment.PURCHASE,
        )
        self._request_type(
            "Access",
            "Access to a system for a period: granted once approved, taken back when the period ends.",
            [dict(name="Team lead", users=reviewers, deadline=timedelta(days=2))],
            fulfilment=Fulfilment.ACCESS,
        )
        # Software agents ask before they act: a trusted agent's low-risk actions pass by
        # themselves (add its account to "Trusted agents"), others wait for a reviewer, and
        # destructive tools for two more people.
        trusted, _ = Group.objects.get_or_create(name="Trusted agents")
        self._request_type(
            "Agent action",
            "An action a software agent asks to take, with its exact arguments: the approval holds "
            "for those arguments only. Unanswered within an hour, it expires, which means no.",
            [
                dict(
                    name="Low risk",
                    users=reviewers,
                    deadline=timedelta(hours=1),
                    condition=("risk", Operator.EQ, "low"),
                    trusted=[trusted],
                ),
                dict(
                    name="Review",
                    users=reviewers,
                    deadline=timedelta(hours=1),
                    condition=("risk", Operator.GTE, "medium"),
                ),
                dict(
                    name="Two people for destructive tools",
                    users=[*reviewers, users["manager"]],
                    rule=Rule.N_OF_M,
                    required=2,
                    deadline=timedelta(hours=1),
                    condition=("tool", Operator.EQ, "db.*, *.delete, payments.refund"),
                ),
            ],
            for_agents=True,
        )
        # The access catalogue: the manager owns each resource (and reviews its access in
        # campaigns that ask owners) and approves extensions.
        for code, name, roles in (
            ("payroll", "Payroll", "read, write"),
            ("prod-db", "Production database", "read, admin"),
        ):
            resource, created = Resource.objects.get_or_create(
                code=code, defaults={"name": name, "roles": roles, "owner": users["manager"]}
            )
            if created:
                resource.approvers.set([users["manager"]])
        # Who reports to whom: the reviewers of access in campaigns that ask managers, and where
        # overdue reviews escalate.
        for username in ("requester", "reviewer1", "reviewer2"):
            Manager.objects.get_or_create(user=users[username], defaults={"manager": users["manager"]})
        Manager.objects.get_or_create(user=users["manager"], defaults={"manager": users["admin"]})
        # Cost centres with a budget each (once: a fixed key makes the allocation happen once).
        for code, name, amount in (("it", "IT", "25000.00"), ("ops", "Operations", "10000.00")):
            centre, _ = CostCentre.objects.get_or_create(code=code, defaults={"name": name})
            budget_allocate(
                cost_centre=centre, amount=Decimal(amount), memo="Demo budget", key=f"demo:{code}:budget"
            )
        if options["verbosity"] > 0:
            self.stdout.write("Demo data ready.")

    def _request_type(
        self,
        name: str,
        description: str,
        stages: list[dict[str, Any]],
        fulfilment: Fulfilment = Fulfilment.NONE,
        for_agents: bool = False,
    ) -> None:
        request_type, created = RequestType.objects.get_or_create(
            slug=slugify(name),
            defaults={
                "name": name,
                "description": description,
                "fulfilment": fulfilment.value,
                "for_agents": for_agents,
            },
        )
        if not created:
            return  # never overwrite what an admin has edited since
        for order, spec in enumerate(stages, start=1):
            field, operator, value = spec.get("condition", ("", "", None))
            stage = Stage.objects.create(
                request_type=request_type,
                order=order,
                name=spec["name"],
                rule=spec.get("rule", Rule.ANY),
                required_approvals=spec.get("required", 1),
                deadline=spec["deadline"],
                reminder_interval=spec.get("reminder"),
                condition_field=field,
                condition_operator=operator,
                condition_value=value if field == "amount" else None,
                condition_text=value if field in ("risk", "tool") else "",
            )
            stage.auto_approve_groups.set(spec.get("trusted", []))
            stage.approver_users.set(spec.get("users", []))
            stage.approver_groups.set(spec.get("groups", []))
            for level_order, (after, people) in enumerate(spec.get("escalation", []), start=1):
                level = EscalationLevel.objects.create(stage=stage, order=level_order, after=after)
                level.users.set(people)
