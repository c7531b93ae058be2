"""Separation of duties as a request type's policy: on for every type created from now on, off
for the types that exist already (their requests keep routing as before until an admin turns it
on)."""

from django.db import migrations, models

HELP = (
    "Separation of duties: nobody approves two stages of one request, nor takes a later "
    "stage by delegation after approving an earlier one."
)


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0007_details_are_bounded"),
    ]

    operations = [
        migrations.AddField(
            model_name="requesttype",
            name="distinct_approvers",
            field=models.BooleanField(default=False, help_text=HELP, verbose_name="Distinct approvers"),
        ),
        migrations.AlterField(
            model_name="requesttype",
            name="distinct_approvers",
            field=models.BooleanField(default=True, help_text=HELP, verbose_name="Distinct approvers"),
        ),
    ]
