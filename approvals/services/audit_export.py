"""A request's full record as one JSON document an auditor can keep: the request, its policy and
each revision as submitted, every event of its timeline, every decision asked for and given,
and its workflow's event history from Temporal, run by run.

Each entry is chained to the one before: its `hash` is the SHA-256 of the previous entry's hash
and its own canonical JSON, and the document's `head` is the last hash. Changing, removing,
reordering or adding any entry, or a byte of one, breaks the chain from there on (`verify`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone

from approvals import client as temporal
from approvals.models import ApprovalRequest

FORMAT = "approvals-audit/1"
GENESIS = "0" * 64


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def canonical(value: Any) -> str:
    """The one JSON text of a value: sorted keys, no spaces, UTF-8 as it is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain)


def entry_hash(prev: str, number: int, kind: str, data: Any) -> str:
    text = canonical({"n": number, "kind": kind, "data": data})
    return hashlib.sha256(f"{prev}\n{text}".encode()).hexdigest()


def _records(request: ApprovalRequest, *, with_history: bool) -> list[tuple[str, Any]]:
    records: list[tuple[str, Any]] = [
        (
            "request",
            {
                "id": str(request.public_id),
                "type": request.request_type.slug,
                "title": request.title,
                "details": request.details,
                "amount": request.amount,
                "status": request.status,
                "requester": request.requester.get_username(),
                "created_at": request.created_at,
                "decided_by": request.decided_by_name,
                "decided_at": request.decided_at,
                "decision_comment": request.decision_comment,
                "workflow_id": request.workflow_id,
            },
        ),
        ("policy", request.policy),
    ]
    for revision in request.revisions.order_by("number"):
        records.append(
            (
                "revision",
                {
                    "number": revision.number,
                    "title": revision.title,
                    "details": revision.details,
                    "amount": revision.amount,
                    "submitted_at": revision.created_at,
                },
            )
        )
    for event in request.events.select_related("actor").order_by("seq"):
        records.append(
            (
                "event",
                {
                    "seq": event.seq,
                    "kind": event.kind,
                    "actor": event.actor.get_username() if event.actor else None,
                    "actor_name": event.actor_name,
                    "comment": event.comment,
                    "detail": event.detail,
                    "stage": event.stage,
                    "revision": event.revision,
                    "occurred_at": event.occurred_at,
                    "action_id": event.action_id,
                },
            )
        )
    for assignment in request.assignments.select_related("user").order_by("asked_at", "pk"):
        records.append(
            (
                "decision",
                {
                    "approver": assignment.user.get_username(),
                    "stage": assignment.stage_name,
                    "stage_version": assignment.stage_version,
                    "level": assignment.level,
                    "asked_at": assignment.asked_at,
                    "closed_at": assignment.closed_at,
                    "outcome": assignment.outcome,
                },
            )
        )
    if with_history:
        for run in temporal.histories(request.public_id):
            records.append(("temporal_run", run))
    return records


def audit_export(*, request: ApprovalRequest, with_history: bool = True) -> dict[str, Any]:
    """The request's record, hash-chained. Temporal's history is asked for unless told not to;
    when Temporal cannot answer, TemporalError (no record is made without what was asked for)."""
    entries = []
    prev = GENESIS
    for number, (kind, data) in enumerate(_records(request, with_history=with_history), start=1):
        data = json.loads(canonical(data))  # as it will read back
        digest = entry_hash(prev, number, kind, data)
        entries.append({"n": number, "kind": kind, "data": data, "prev": prev, "hash": digest})
        prev = digest
    return {
        "format": FORMAT,
        "request": str(request.public_id),
        "exported_at": timezone.now().isoformat(),
        "temporal_history": "included" if with_history else "omitted",
        "count": len(entries),
        "head": prev,
        "entries": entries,
    }


def audit_verify(document: Any) -> list[str]:
    """What is wrong with an exported record: nothing (an empty list) if every entry is as it was
    exported, else where the chain first breaks."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        return [f"This is not an {FORMAT} document."]
    entries = document.get("entries")
    if not isinstance(entries, list):
        return ["It has no list of entries."]
    prev = GENESIS
    for position, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not {"n", "kind", "data", "prev", "hash"} <= set(entry):
            return [f"Entry {position} is not an entry."]
        if entry["n"] != position:
            return [f"Entry {position} says it is entry {entry['n']}: entries were removed or reordered."]
        if entry["prev"] != prev:
            return [f"Entry {position} ({entry['kind']}) does not follow entry {position - 1}."]
        if entry_hash(prev, position, entry["kind"], entry["data"]) != entry["hash"]:
            return [f"Entry {position} ({entry['kind']}) was changed after it was exported."]
        prev = entry["hash"]
    if document.get("count") != len(entries) or document.get("head") != prev:
        return ["The record's end is not where it was: entries were removed or added at its end."]
    return []
