from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from approvals import client as temporal
from approvals.models import ApprovalRequest
from approvals.services.audit_export import audit_export, audit_verify


class Command(BaseCommand):
    help = (
        "Write a request's full record as hash-chained JSON (its timeline, snapshots, decisions and "
        "Temporal event history), or check such a file with --verify."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("request_id", nargs="?", help="The request's id (as in its page's address).")
        parser.add_argument("-o", "--output", help="Write to this file (default: standard output).")
        parser.add_argument(
            "--no-history", action="store_true", help="Leave out Temporal's history (say so in the file)."
        )
        parser.add_argument(
            "--verify", metavar="FILE", help="Check an exported file and say where it breaks."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["verify"]:
            self._verify(Path(options["verify"]))
            return
        if not options["request_id"]:
            raise CommandError("Name the request to export, or --verify a file.")
        try:
            public_id = uuid.UUID(options["request_id"])
            request = ApprovalRequest.objects.select_related("request_type", "requester").get(
                public_id=public_id
            )
        except (ValueError, ApprovalRequest.DoesNotExist) as exc:
            raise CommandError(f"There is no request {options['request_id']}.") from exc
        try:
            document = audit_export(request=request, with_history=not options["no_history"])
        except temporal.TemporalError as exc:
            raise CommandError(
                f"Temporal's history of {request.workflow_id} could not be read ({exc}); nothing was "
                "written. Try again, or use --no-history for the record without it."
            ) from exc
        text = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
        if options["output"]:
            Path(options["output"]).write_text(text, encoding="utf-8")
            self.stderr.write(
                f"Wrote {document['count']} entries to {options['output']} (head {document['head']})."
            )
        else:
            sys.stdout.write(text)

    def _verify(self, path: Path) -> None:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise CommandError(f"There is no file {path}.") from exc
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CommandError(f"{path} is not the JSON it was exported as: {exc}") from exc
        if problems := audit_verify(document):
            raise CommandError(f"{path} does not verify: " + " ".join(problems))
        self.stdout.write(
            f"{path} verifies: {document['count']} entries of request {document['request']}, "
            f"head {document['head']}."
        )
