"""Workflows in trouble: finding the requests whose workflow needs a person, and noting in the
read model those whose workflow stopped for good, so that everyone reads it.

Trouble is found in two places. Temporal knows which runs failed, were terminated or timed out,
and which keep failing their workflow tasks (the `TemporalReportedProblems` search attribute,
which the dev server here is started to set). The read model knows what should have happened
by now: a request saved but never started, one started but never projected, one whose deadline
passed long ago without the workflow moving it, one whose activities keep failing (each failed
attempt is noted by the activity itself: Temporal retries it without anything to list). Each
candidate's latest run is then described, so that staff see why (a failing activity, its
attempt and error).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.timesince import timesince

from approvals import client as temporal
from approvals.live import Change, push_after_commit
from approvals.models import OPEN_STATUSES, ActivityFailure, ApprovalRequest
from approvals.services.projection import request_change
from workflows.types import RequestStatus

logger = logging.getLogger(__name__)

NOT_STARTED_AFTER = timedelta(minutes=1)  # the outbox relay retries every few seconds
NOT_PROJECTED_AFTER = timedelta(minutes=2)
LATE_AFTER = timedelta(minutes=15)  # a deadline this far past: its timer should have moved it
STOPPED = "Its workflow stopped"
FAILING = "Keeps failing in Temporal"
STEP_FAILING = "A step of its workflow keeps failing"
FAILURES_LISTED = 3  # failed attempts in a row before a step is listed (one may be a blip)
UNREACHABLE_NOTE = "Temporal could not be reached, so only what the database shows is listed."


@dataclass
class Trouble:
    """One request whose workflow needs a person: what is wrong, and what staff may do."""

    request: ApprovalRequest
    problem: str
    details: list[str] = field(default_factory=list)
    status: str = ""  # the latest run's status in Temporal; "" when there is no run
    run_id: str = ""
    can_retry: bool = False
    resolved: bool = False  # listed for an older run; the latest one is fine

    @property
    def temporal_url(self) -> str:
        if not self.run_id:
            return ""
        return temporal_ui_url(workflow_id=self.request.workflow_id, run_id=self.run_id)


def temporal_ui_url(*, workflow_id: str, run_id: str = "") -> str:
    """A workflow run's history in Temporal's UI; without a run, the list of every run of the
    workflow (a request's continues as new as it grows)."""
    ns = settings.TEMPORAL_NAMESPACE
    if run_id:
        return f"{settings.TEMPORAL_UI_URL}/namespaces/{ns}/workflows/{workflow_id}/{run_id}/history"
    query = urlencode({"query": f'WorkflowId="{workflow_id}"'}, quote_via=quote)
    return f"{settings.TEMPORAL_UI_URL}/namespaces/{ns}/workflows?{query}"


def workflows_in_trouble(*, limit: int = 20) -> tuple[list[Trouble], str]:
    """Open requests whose workflow needs a person, stopped ones first, and a note when Temporal
    could not be asked (what the read model shows is listed anyway)."""
    now = timezone.now()
    open_requests = ApprovalRequest.objects.filter(status__in=OPEN_STATUSES).select_related(
        "request_type", "requester"
    )
    found: dict[int, Trouble] = {}

    def add(request: ApprovalRequest, problem: str, *details: str, can_retry: bool = False) -> None:
        if request.pk not in found and len(found) < limit:
            found[request.pk] = Trouble(request, problem, [d for d in details if d], can_retry=can_retry)

    # Waiting a while for Temporal to be back, or refused by it at once.
    never_started = open_requests.filter(workflow_started_at__isnull=True).filter(
        Q(created_at__lt=now - NOT_STARTED_AFTER) | ~Q(workflow_stopped="")
    )
    for request in never_started.order_by("created_at")[:limit]:
        error = request.last_start_error or "none recorded"
        attempts = f"{request.start_attempts} attempt(s); last error: {error}"
        if request.workflow_stopped:  # refused as it is: retrying as it is cannot help
            add(request, "Never started: Temporal refused it", attempts)
        else:
            add(request, "Never started: Temporal could not be reached", attempts, can_retry=True)
    note = ""
    listed: dict[str, str] = {}
    try:
        for problem, query in ((FAILING, temporal.FAILING_QUERY), (STOPPED, temporal.STOPPED_QUERY)):
            for public_id in temporal.listed(query, limit=limit * 5):
                listed.setdefault(public_id, problem)
    except temporal.Unreachable as exc:
        logger.warning("Could not ask Temporal for workflows in trouble: %s", exc)
        note, listed = UNREACHABLE_NOTE, {}
    for request in open_requests.filter(public_id__in=list(listed)):
        add(request, listed[str(request.public_id)])
    failing_steps = ActivityFailure.objects.filter(
        Q(attempt__gte=FAILURES_LISTED) | Q(retrying=False), request__status__in=OPEN_STATUSES
    )
    for failure in failing_steps.select_related("request__request_type", "request__requester").order_by(
        "first_failed_at"
    )[:limit]:
        add(failure.request, STEP_FAILING, failure_words(failure))
    not_projected = open_requests.filter(
        status=RequestStatus.SUBMITTED, workflow_started_at__lt=now - NOT_PROJECTED_AFTER
    )
    for request in not_projected.order_by("workflow_started_at")[:limit]:
        add(request, "Started, but review never began")
    late = open_requests.filter(status=RequestStatus.IN_REVIEW, deadline__lt=now - LATE_AFTER)
    for request in late.order_by("deadline")[:limit]:
        passed = timesince(request.deadline, now) if request.deadline else ""
        add(request, f"Its deadline passed {passed} ago and nothing moved")

    started = [t for t in found.values() if t.request.workflow_started_at is not None]
    if started and not note:
        try:
            _describe(started)
        except temporal.Unreachable as exc:
            logger.warning("Could not describe workflows in trouble: %s", exc)
            note = UNREACHABLE_NOTE
    troubles = [t for t in found.values() if not t.resolved]
    troubles.sort(key=lambda t: ({STOPPED: 0, FAILING: 1}.get(t.problem, 2), t.request.created_at))
    return troubles, note


def _describe(troubles: list[Trouble]) -> None:
    """Fill in each trouble from its latest run: stopped (and why), or running (and what fails).
    A run listed as stopped that has since been retried and runs cleanly is resolved."""
    runs = temporal.describe_all([t.request.public_id for t in troubles])
    stopped = {
        t.request.public_id: run.run_id
        for t in troubles
        if (run := runs[t.request.public_id]) and run.status.stopped
    }
    reasons = temporal.close_reasons(stopped) if stopped else {}
    for trouble in troubles:
        run = runs[trouble.request.public_id]
        if run is None:
            trouble.details.append("Temporal has no record of its workflow.")
            continue
        trouble.status, trouble.run_id = run.status.value, run.run_id
        if run.status.stopped:
            trouble.problem, trouble.can_retry = STOPPED, True
            reason = reasons.get(trouble.request.public_id)
            trouble.details.insert(0, str(reason) if reason else f"{trouble.status}.")
        elif run.status == temporal.RunStatus.RUNNING:
            trouble.details += run.problems
            trouble.resolved = trouble.problem == STOPPED and not trouble.details


def failure_words(failure: ActivityFailure) -> str:
    since = timesince(failure.first_failed_at, timezone.now())
    then = "Temporal retries it" if failure.retrying else "retrying cannot help, so Temporal gave up"
    attempt = f"{failure.activity}: attempt {failure.attempt} failed"
    return f"{attempt} ({then}; failing for {since}): {failure.error}"


def activity_failure_note(
    *, request_id: str, activity: str, attempt: int, error: Exception, retrying: bool
) -> None:
    """Note a failed attempt of one of a request's activities (for a request that exists)."""
    request = ApprovalRequest.objects.filter(public_id=request_id).only("pk").first()
    if request is None:
        return
    now = timezone.now()
    failed = {
        "attempt": attempt,
        "error": f"{type(error).__name__}: {error}"[:2000],
        "retrying": retrying,
        "last_failed_at": now,
    }
    ActivityFailure.objects.update_or_create(
        request=request,
        activity=activity,
        defaults=failed,
        create_defaults={**failed, "first_failed_at": now},
    )


def activity_failure_clear(*, request_id: str, activity: str = "") -> None:
    """The activity succeeded (or, with no activity named, staff retried the workflow)."""
    failures = ActivityFailure.objects.filter(request__public_id=request_id)
    (failures.filter(activity=activity) if activity else failures).delete()


# --- What everyone reads of a stopped workflow ----------------------------------------------------


def workflows_stopped_note(*, limit: int = 200) -> list[Change]:
    """Note on each open request whose workflow stopped for good why it did, and clear the note
    of each whose workflow runs again (retried); returns the requests changed, to tell their
    pages. The worker runs this every few seconds."""
    listed = temporal.listed(temporal.STOPPED_QUERY, limit=limit)
    candidates = list(
        ApprovalRequest.objects.filter(status__in=OPEN_STATUSES, workflow_stopped="", public_id__in=listed)
    )
    noted = list(
        ApprovalRequest.objects.filter(status__in=OPEN_STATUSES).exclude(workflow_stopped="")[:limit]
    )
    if not candidates and not noted:
        return []
    runs = temporal.describe_all([r.public_id for r in candidates + noted])
    stopped = {
        r.public_id: run.run_id for r in candidates if (run := runs[r.public_id]) and run.status.stopped
    }
    reasons = temporal.close_reasons(stopped) if stopped else {}
    changes = []
    for request in candidates:
        run = runs[request.public_id]
        if run is not None and run.status.stopped:
            changes += _note(request, _plain(reasons.get(request.public_id), run))
    for request in noted:
        run = runs[request.public_id]
        if run is not None and run.status == temporal.RunStatus.RUNNING:
            changes += _note(request, "")
    return changes


def request_stopped_note(*, request: ApprovalRequest) -> str:
    """Why the request's workflow stopped for good, noted in the read model (and told to its
    pages); "" when it did not stop (or Temporal cannot say now)."""
    try:
        run = temporal.describe(request.public_id)
        if run is None or not run.status.stopped:
            return ""
        why = _plain(temporal.close_reasons({request.public_id: run.run_id})[request.public_id], run)
    except temporal.TemporalError:
        return ""
    for change in _note(request, why):
        push_after_commit(change)
    return why


def _plain(reason: temporal.CloseReason | None, run: temporal.Run) -> str:
    """Why the workflow stopped, in words for everyone who may see the request."""
    return reason.plain if reason else run.status.value.lower()


def _note(request: ApprovalRequest, why: str) -> list[Change]:
    """Note (or clear, with "") why the request's workflow stopped; the change, when there was one."""
    updated = (
        ApprovalRequest.objects.filter(pk=request.pk, status__in=OPEN_STATUSES)
        .exclude(workflow_stopped=why)
        .update(workflow_stopped=why[:500])
    )
    if not updated:
        return []
    request.workflow_stopped = why[:500]
    return [request_change(request)]
