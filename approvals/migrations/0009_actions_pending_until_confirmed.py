"""Actions sent and not confirmed yet, shown as pending to their senders (PendingAction), and each
event's action id, by which the projection confirms them."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0008_distinct_approvers"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="requestevent",
            name="action_id",
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.CreateModel(
            name="PendingAction",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("kind", models.CharField(max_length=30)),
                ("action_id", models.CharField(max_length=100, unique=True)),
                (
                    "via",
                    models.CharField(
                        choices=[
                            ("page", "a page of the app"),
                            ("bulk", "a bulk action"),
                            ("email", "an email link"),
                        ],
                        max_length=10,
                    ),
                ),
                ("sent_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "actor",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "request",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="pending_actions",
                        to="approvals.approvalrequest",
                    ),
                ),
            ],
            options={
                "ordering": ["sent_at"],
                "indexes": [models.Index(fields=["actor", "request"], name="pending_action_of")],
            },
        ),
    ]
