"""The approval entity workflow: one per request, from submission to decision.

Deterministic: time comes from workflow.now(), every side effect is an activity.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows import activities
    from workflows.types import (
        ApprovalInput,
        ApprovalOutcome,
        ApprovalState,
        Decision,
        DecisionInput,
        EventKind,
        NotificationInput,
        NotificationKind,
        RequestStatus,
        TransitionInput,
    )

ACTIVITY_TIMEOUT = timedelta(seconds=30)
ACTIVITY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=list(activities.NON_RETRYABLE_ERROR_TYPES),
)


@workflow.defn
class ApprovalWorkflow:
    def __init__(self) -> None:
        self._input: ApprovalInput | None = None
        self._status = RequestStatus.SUBMITTED
        self._approver_ids: list[int] = []
        self._deadline: datetime | None = None
        self._escalated = False
        self._decision: DecisionInput | None = None
        self._seq = 0

    @workflow.run
    async def run(self, input: ApprovalInput) -> ApprovalOutcome:
        self._input = input
        self._approver_ids = list(dict.fromkeys(input.reviewer_ids))
        deadline = workflow.now() + timedelta(seconds=input.review_deadline_seconds)
        self._deadline = deadline
        self._status = RequestStatus.IN_REVIEW
        await self._record(EventKind.REVIEW_STARTED, added=self._approver_ids)
        await self._notify(NotificationKind.ASSIGNED, self._approver_ids)

        try:
            await workflow.wait_condition(
                lambda: self._decision is not None, timeout=max(deadline - workflow.now(), timedelta(0))
            )
        except TimeoutError:
            # A decision that landed in the same workflow task as the timer still wins.
            if self._decision is None:
                await self._escalate(input)
                await workflow.wait_condition(lambda: self._decision is not None)

        decision = self._decision
        assert decision is not None
        approved = decision.decision == Decision.APPROVE
        self._status = RequestStatus.APPROVED if approved else RequestStatus.REJECTED
        await self._record(
            EventKind.APPROVED if approved else EventKind.REJECTED,
            actor_id=decision.actor_id,
            comment=decision.comment,
        )
        await self._notify(NotificationKind.DECIDED, [input.requester_id])
        await workflow.wait_condition(workflow.all_handlers_finished)
        return ApprovalOutcome(
            decision=decision.decision, decided_by=decision.actor_id, escalated=self._escalated
        )

    async def _escalate(self, input: ApprovalInput) -> None:
        self._escalated = True
        self._status = RequestStatus.ESCALATED
        added = [uid for uid in dict.fromkeys(input.escalation_ids) if uid not in self._approver_ids]
        self._approver_ids.extend(added)
        await self._record(EventKind.ESCALATED, added=added, role="escalation")
        await self._notify(NotificationKind.ESCALATED, added)

    @workflow.signal
    def decide(self, decision: DecisionInput) -> None:
        # The web checks permission before signalling; this guards every other sender.
        if self._decision is not None:
            workflow.logger.info("Ignoring a decision by %s: already decided", decision.actor_id)
            return
        if decision.actor_id not in self._approver_ids:
            workflow.logger.warning("Ignoring a decision by %s: not an approver", decision.actor_id)
            return
        if decision.decision == Decision.REJECT and not decision.comment.strip():
            workflow.logger.warning("Ignoring a rejection by %s without a comment", decision.actor_id)
            return
        self._decision = decision

    @workflow.query
    def state(self) -> ApprovalState:
        decision = self._decision
        return ApprovalState(
            status=self._status,
            approver_ids=list(self._approver_ids),
            deadline=self._deadline,
            escalated=self._escalated,
            decided_by=decision.actor_id if decision else None,
            decision=decision.decision if decision else None,
            comment=decision.comment if decision else "",
        )

    async def _record(
        self,
        event: EventKind,
        *,
        added: list[int] | None = None,
        role: str = "reviewer",
        actor_id: int | None = None,
        comment: str = "",
    ) -> None:
        assert self._input is not None
        self._seq += 1
        await workflow.execute_activity(
            activities.record_transition,
            TransitionInput(
                request_id=self._input.request_id,
                seq=self._seq,
                status=self._status,
                event=event,
                occurred_at=workflow.now(),
                deadline=self._deadline,
                actor_id=actor_id,
                comment=comment,
                added_approver_ids=list(added or []),
                added_approver_role=role,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )

    async def _notify(self, kind: NotificationKind, recipient_ids: list[int]) -> None:
        assert self._input is not None
        if not recipient_ids:
            return
        await workflow.execute_activity(
            activities.send_notification,
            NotificationInput(
                request_id=self._input.request_id,
                kind=kind,
                recipient_ids=recipient_ids,
                idempotency_key=f"{workflow.info().workflow_id}:{self._seq}:{kind.value}",
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )
