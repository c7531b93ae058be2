"""The fulfilment saga: what an approval sets in motion, done step by step, or undone in reverse.

One workflow per attempt (`fulfilment-<public id>-<attempt>`), started by the request's approval
workflow once the request is approved, or by staff retrying one that was rolled back. Each step
is an activity that does its work once per key; the step's compensation is registered before
the step runs (a step that fails may have done its work anyway: a timeout after the partner
placed the order), and on a failure the registered compensations run last-in, first-out. A
forward step gives up after a few attempts, and the saga rolls back; a compensation never gives
up: while it keeps failing, the read model says so (staff see it) and it is tried again.

Every change of the saga's state is recorded in the read model by one activity, with the
timeline event it adds (numbered after the request's own events) and, at the end, the email.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from workflows.grant import GrantWorkflow
    from workflows.retry import ACTIVITY_RETRY
    from workflows.types import (
        CANCEL_ORDER,
        GRANT_ACCESS,
        PLACE_ORDER,
        RECORD_FULFILMENT,
        RELEASE_BUDGET,
        RESERVE_BUDGET,
        REVOKE_ACCESS,
        STEP_ERROR_TYPES,
        EventKind,
        Fulfilment,
        FulfilmentInput,
        FulfilmentReport,
        FulfilmentStatus,
        GrantInput,
        NotificationInput,
        NotificationKind,
        StepInput,
        StepState,
        StepStatus,
        TimelineEntry,
        grant_id_for,
    )


@dataclass(frozen=True)
class Step:
    name: str  # part of each key: stable for ever
    label: str
    activity: str
    compensation: str | None = None


STEPS: dict[Fulfilment, tuple[Step, ...]] = {
    Fulfilment.PURCHASE: (
        Step("reserve", "Reserve the budget", RESERVE_BUDGET, RELEASE_BUDGET),
        Step("order", "Place the purchase order", PLACE_ORDER, CANCEL_ORDER),
    ),
    # Then the grant's own workflow ends it on time (started once the access is granted).
    Fulfilment.ACCESS: (Step("grant", "Grant the access", GRANT_ACCESS, REVOKE_ACCESS),),
}

STEP_TIMEOUT = timedelta(seconds=30)
# A step that keeps failing gives up after about two minutes, and the saga rolls back.
STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
    non_retryable_error_types=list(STEP_ERROR_TYPES),
)
# A compensation is retried for ever: a few attempts at a time, each round told to the read model
# (so that staff see it failing), with a pause that grows between rounds.
COMPENSATION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
)
COMPENSATION_PAUSE = timedelta(minutes=1)
COMPENSATION_PAUSE_MAX = timedelta(hours=1)
# The record of progress is never given up either (it holds the outcome and its email).
RECORD_TIMEOUT = timedelta(minutes=2)
MAX_REASON = 400  # characters of an error kept in the read model and the email


def step_key(request_id: str, attempt: int, step: Step) -> str:
    """What makes a step (and its compensation) happen once: the request, the attempt, the step."""
    return f"{request_id}:fulfilment:{attempt}:{step.name}"


def reason_of(error: BaseException) -> str:
    """What went wrong, as a person reads it: the activity's own message, not Temporal's wrapper."""
    cause = error.cause if isinstance(error, ActivityError) and error.cause is not None else error
    if isinstance(cause, TimeoutError):
        text = "It did not finish in time."
    elif isinstance(cause, ApplicationError):
        text = cause.message
    else:
        text = str(cause)
    return text[:MAX_REASON]


@workflow.defn
class FulfilmentWorkflow:
    @workflow.init
    def __init__(self, input: FulfilmentInput) -> None:
        self._input = input
        self._plan = STEPS[input.fulfilment]
        self._seq = input.base_seq
        self._status = FulfilmentStatus.RUNNING
        self._steps = [StepState(step.name, step.label) for step in self._plan]
        self._failed_step = ""
        self._reason = ""

    @workflow.run
    async def run(self, input: FulfilmentInput) -> FulfilmentStatus:
        started = f"Attempt {input.attempt}" if input.attempt > 1 else ""
        if input.reason:
            started += f": {input.reason}"
        await self._record(EventKind.FULFILMENT_STARTED, started, actor_name=input.by_name)
        registered: list[int] = []  # the compensations to run on a failure, in the order registered
        for index, step in enumerate(self._plan):
            if step.compensation is not None:
                registered.append(index)  # before the step runs: it may do its work and still fail
            self._steps[index].status = StepStatus.RUNNING
            try:
                note = await workflow.execute_activity(
                    step.activity,
                    self._step_input(step),
                    result_type=str,
                    start_to_close_timeout=STEP_TIMEOUT,
                    retry_policy=STEP_RETRY,
                )
            except ActivityError as err:
                self._steps[index].status = StepStatus.FAILED
                self._steps[index].note = self._reason = reason_of(err)
                self._failed_step = step.label
                self._status = FulfilmentStatus.ROLLING_BACK
                await self._record(EventKind.STEP_FAILED, f"{step.label}: {self._reason}")
                await self._roll_back(registered)
                return self._status
            self._steps[index].status, self._steps[index].note = StepStatus.DONE, note
            await self._record(EventKind.STEP_DONE, f"{step.label}: {note}")
        if input.fulfilment == Fulfilment.ACCESS:
            await self._start_grant()
        self._status = FulfilmentStatus.FULFILLED
        await self._record(EventKind.FULFILLED, "", notify=NotificationKind.FULFILLED)
        return self._status

    async def _start_grant(self) -> None:
        """The access's own workflow, which ends it on time; it outlives this one."""
        request_id = self._input.request_id
        try:
            await workflow.start_child_workflow(
                GrantWorkflow.run,
                GrantInput(request_id=request_id),
                id=grant_id_for(request_id),
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            )
        except WorkflowAlreadyStartedError:
            pass  # a retried fulfilment of an access granted before (it is granted once per key)

    async def _roll_back(self, registered: list[int]) -> None:
        """Run the registered compensations, last first, each until it succeeds."""
        for index in reversed(registered):
            step, state = self._plan[index], self._steps[index]
            assert step.compensation is not None
            done_before, failed_with = state.status == StepStatus.DONE, state.note
            state.status = StepStatus.UNDOING
            pause = COMPENSATION_PAUSE
            while True:
                try:
                    note = await workflow.execute_activity(
                        step.compensation,
                        self._step_input(step),
                        result_type=str,
                        start_to_close_timeout=STEP_TIMEOUT,
                        retry_policy=COMPENSATION_RETRY,
                    )
                    break
                except ActivityError as err:
                    state.status, state.note = StepStatus.UNDO_FAILING, reason_of(err)
                    await self._record(EventKind.UNDO_FAILING, f"{step.label}: {state.note}")
                    await workflow.sleep(pause)
                    pause = min(pause * 2, COMPENSATION_PAUSE_MAX)
            if done_before or note:
                state.status, state.note = StepStatus.UNDONE, note
                await self._record(EventKind.STEP_UNDONE, f"{step.label}: {note}" if note else step.label)
            else:  # it failed before doing anything: nothing was undone, and it says why it failed
                state.status, state.note = StepStatus.FAILED, failed_with
        self._status = FulfilmentStatus.ROLLED_BACK
        await self._record(
            EventKind.ROLLED_BACK, f"{self._failed_step}: {self._reason}", notify=NotificationKind.ROLLED_BACK
        )

    def _step_input(self, step: Step) -> StepInput:
        request_id, attempt = self._input.request_id, self._input.attempt
        return StepInput(request_id=request_id, attempt=attempt, key=step_key(request_id, attempt, step))

    async def _record(
        self, kind: EventKind, detail: str, notify: NotificationKind | None = None, actor_name: str = ""
    ) -> None:
        """Tell the read model where the saga stands, with the event it adds to the timeline."""
        self._seq += 1
        request_id = self._input.request_id
        notification = None
        if notify is not None:
            notification = NotificationInput(
                request_id=request_id,
                kind=notify,
                recipient_ids=[],  # the requester and the approvers, found by the read model
                idempotency_key=f"{request_id}:fulfilment:{self._input.attempt}:{notify.value}",
                comment=detail,
            )
        report = FulfilmentReport(
            request_id=request_id,
            attempt=self._input.attempt,
            seq=self._seq,
            status=self._status,
            steps=list(self._steps),
            event=TimelineEntry(
                seq=self._seq, at=workflow.now(), kind=kind, detail=detail, actor_name=actor_name
            ),
            failed_step=self._failed_step,
            reason=self._reason,
            notification=notification,
        )
        await workflow.execute_activity(
            RECORD_FULFILMENT,
            report,
            start_to_close_timeout=RECORD_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )
