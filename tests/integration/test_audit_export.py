"""`manage.py export_audit`: a request's whole record, hash-chained, from the read model and from
Temporal; `--verify` finds a one-byte change."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from temporalio.client import Client as TemporalClient

from approvals import services
from approvals.models import ApprovalRequest, RequestType
from tests.conftest import wait_until
from workflows.types import ActionKind

pytestmark = pytest.mark.temporal_server


def verify(path: Path) -> str:
    from io import StringIO

    out = StringIO()
    call_command("export_audit", verify=str(path), stdout=out)
    return out.getvalue()


def test_the_export_holds_the_whole_record_verifies_and_fails_after_a_one_byte_edit(
    use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType, tmp_path: Path
) -> None:
    request = services.request_submit(
        requester=people["requester"], request_type=purchase, title="Standing desk", amount=640
    )
    wait_until(lambda: request.participants.filter(pending=True).exists(), what="the stage's approvers")
    request.refresh_from_db()
    services.request_act(
        request=request,
        actor=people["reviewer1"],
        kind=ActionKind.APPROVE,
        comment="Within budget",
        action_id=uuid.uuid4(),
    )
    wait_until(lambda: ApprovalRequest.objects.get(pk=request.pk).status == "approved", what="the approval")

    path = tmp_path / "audit.json"
    call_command("export_audit", str(request.public_id), output=str(path))
    document = json.loads(path.read_text())
    kinds = [e["kind"] for e in document["entries"]]
    assert kinds[:3] == ["request", "policy", "revision"] and document["temporal_history"] == "included"
    events = [e["data"] for e in document["entries"] if e["kind"] == "event"]
    assert [e["kind"] for e in events][0] == "submitted" and "approved" in [e["kind"] for e in events]
    assert [e["comment"] for e in events if e["kind"] == "approved"] == ["Within budget"]
    decisions = [e["data"] for e in document["entries"] if e["kind"] == "decision"]
    assert {(d["approver"], d["outcome"]) for d in decisions} >= {("reviewer1", "approval")}
    runs = [e["data"] for e in document["entries"] if e["kind"] == "temporal_run"]
    assert runs and runs[0]["history"]["events"][0]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"
    assert "verifies" in verify(path)

    # One byte changed in the approval's comment: the chain breaks at that very entry.
    text = path.read_text()
    edited = tmp_path / "edited.json"
    edited.write_text(text.replace('"comment": "Within budget"', '"comment": "Within budgeT"', 1))
    with pytest.raises(CommandError, match=r"Entry \d+ \(event\) was changed after it was exported"):
        verify(edited)
    # One byte of the history changed, anywhere in it.
    history_at = text.index('"eventId"')
    digit = text.index("1", history_at)
    edited.write_text(text[:digit] + "2" + text[digit + 1 :])
    with pytest.raises(CommandError, match="does not verify"):
        verify(edited)
    # The last entry dropped, with the chain otherwise intact.
    shortened = json.loads(text)
    shortened["entries"].pop()
    edited.write_text(json.dumps(shortened))
    with pytest.raises(CommandError, match="entries were removed or added at its end"):
        verify(edited)
    edited.write_text(text[:-10])
    with pytest.raises(CommandError, match="is not the JSON it was exported as"):
        verify(edited)


def test_an_export_needs_its_history_or_says_it_left_it_out(
    people: dict[str, User], purchase: RequestType, temporal_unreachable: str, tmp_path: Path
) -> None:
    from tests.conftest import make_request

    request = make_request(people, purchase, started=True)
    path = tmp_path / "audit.json"
    with pytest.raises(CommandError, match="nothing was written"):
        call_command("export_audit", str(request.public_id), output=str(path))
    assert not path.exists()
    call_command("export_audit", str(request.public_id), output=str(path), no_history=True)
    assert json.loads(path.read_text())["temporal_history"] == "omitted"
    assert "verifies" in verify(path)
    with pytest.raises(CommandError, match="There is no request"):
        call_command("export_audit", str(uuid.uuid4()))
