"""Access-review campaigns: a fan-out to thousands of reviews, bounded however large it is.

The campaign's workflow (`campaign-<public id>`) opens the campaign (its reviews are fixed then,
one per grant it covers), then starts one child workflow per review, in batches of a hundred. A
run starts at most a thousand and continues as new, carrying only counts and a cursor (the last
grant started), so that its history stays far below Temporal's limits at ten thousand reviews.
A review's id is derived from the campaign and the grant, and a closed one is never started
again: a campaign that retries or replays never starts a review twice.

Each review (`campaign-<campaign>-grant-<grant>`) waits for its reviewer's decision (a validated
update) until the deadline, where the campaign's end rule decides; a revoke goes through the
grant's own workflow, so that it ends as an early revoke does. Then it reports its outcome to the
campaign (a signal), which counts, reminds the reviewers in digests (one email per reviewer, never
one per review), escalates to their managers, and completes when every review has reported.
Staff may cancel the campaign: it stops starting reviews and closes those still open (a signal to
each: a review already decided finishes what its decision began), and no access changes for them.

All of it runs on the bulk task queue (BULK_TASK_QUEUE), served by workers of its own.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, FailureError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from workflows import rules
    from workflows.retry import ACTIVITY_RETRY, ACTIVITY_TIMEOUT
    from workflows.types import (
        CLOSE_REVIEWS,
        LIST_REVIEWS,
        OPEN_CAMPAIGN,
        RECORD_CAMPAIGN,
        RECORD_REVIEW,
        REFUSED,
        REVOKE_REVIEWED,
        SEND_DIGESTS,
        CampaignCancel,
        CampaignInput,
        CampaignPlan,
        CampaignProgress,
        CampaignReport,
        CampaignStatus,
        DigestKind,
        DigestRound,
        EndRule,
        ReviewDecision,
        ReviewInput,
        ReviewOutcome,
        ReviewPage,
        ReviewRecord,
        ReviewReport,
        ReviewRevoke,
        ReviewsClose,
        campaign_id_for,
        review_id_for,
    )

# Opening a campaign, sending its digests and closing its open reviews touch thousands of rows
# and emails: they heartbeat as they go, and a worker that dies is noticed within the heartbeat.
LONG_TIMEOUT = timedelta(minutes=30)
HEARTBEAT = timedelta(seconds=30)
# However a campaign is started, one run of it never starts more reviews than this.
MAX_REVIEWS_PER_RUN = 1000
# A revoke goes through the grant's workflow (and the access endpoint): retried until done.
REVOKE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=ACTIVITY_RETRY.non_retryable_error_types,
)


@workflow.defn
class CampaignWorkflow:
    @workflow.init
    def __init__(self, input: CampaignInput) -> None:
        self._input = input
        self._plan: CampaignPlan | None = input.plan
        self._progress = input.progress or CampaignProgress()
        self._cancel = CampaignCancel(input.cancelled_by) if input.cancelled_by else None
        self._changed = False  # reports counted and not recorded yet

    @workflow.run
    async def run(self, input: CampaignInput) -> CampaignProgress:
        if self._plan is None:
            self._plan = await workflow.execute_activity(
                OPEN_CAMPAIGN,
                input.campaign_id,
                result_type=CampaignPlan,
                start_to_close_timeout=LONG_TIMEOUT,
                heartbeat_timeout=HEARTBEAT,
                retry_policy=ACTIVITY_RETRY,
            )
            await self._record(CampaignStatus.RUNNING)
        plan, progress = self._plan, self._progress
        per_run = min(input.reviews_per_run, MAX_REVIEWS_PER_RUN)
        started_here = 0
        while progress.started < plan.total and self._cancel is None:
            if started_here >= per_run or self._history_full():
                await self._continue_as_new()
            page = await workflow.execute_activity(
                LIST_REVIEWS,
                ReviewPage(input.campaign_id, progress.cursor, min(input.batch_size, per_run - started_here)),
                result_type=list[ReviewInput],
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=ACTIVITY_RETRY,
            )
            if not page:  # the reviews are fixed as the campaign opens: none is missing
                raise ApplicationError(
                    f"Only {progress.started} of {plan.total} reviews were found.", non_retryable=True
                )
            await asyncio.gather(*(self._start(review) for review in page))
            progress.cursor, progress.started = page[-1].grant_id, progress.started + len(page)
            started_here += len(page)
            await self._record(CampaignStatus.RUNNING)
        if self._cancel is None and progress.digests == 0:
            await self._digests(DigestKind.ASSIGNED)
        while self._cancel is None and progress.done < plan.total:
            if self._changed:
                await self._record(CampaignStatus.RUNNING)
                continue
            if self._history_full():
                await self._continue_as_new()
            now = workflow.now()
            if (reminder := rules.next_reminder(plan, progress)) is not None and now >= reminder:
                await self._digests(DigestKind.REMINDER)
                continue
            escalation = rules.escalation_at(plan)
            if escalation is not None and not progress.escalated and now >= escalation:
                progress.escalated = True
                await self._digests(DigestKind.ESCALATED)
                continue
            wake = rules.campaign_next_wake(plan, progress)
            try:
                await workflow.wait_condition(
                    lambda: self._changed or self._cancel is not None,
                    timeout=max(wake - now, timedelta(0)) if wake is not None else None,
                )
            except TimeoutError:
                pass
        if self._cancel is not None:
            # The reviews started so far are asked to close; those never started are closed.
            await workflow.execute_activity(
                CLOSE_REVIEWS,
                ReviewsClose(input.campaign_id, progress.cursor),
                start_to_close_timeout=LONG_TIMEOUT,
                heartbeat_timeout=HEARTBEAT,
                retry_policy=ACTIVITY_RETRY,
            )
            await self._record(CampaignStatus.CANCELLED)
        else:
            await self._record(CampaignStatus.COMPLETED)
        return progress

    async def _start(self, review: ReviewInput) -> None:
        try:
            await workflow.start_child_workflow(
                ReviewWorkflow.run,
                review,
                id=review_id_for(review.campaign_id, review.grant_id),
                task_queue=workflow.info().task_queue,
                # A review outlives the run that started it (which continues as new), and a
                # closed one is never started again.
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            pass  # by an earlier attempt: the same review, started once

    async def _record(self, status: CampaignStatus) -> None:
        progress = self._progress
        progress.seq += 1
        self._changed = False
        await workflow.execute_activity(
            RECORD_CAMPAIGN,
            CampaignReport(
                campaign_id=self._input.campaign_id,
                seq=progress.seq,
                status=status,
                progress=progress,
                at=workflow.now(),
                cancelled_by=self._cancel.actor_name if self._cancel else "",
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )

    async def _digests(self, kind: DigestKind) -> None:
        """One email to each reviewer with reviews open (to each manager, when escalating)."""
        progress = self._progress
        if kind != DigestKind.ESCALATED:
            progress.digests += 1
            progress.digested_at = workflow.now()
        await workflow.execute_activity(
            SEND_DIGESTS,
            DigestRound(self._input.campaign_id, kind, progress.digests),
            start_to_close_timeout=LONG_TIMEOUT,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=ACTIVITY_RETRY,
        )

    def _history_full(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._input.history_limit
        )

    async def _continue_as_new(self) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._progress.runs += 1
        input = self._input
        workflow.continue_as_new(
            CampaignInput(
                campaign_id=input.campaign_id,
                batch_size=input.batch_size,
                reviews_per_run=input.reviews_per_run,
                history_limit=input.history_limit,
                plan=self._plan,
                progress=self._progress,
                cancelled_by=self._cancel.actor_name if self._cancel else "",
            )
        )

    @workflow.signal
    def report(self, report: ReviewReport) -> None:
        """A review's outcome: counted once (each review reports once)."""
        progress = self._progress
        if report.outcome == ReviewOutcome.KEPT:
            progress.kept += 1
        elif report.outcome == ReviewOutcome.REVOKED:
            progress.revoked += 1
        elif report.outcome == ReviewOutcome.ENDED:
            progress.ended += 1
        else:
            return
        progress.by_rule += report.by_rule
        self._changed = True

    @workflow.signal
    def cancel(self, cancel: CampaignCancel) -> None:
        if self._cancel is None:
            self._cancel = cancel


@workflow.defn
class ReviewWorkflow:
    @workflow.init
    def __init__(self, review: ReviewInput) -> None:
        self._review = review
        self._decision: ReviewDecision | None = None
        self._closed = False  # its campaign was cancelled
        self._recorded = False

    @workflow.run
    async def run(self, review: ReviewInput) -> ReviewOutcome:
        try:
            await workflow.wait_condition(
                lambda: self._decision is not None or self._closed,
                timeout=max(review.deadline - workflow.now(), timedelta(0)),
            )
        except TimeoutError:
            pass
        decision = self._decision
        if decision is None and self._closed:
            # Closed undecided by a cancel: recorded so, and no access changes. (Its campaign is
            # ending: it hears nothing more.)
            closed = ReviewRecord(
                review.campaign_id, review.grant_id, ReviewOutcome.CANCELLED, final=True, at=workflow.now()
            )
            await self._record_review(closed)
            return ReviewOutcome.CANCELLED
        keep = decision.keep if decision is not None else review.end_rule == EndRule.KEEP
        record = ReviewRecord(
            campaign_id=review.campaign_id,
            grant_id=review.grant_id,
            outcome=ReviewOutcome.KEPT if keep else ReviewOutcome.REVOKED,
            final=keep,
            by_rule=decision is None,
            actor_id=decision.actor_id if decision else None,
            actor_name=decision.actor_name if decision else "",
            comment=decision.comment if decision else "",
            at=workflow.now(),
        )
        await self._record_review(record)
        self._recorded = True
        if not keep:
            revoked = await workflow.execute_activity(
                REVOKE_REVIEWED,
                ReviewRevoke(
                    campaign_id=review.campaign_id,
                    request_id=review.request_id,
                    action_id=f"{workflow.info().workflow_id}:revoke",
                    actor_id=record.actor_id,
                    actor_name=record.actor_name,
                    reason=_revoke_reason(review, decision),
                ),
                result_type=bool,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=REVOKE_RETRY,
            )
            record.outcome = ReviewOutcome.REVOKED if revoked else ReviewOutcome.ENDED
            record.final = True
            await self._record_review(record)
        try:
            await workflow.get_external_workflow_handle(campaign_id_for(review.campaign_id)).signal(
                CampaignWorkflow.report, ReviewReport(review.grant_id, record.outcome, record.by_rule)
            )
        except FailureError:
            workflow.logger.warning("The campaign of %s is closed: the outcome is recorded only", review)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return record.outcome

    async def _record_review(self, record: ReviewRecord) -> None:
        await workflow.execute_activity(
            RECORD_REVIEW, record, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=ACTIVITY_RETRY
        )

    @workflow.update
    async def decide(self, decision: ReviewDecision) -> str:
        """The reviewer keeps or revokes the access; answered once the decision is recorded."""
        if self._decision is None:
            self._decision = decision
        await workflow.wait_condition(lambda: self._recorded)
        kept = self._decision.keep
        return "The access is kept." if kept else "The access is being revoked."

    @decide.validator
    def _validate(self, decision: ReviewDecision) -> None:
        if self._decision is not None:
            if decision.action_id == self._decision.action_id:
                return  # the same decision again: answered as the first
            raise ApplicationError(rules.REVIEW_CLOSED, type=REFUSED, non_retryable=True)
        if self._closed:
            raise ApplicationError(rules.CAMPAIGN_CANCELLED, type=REFUSED, non_retryable=True)
        if problem := rules.review_problem(self._review, decision, workflow.now()):
            raise ApplicationError(problem, type=REFUSED, non_retryable=True)

    @workflow.signal
    def close(self) -> None:
        """The campaign was cancelled: an undecided review closes; a decided one finishes."""
        self._closed = True


def _revoke_reason(review: ReviewInput, decision: ReviewDecision | None) -> str:
    campaign = f"Access review “{review.campaign_name}”" if review.campaign_name else "Access review"
    if decision is None:
        return f"{campaign}: not reviewed by its deadline."
    return f"{campaign}: {decision.comment.strip()}"
