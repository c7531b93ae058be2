"""The soak's invariants catch the bugs they are there for: each test runs the app's own code
twice, as it is and with one bug put in on purpose (a mutant: the function's source with one
change), through the step a fault makes happen (a retried activity, a late projection, a
running request replayed on new code), and the soak's own check holds on the first and fails on
the second."""

from __future__ import annotations

import inspect
import shutil
import sys
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.management import CommandError, call_command
from temporalio.client import Client as TemporalClient

from approvals import services
from approvals.models import ApprovalRequest, RequestType
from approvals.services import notifications, projection
from bench.soak_checks import Result, read_model_findings, reconcile_judged, replayed
from tests.conftest import LoopThread, make_request, wait_until
from tests.workflows.test_replay import HISTORIES, load
from workflows.approval import ApprovalWorkflow
from workflows.registry import ALL_WORKFLOWS
from workflows.types import ActionKind, NotificationInput, NotificationKind


def mutant(function: Callable[..., Any], old: str, new: str) -> Callable[..., Any]:
    """`function` with `old` in its source (found exactly once) changed to `new`, compiled in a
    copy of its module's globals."""
    source = textwrap.dedent(inspect.getsource(function))
    assert source.count(old) == 1, f"the mutation's text is not in {function.__name__} once"
    scope = dict(function.__globals__)
    exec(compile(source.replace(old, new), inspect.getsourcefile(function) or "?", "exec"), scope)
    return scope[function.__name__]  # type: ignore[no-any-return]


# --- An email sent without its key check ------------------------------------------------------


def emails_sent_twice_by_a_retry(request: ApprovalRequest, reviewer: User) -> list[str]:
    """The soak's at-most-once finding after the email activity ran, and ran again (a retry
    after its acknowledgement was lost)."""
    notification = NotificationInput(
        request_id=str(request.public_id),
        kind=NotificationKind.ASSIGNED,
        recipient_ids=[reviewer.pk],
        idempotency_key=f"assigned:{request.public_id}",
    )
    mail.outbox.clear()
    services.notification_send(notification=notification)
    services.notification_send(notification=notification)
    received = Counter(str(m.extra_headers["X-Idempotency-Key"]) for m in mail.outbox)
    findings = {name: problems for name, _, problems in read_model_findings([], dict(received), {})}
    return findings["every email key was sent at most once"]


@pytest.mark.django_db
def test_an_email_sent_without_its_key_check_breaks_at_most_once(
    people: dict[str, User], purchase: RequestType, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = make_request(people, purchase, started=True)
    assert emails_sent_twice_by_a_retry(request, people["reviewer1"]) == []

    careless = mutant(
        notifications.email_once,
        "    if email.status != OutboundEmail.Status.PENDING:\n        return\n",
        "",
    )
    monkeypatch.setattr(notifications, "email_once", careless)
    other = make_request(people, purchase, started=True)
    problems = emails_sent_twice_by_a_retry(other, people["reviewer1"])
    assert problems == [f"assigned:{other.public_id}:{people['reviewer1'].pk} sent 2 times"]


# --- A projection that skips its version check ------------------------------------------------


def reconciled() -> Result:
    out, err = StringIO(), StringIO()
    try:
        call_command("reconcile", stdout=out, stderr=err)
        code = 0
    except CommandError as exc:
        code, err = exc.returncode, StringIO(str(exc))
    return reconcile_judged(code, out.getvalue(), err.getvalue())


@pytest.mark.temporal_server
def test_a_projection_that_skips_its_version_check_breaks_reconcile(
    use_dev_server: TemporalClient,
    people: dict[str, User],
    purchase: RequestType,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    projections: list[Any] = []
    project = services.request_project

    def recorded(*, projection: Any) -> Any:
        projections.append(projection)
        return project(projection=projection)

    monkeypatch.setattr(services, "request_project", recorded)
    request = services.request_submit(requester=people["requester"], request_type=purchase, title="Chairs")
    wait_until(lambda: request.participants.filter(pending=True).exists(), what="the approvers")
    request.refresh_from_db()
    services.request_act(
        request=request, actor=people["reviewer1"], kind=ActionKind.COMMENT, comment="Which?"
    )
    wait_until(lambda: request.events.filter(kind="comment").exists(), what="the comment")
    wait_until(lambda: reconciled().held, what="the read model in step")
    first = projections[0]  # its activity's attempt, late: it lands after the newer ones

    project(projection=first)
    assert reconciled().held

    monkeypatch.setattr(
        projection,
        "_project",
        mutant(projection._project, "if projection.seq <= request.version:", "if False:"),
    )
    project(projection=first)
    broken = reconciled()
    assert not broken.held
    assert f"{request.workflow_id}: drift: projected up to event {first.seq}" in broken.problem


# --- A non-deterministic change to a workflow -------------------------------------------------


@pytest.fixture
def changed_workflows(tmp_path: Path) -> Iterator[list[type]]:
    """Today's workflows, but ApprovalWorkflow changed without a patch: it sleeps before its
    lifecycle. (A module of its own on sys.path, for the sandbox to import.)"""
    import workflows.approval

    source = Path(workflows.approval.__file__).read_text()
    old = "        try:\n            await self._lifecycle()"
    assert source.count(old) == 1
    changed = source.replace(old, "        await workflow.sleep(1)\n" + old)
    (tmp_path / "changed_approval.py").write_text(changed)
    sys.path.insert(0, str(tmp_path))
    try:
        import changed_approval  # type: ignore[import-not-found]

        yield [changed_approval.ApprovalWorkflow if w is ApprovalWorkflow else w for w in ALL_WORKFLOWS]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("changed_approval", None)
        shutil.rmtree(tmp_path / "__pycache__", ignore_errors=True)


def test_a_non_deterministic_change_to_a_workflow_breaks_replay(
    loop: LoopThread, changed_workflows: list[type]
) -> None:
    histories = [load(path) for path in HISTORIES if path.stem.startswith(("approved_in_two", "withdrawn"))]
    assert len(histories) >= 2
    assert loop.run(replayed(histories)).held

    broken = loop.run(replayed(histories, changed_workflows))
    assert not broken.held and broken.count == len(histories)
    assert "Nondeterminism" in broken.problem or "nondetermin" in broken.problem.lower()
