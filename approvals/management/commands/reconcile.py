from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from approvals import client as temporal
from approvals.services.reconcile import reconcile


class Command(BaseCommand):
    help = (
        "Compare every open request in the read model with its workflow in Temporal and report any "
        "drift; --fix projects the workflow's state again where they differ. Exits 1 while drift remains."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--fix", action="store_true", help="Repair the drift found (Temporal is right).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            findings = reconcile(fix=options["fix"])
        except temporal.TemporalError as exc:
            raise CommandError(
                f"Temporal could not list its running workflows ({exc}); nothing was checked."
            ) from exc
        drifted = [f for f in findings if f.differences]
        unasked = [f for f in findings if f.error]
        for finding in drifted:
            state = "fixed" if finding.fixed else ("NOT fixed" if options["fix"] else "drift")
            self.stdout.write(f"{finding.request.workflow_id}: {state}: " + "; ".join(finding.differences))
        for finding in unasked:
            self.stdout.write(f"{finding.request.workflow_id}: could not ask its workflow: {finding.error}")
        fixed = sum(f.fixed for f in drifted)
        self.stdout.write(
            f"{len(findings)} open requests checked: {len(findings) - len(drifted) - len(unasked)} in step, "
            f"{len(drifted)} drifted"
            + (f" ({fixed} fixed)" if options["fix"] else "")
            + f", {len(unasked)} not asked."
        )
        if any(not f.fixed for f in drifted) or unasked:
            raise CommandError(
                "Drift remains." if drifted else "Some workflows could not be asked.", returncode=1
            )
