"""`manage.py reconcile`: drift made on purpose in the read model is found, and repaired from
the workflows' own state with --fix."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db.models import F, Max
from temporalio.client import Client as TemporalClient

from approvals import services
from approvals.models import ApprovalRequest, RequestEvent, RequestType
from tests.conftest import wait_until

pytestmark = pytest.mark.temporal_server


def reconcile(*args: str, **options: object) -> str:
    out = StringIO()
    call_command("reconcile", *args, stdout=out, **options)
    return out.getvalue()


def test_reconcile_finds_a_drift_made_on_purpose_and_fixes_it(
    use_dev_server: TemporalClient, people: dict[str, User], purchase: RequestType
) -> None:
    made = [
        services.request_submit(requester=people["requester"], request_type=purchase, title=title)
        for title in ("Closed by mistake", "Projection lost", "Left alone")
    ]
    for request in made:
        wait_until(lambda r=request: r.participants.filter(pending=True).exists(), what="the approvers")
    closed, lost, alone = made
    assert "3 open requests checked: 3 in step, 0 drifted" in reconcile()

    # A mistaken UPDATE closes one here while its workflow still waits for its reviewers.
    ApprovalRequest.objects.filter(pk=closed.pk).update(status="approved", decided_by_name="nobody")
    # Another's last projection is lost: its last event, who it waits for, and its version.
    last = lost.events.aggregate(last=Max("seq"))["last"]
    RequestEvent.objects.filter(request=lost, seq=last).delete()
    lost.participants.update(pending=False)
    ApprovalRequest.objects.filter(pk=lost.pk).update(version=F("version") - 1)

    with pytest.raises(CommandError, match="Drift remains") as refused:
        reconcile()
    assert refused.value.returncode == 1
    found = StringIO()
    with pytest.raises(CommandError):
        call_command("reconcile", stdout=found)
    report = found.getvalue()
    assert f"{closed.workflow_id}: drift: status is approved here, in_review in its workflow" in report
    assert (
        f"{lost.workflow_id}: drift: projected up to event {last - 1}, its workflow is at event {last}"
        in report
    )
    assert "waiting for nobody here" in report and alone.workflow_id not in report

    fixed = reconcile(fix=True)
    assert "3 open requests checked: 1 in step, 2 drifted (2 fixed), 0 not asked." in fixed
    closed.refresh_from_db()
    lost.refresh_from_db()
    assert closed.status == "in_review" and lost.version == last
    assert RequestEvent.objects.filter(request=lost, seq=last).count() == 1
    assert set(lost.participants.filter(pending=True).values_list("user__username", flat=True)) == {
        "reviewer1",
        "reviewer2",
    }
    assert "3 open requests checked: 3 in step, 0 drifted" in reconcile()


def test_reconcile_says_when_temporal_cannot_be_asked(
    transactional_db: None, temporal_unreachable: str
) -> None:
    with pytest.raises(CommandError, match="nothing was checked"):
        reconcile()
