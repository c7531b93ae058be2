"""Drift between the read model and Temporal: each open request's projected state against what
its workflow holds now, and a repair that projects the workflow's state again.

The read model is only ever written by projections of the workflow's state, numbered, so drift
means a projection was lost or the database was changed by hand (a restore, a mistaken UPDATE).
The workflow is the source of truth; a repair never changes it."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from approvals import client as temporal
from approvals.live import push_after_commit
from approvals.models import ApprovalRequest
from approvals.services.projection import request_project
from workflows.review import Review
from workflows.types import RequestState, RequestStatus

OPEN = [RequestStatus.SUBMITTED, RequestStatus.IN_REVIEW, RequestStatus.CHANGES_REQUESTED]


@dataclass
class Finding:
    request: ApprovalRequest
    differences: list[str] = field(default_factory=list)
    error: str = ""  # the workflow could not be asked
    fixed: bool = False


def differences(request: ApprovalRequest, state: RequestState) -> list[str]:
    """How the read model's request differs from the workflow's state, in words."""
    found = []
    if request.status != state.status.value:
        found.append(f"status is {request.status} here, {state.status.value} in its workflow")
    if request.version < state.seq:
        found.append(f"projected up to event {request.version}, its workflow is at event {state.seq}")
    stage_version = state.stage.version if state.stage else 0
    if request.status == state.status.value and request.stage_version != stage_version:
        found.append(f"stage version {request.stage_version} here, {stage_version} in its workflow")
    here = set(request.participants.filter(pending=True).values_list("user_id", flat=True))
    there = {a.user_id for a in state.pending()}
    if here != there:
        found.append(
            f"waiting for {sorted(here) or 'nobody'} here, {sorted(there) or 'nobody'} in its workflow"
        )
    return found


def repair(request: ApprovalRequest, state: RequestState) -> None:
    """Project the workflow's state again, as its own projection would: the events the read model
    lacks are added (each once), and the request's state and who it waits for are written anew."""
    review = Review(state, now=timezone.now, patched=lambda name: True)
    projection = review.projection(list(state.timeline), state.pending())
    with transaction.atomic():
        # Let this projection through the version check, which keeps a late projection from
        # overwriting newer state: the state here is the workflow's newest.
        ApprovalRequest.objects.filter(pk=request.pk, version__gte=state.seq).update(version=state.seq - 1)
        push_after_commit(request_project(projection=projection))


MAX_RUNNING = 100_000


def reconcile(*, fix: bool = False) -> list[Finding]:
    """Every request open here or whose workflow runs in Temporal (a request wrongly closed here
    is found too), compared with its workflow; repaired with `fix`. TemporalError when Temporal
    cannot list what runs."""
    running = temporal.listed(temporal.RUNNING_QUERY, limit=MAX_RUNNING)
    requests = ApprovalRequest.objects.filter(
        Q(status__in=OPEN, workflow_started_at__isnull=False) | Q(public_id__in=running)
    )
    findings = []
    for request in requests.order_by("created_at", "pk").iterator():
        finding = Finding(request)
        try:
            state = temporal.query_state(request.public_id)
        except temporal.TemporalError as exc:
            finding.error = str(exc) or type(exc).__name__
            findings.append(finding)
            continue
        finding.differences = differences(request, state)
        if finding.differences and fix:
            repair(request, state)
            request.refresh_from_db()
            finding.fixed = not differences(request, state)
        findings.append(finding)
    return findings
