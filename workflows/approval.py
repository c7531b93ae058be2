"""The approval entity workflow: one per request, for the request's whole life.

Deterministic: time comes from workflow.now(), every side effect is an activity, named by string
(the Django side implements them). Handlers weigh an action against `rules` and apply it through
`handlers`; the main loop turns what changed into activities (the projection into the read
model, then the emails), keeps the stage's timers (`timers`) and continues as new before the
history grows large.

Rules the policy leaves to the engine:
- a person counts once per stage, however many of its groups they belong to;
- the requester is never an approver of their own request;
- one rejection rejects the request; one "request changes" pauses it for the requester;
- an approval by someone an escalation level added closes the stage outright;
- a stage whose approvers resolve to nobody escalates at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    WorkflowAlreadyStartedError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from workflows import handlers, rules, timers
    from workflows.fulfilment import FulfilmentWorkflow
    from workflows.retry import ACTIVITY_RETRY, ACTIVITY_TIMEOUT
    from workflows.review import (
        PATCH_DROPPED_TOLD,
        PATCH_HANDED_BACK,
        PATCH_PROGRESS_EMAIL,
        PATCH_SKIPPED_STAGES,
        Review,
        notifications_fit,
        projection_part,
    )
    from workflows.types import (
        PROJECT_STATE,
        REFUSED,
        RESOLVE_APPROVERS,
        SEND_NOTIFICATION,
        Action,
        ActionKind,
        ActionResult,
        ApprovalInput,
        Assignee,
        AssignInput,
        Content,
        Decided,
        EventKind,
        FulfilmentInput,
        Policy,
        RequestState,
        RequestStatus,
        fulfilment_id_for,
    )

# A batch of emails may take a while; a heartbeat after each recipient shows it is alive.
EMAIL_TIMEOUT = timedelta(minutes=5)
EMAIL_HEARTBEAT = timedelta(seconds=30)
# The answer to an update waits until the read model shows what it did.
PATCH_ANSWER_WHEN_PROJECTED = "answer-once-projected"
# A delegate is looked up in the read model (an activity) before the delegation is taken.
PATCH_DELEGATE_LOOKED_UP = "delegate-looked-up"
NO_SUCH_DELEGATE = "There is no active person by that id to delegate to (nor may the requester be one)."
# Projections go in parts of bounded size, the events are projected before continuing as new,
# and actions wait while too many events wait for the read model.
PATCH_BOUNDED_PROJECTIONS = "bounded-projections"
PROJECTION_BUDGET = 64_000  # bytes of JSON at most for the text of one projection's events
MAX_BACKLOG = 1000  # events in memory, each one comment at most: memory stays bounded
BACKLOGGED = "The request is catching up with what was sent before; try again in a minute."
DELEGATE_BY_UPDATE = "Delegation is taken as an update only, so that the delegate is looked up first."
# The stage's timer is started again only when the time it waits for moves, not on every wake.
PATCH_STEADY_TIMER = "steady-timer"
# Fewer tasks: the emails a batch of events calls for go out from the projection's own activity
# once it has committed (those it could not send go on their own, as before), so an action takes
# one activity and two workflow tasks; the first stage's approvers come with the input, found by
# the starter; and every patch before this one is taken without a marker of its own.
PATCH_FEWER_TASKS = "fewer-tasks"
# The patches before it: a run that has PATCH_FEWER_TASKS started on code that has all of these,
# so it takes them without a marker (and a search attribute update) of their own each.
EARLIER_PATCHES = frozenset(
    {
        PATCH_ANSWER_WHEN_PROJECTED,
        PATCH_DELEGATE_LOOKED_UP,
        PATCH_BOUNDED_PROJECTIONS,
        PATCH_STEADY_TIMER,
        PATCH_PROGRESS_EMAIL,
        PATCH_HANDED_BACK,
        PATCH_SKIPPED_STAGES,
    }
)
# An approved request whose type has a fulfilment starts it (its own workflow) before this ends.
PATCH_FULFILMENT = "fulfilment"


@workflow.defn
class ApprovalWorkflow:
    @workflow.init
    def __init__(self, input: ApprovalInput) -> None:
        self._input = input
        state = input.carried or RequestState(
            request_id=input.request_id,
            requester_id=input.requester_id,
            requester_name=input.requester_name,
            policy=input.policy,
            content=input.content,
        )
        # Decided once per run, in its first task: a run started before a patch keeps its ways.
        self._fewer_tasks = workflow.patched(PATCH_FEWER_TASKS)
        self.review = Review(state, now=workflow.now, patched=self._patched)
        # Every event up to this one is in the read model (those carried over are not yet).
        unsent = [entry.seq for entry in self.review.events]
        self._projected_seq = min(unsent) - 1 if unsent else state.seq
        self._projected_revision = 0  # whose content the read model has (0: send it anyway)
        self._answers_waiting = 0
        self._alarm = timers.Alarm()
        self._steady_timer = self._patched(PATCH_STEADY_TIMER)
        self._first_assignees = input.first_assignees if self._fewer_tasks and not input.carried else None

    # --- Main loop ----------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: ApprovalInput) -> RequestState:
        review = self.review
        if input.carried is None:
            review.submit()
        try:
            await self._lifecycle()
        except (asyncio.CancelledError, ActivityError) as err:
            # Someone cancelled the workflow in Temporal (the UI, the CLI): the request ends as
            # cancelled, and that is projected and told like any other end. (A cancel that meets
            # an activity arrives as that activity's error.)
            if not is_cancelled_exception(err):
                raise
            if not review.state.status.is_final:
                by = Decided(None, "Temporal", workflow.now(), "The workflow was cancelled in Temporal")
                review.finish(RequestStatus.CANCELLED, by, EventKind.CANCELLED)
                handlers.settle_held(review)
        # The last effects, once every handler under way has finished (an answer waiting for
        # its projection needs one more).
        while True:
            await workflow.wait_condition(lambda: workflow.all_handlers_finished() or self._answer_waits())
            if review.unflushed():
                await self._flush_batch()
            elif workflow.all_handlers_finished():
                await self._start_fulfilment()
                return review.state

    async def _lifecycle(self) -> None:
        """Until the request is final: assign, project and email, sleep until the next timer."""
        review = self.review
        while not review.state.status.is_final:
            await self._assign_pending()
            while review.unflushed() and not self._should_continue_as_new():
                await self._flush_batch()
            if review.state.status.is_final:
                break
            if self._should_continue_as_new():
                await self._continue_as_new()
            # Sleep until the next timer is due or there is work: effects to carry out, people
            # to assign, or a change that moved a deadline.
            review.changed = False
            sleep_until = self._alarm.sleep_until if self._steady_timer else timers.sleep_until
            await sleep_until(
                timers.next_wake(review.state),
                lambda: review.changed or review.unflushed() or self._needs_assignment(),
            )
            timers.fire_due(review)
        self._alarm.stop()

    def _patched(self, name: str) -> bool:
        """`workflow.patched`, but for a patch a run that has PATCH_FEWER_TASKS has anyway."""
        return (self._fewer_tasks and name in EARLIER_PATCHES) or workflow.patched(name)

    def _needs_assignment(self) -> bool:
        state, stage = self.review.state, self.review.state.stage
        return (
            state.status == RequestStatus.IN_REVIEW
            and stage is not None
            and (not stage.assigned or stage.levels_assigned < stage.escalation_level)
        )

    # --- Who acts -----------------------------------------------------------------------------

    async def _assign_pending(self) -> None:
        """Resolve who acts: the stage's approvers when it starts, then each escalation level."""
        review = self.review
        state, stage = review.state, review.state.stage
        if state.status != RequestStatus.IN_REVIEW or stage is None:
            return
        spec = review.spec
        if not stage.assigned:
            if self._first_assignees is not None:  # the first stage, as the starter found it
                assignees, self._first_assignees = self._first_assignees, None
            else:
                assignees = await self._resolve(spec.user_ids, spec.group_ids, level=0)
            if state.stage is not stage:
                return  # withdrawn or restarted while resolving
            review.assign(assignees)
        while (
            state.stage is stage
            and state.status == RequestStatus.IN_REVIEW
            and stage.levels_assigned < stage.escalation_level
        ):
            level = spec.escalation[stage.levels_assigned]
            resolved = await self._resolve(level.user_ids, level.group_ids, level=stage.levels_assigned + 1)
            if state.stage is not stage or state.status != RequestStatus.IN_REVIEW:
                return
            review.escalate(resolved)

    async def _resolve(
        self, user_ids: list[int], group_ids: list[int], level: int, *, for_stage: bool = True
    ) -> list[Assignee]:
        """The people these mean now; `for_stage`: without those the rules keep off the stage
        (who approved an earlier one, where the policy asks for distinct approvers)."""
        state = self.review.state
        return await workflow.execute_activity(
            RESOLVE_APPROVERS,
            AssignInput(
                request_id=state.request_id,
                requester_id=state.requester_id,
                user_ids=user_ids,
                group_ids=group_ids,
                level=level,
                exclude_ids=sorted(rules.earlier_approvers(state)) if for_stage else [],
            ),
            result_type=list[Assignee],
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )

    # --- Effects ------------------------------------------------------------------------------

    async def _flush_batch(self) -> None:
        """Project the new events into the read model, then send the emails they call for."""
        review = self.review
        events, participants, notifications = review.take_effects()
        try:
            while events:
                # However many events piled up, each projection stays well below Temporal's
                # payload limit: a batch too large goes in parts (the first carries the people).
                part = events[: projection_part(events, PROJECTION_BUDGET)]
                if len(part) < len(events) and not self._patched(PATCH_BOUNDED_PROJECTIONS):
                    part = events
                # The emails go along with the last part, when their text fits as well.
                along = (
                    notifications
                    if self._fewer_tasks
                    and len(part) == len(events)
                    and notifications_fit(notifications, PROJECTION_BUDGET)
                    else []
                )
                revision = review.state.revision
                projection = review.projection(
                    part,
                    participants,
                    with_content=self._projected_revision != revision,
                    notifications=along,
                )
                unsent = await workflow.execute_activity(
                    PROJECT_STATE,
                    projection,
                    # Sending emails takes longer, and shows it is alive after each recipient.
                    start_to_close_timeout=EMAIL_TIMEOUT if along else ACTIVITY_TIMEOUT,
                    heartbeat_timeout=EMAIL_HEARTBEAT if along else None,
                    retry_policy=ACTIVITY_RETRY,
                    result_type=list[str] if along else None,
                )
                if along:
                    left = set(unsent or ())
                    notifications = [n for n in along if n.idempotency_key in left]
                self._projected_revision = revision
                self._projected_seq = max(self._projected_seq, max(e.seq for e in part))
                events, participants = events[len(part) :], []
            while notifications:
                await workflow.execute_activity(
                    SEND_NOTIFICATION,
                    notifications[0],
                    start_to_close_timeout=EMAIL_TIMEOUT,
                    heartbeat_timeout=EMAIL_HEARTBEAT,
                    retry_policy=ACTIVITY_RETRY,
                )
                notifications.pop(0)
        except (asyncio.CancelledError, ActivityError):
            # Cancelled (or failed) halfway: what was not done yet goes back, to be done after the
            # cancellation is handled (the activities are idempotent: one that finished anyway
            # does no harm when it runs again).
            review.put_back(events, participants, notifications)
            raise

    def _answer_waits(self) -> bool:
        """An update's answer waits for events not projected yet."""
        return self._answers_waiting > 0 and bool(self.review.events)

    async def _start_fulfilment(self) -> None:
        """Set the approval's fulfilment going, as a workflow of its own that outlives this one;
        its events follow this workflow's last (every one of which is projected by now)."""
        state = self.review.state
        if state.status != RequestStatus.APPROVED or not state.policy.fulfilment:
            return
        if not workflow.patched(PATCH_FULFILMENT):
            return
        try:
            await workflow.start_child_workflow(
                FulfilmentWorkflow.run,
                FulfilmentInput(
                    request_id=state.request_id, fulfilment=state.policy.fulfilment, base_seq=state.seq
                ),
                id=fulfilment_id_for(state.request_id, 1),
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            )
        except WorkflowAlreadyStartedError:
            pass  # started by an earlier run of this workflow (reset from before this point)

    # --- Continue-as-new ----------------------------------------------------------------------

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._input.history_limit
        )

    async def _continue_as_new(self) -> None:
        # Let running handlers finish (projecting what an answer waits for). What they produced
        # is projected first (the next run carries only the emails not sent yet); older runs
        # carried the events too.
        bounded = self._patched(PATCH_BOUNDED_PROJECTIONS)
        while True:
            await workflow.wait_condition(lambda: workflow.all_handlers_finished() or self._answer_waits())
            if workflow.all_handlers_finished() and not (bounded and self.review.events):
                break
            await self._flush_batch()
        state = self.review.carried()
        workflow.continue_as_new(
            ApprovalInput(
                request_id=state.request_id,
                requester_id=state.requester_id,
                requester_name=state.requester_name,
                # Once only: the carried state holds them (the next run reads them from there).
                policy=Policy(state.policy.request_type, []) if bounded else state.policy,
                content=Content(state.content.title) if bounded else state.content,
                history_limit=self._input.history_limit,
                carried=state,
            )
        )

    # --- Messages -----------------------------------------------------------------------------

    def _problem(self, action: Action) -> str | None:
        if self.review.answered(action.action_id):
            return None  # a repeat of an action already applied: answered as the first time
        return rules.problem(self.review.state, action)

    def _backlogged(self) -> bool:
        """More events wait for the read model than the workflow will hold: new actions wait
        too, so that what it carries stays bounded (the read model is away, or very slow)."""
        return len(self.review.events) >= MAX_BACKLOG

    @workflow.signal
    def act(self, payload: Any) -> None:
        """Fire-and-forget actions (email links, integrations): invalid ones are logged and dropped.

        The payload is plain JSON, read strictly by `rules.parse_action` (see there why)."""
        action = rules.parse_action(payload)
        problem = action if isinstance(action, str) else self._problem(action)
        if isinstance(action, Action) and action.kind == ActionKind.DELEGATE and not problem:
            # A delegate is looked up before it is taken (see submit_action), which a signal
            # cannot wait for: delegation comes as an update only.
            if self._patched(PATCH_DELEGATE_LOOKED_UP):
                problem = DELEGATE_BY_UPDATE
        if not problem and self._backlogged() and self._patched(PATCH_BOUNDED_PROJECTIONS):
            problem = BACKLOGGED
        if problem or isinstance(action, str):
            who = (payload.get("kind"), payload.get("actor_id")) if isinstance(payload, dict) else ("?", "?")
            workflow.logger.warning("Refused %s by %s: %s", *who, problem)
            # A person's action that came too late (the request moved on) is let go in the
            # timeline; not one that could not be read, nor one refused only to keep the backlog
            # bounded (it would add to it).
            if (
                isinstance(action, Action)
                and problem
                and problem != BACKLOGGED
                and self._patched(PATCH_DROPPED_TOLD)
            ):
                handlers.drop(self.review, action, problem)
            return
        handlers.apply(self.review, action)

    @workflow.update
    async def submit_action(self, payload: Any) -> ActionResult:
        """Browser actions, weighed by the validator just before this runs in the same task: the
        answer says what happened, once the read model shows it."""
        action = rules.parse_action(payload)
        assert isinstance(action, Action)  # the validator read it
        if (
            action.kind == ActionKind.DELEGATE
            and not self.review.answered(action.action_id)
            and self._patched(PATCH_DELEGATE_LOOKED_UP)
        ):
            action = await self._delegate_looked_up(action)
        result = handlers.apply(self.review, action)
        if self._patched(PATCH_ANSWER_WHEN_PROJECTED):
            self._answers_waiting += 1
            try:
                await workflow.wait_condition(lambda: self._projected_seq >= result.seq)
            finally:
                self._answers_waiting -= 1
        return result

    async def _delegate_looked_up(self, action: Action) -> Action:
        """The delegation, to the person the read model knows by that id (their name from there,
        not from the payload); refused when there is no such active person. The request may
        have moved while the lookup ran: the rules weigh it again."""
        assert action.delegate_id is not None
        found = await self._resolve([action.delegate_id], [], level=0, for_stage=False)
        if not found:
            raise ApplicationError(NO_SUCH_DELEGATE, type=REFUSED, non_retryable=True)
        # (Someone away has their stand-in found instead, as when a stage assigns them.)
        action = dataclasses.replace(action, delegate_id=found[0].user_id, delegate_name=found[0].name)
        if problem := self._problem(action):
            raise ApplicationError(problem, type=REFUSED, non_retryable=True)
        return action

    @submit_action.validator
    def _validate_action(self, payload: Any) -> None:
        action = rules.parse_action(payload)
        if isinstance(action, str):
            raise ApplicationError(action, type=REFUSED, non_retryable=True)
        if problem := self._problem(action):
            raise ApplicationError(problem, type=REFUSED, non_retryable=True)
        if self._backlogged() and not self.review.answered(action.action_id):
            raise ApplicationError(BACKLOGGED, type=REFUSED, non_retryable=True)

    @workflow.query
    def state(self) -> RequestState:
        return self.review.state
