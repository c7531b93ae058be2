"""The access grant entity workflow: one per granted access request (`grant-<public id>`), for
as long as the access lasts.

Started by the request's fulfilment once the access is granted. It keeps one durable timer for
whatever comes next: a reminder to the holder (3 days and 1 day before the end), an extension's
decision deadline, or the end itself, when it takes the access back. Meanwhile the holder may ask
for more time: an approval round inside this workflow, decided by the resource's approvers
(validated updates); a refused or undecided extension leaves the end where it was. The holder or
staff may revoke it early, saying why. Every change is recorded in the read model by one
activity, with its email; the history stays bounded by continuing as new.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import rules
    from workflows.retry import ACTIVITY_RETRY, ACTIVITY_TIMEOUT
    from workflows.types import (
        END_GRANT,
        LOAD_GRANT,
        RECORD_GRANT,
        REFUSED,
        Extension,
        GrantAction,
        GrantActionKind,
        GrantEnd,
        GrantEvent,
        GrantEventKind,
        GrantInfo,
        GrantInput,
        GrantReport,
        GrantState,
        GrantStatus,
        NotificationInput,
        NotificationKind,
    )

EMAIL_TIMEOUT = timedelta(minutes=2)
# Its end (at a partner too) is never given up: retried with backoff until done.
END_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=5)
)


@workflow.defn
class GrantWorkflow:
    @workflow.init
    def __init__(self, input: GrantInput) -> None:
        self._input = input
        self._state: GrantState | None = input.carried
        self._reports: list[GrantReport] = []  # to record, in order
        self._recorded_seq = input.carried.seq if input.carried else 0
        self._revoke: GrantAction | None = None

    @property
    def state(self) -> GrantState:
        assert self._state is not None, "the grant is being loaded"
        return self._state

    @workflow.run
    async def run(self, input: GrantInput) -> GrantStatus:
        if self._state is None:
            info = await workflow.execute_activity(
                LOAD_GRANT,
                input.request_id,
                result_type=GrantInfo,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=ACTIVITY_RETRY,
            )
            now = workflow.now()
            if info.days:
                info.ends_at = now + timedelta(days=info.days)  # this workflow's timer ends it
            self._state = GrantState(request_id=input.request_id, info=info, since=now, started_at=now)
            self._add(GrantEventKind.GRANTED, detail=f"until {_day(info.ends_at)}")
        state = self.state
        while state.status == GrantStatus.ACTIVE:
            await self._record_all()
            if self._revoke is not None:
                await self._end(GrantStatus.REVOKED, self._revoke)
                break
            now = workflow.now()
            if now >= state.info.ends_at:
                await self._end(GrantStatus.EXPIRED, None)
                break
            for before in rules.reminders_due(state, now):
                state.reminded.append(rules.reminder_key(state.info.ends_at, before))
                self._add(
                    GrantEventKind.REMINDED,
                    detail=f"ends {_day(state.info.ends_at)}",
                    notify=(NotificationKind.ACCESS_EXPIRING, [state.info.holder_id]),
                )
            if state.extension is not None and now >= state.extension.deadline:
                self._decide(None, approved=False, why="nobody decided in time")
            if self._reports:
                continue
            if self._should_continue_as_new():
                # Handlers under way finish first; one that waits for its change to be recorded
                # wakes this loop instead, to record it.
                await workflow.wait_condition(
                    lambda: (
                        workflow.all_handlers_finished() or bool(self._reports) or self._revoke is not None
                    )
                )
                if workflow.all_handlers_finished() and not self._reports and self._revoke is None:
                    state.runs += 1
                    workflow.continue_as_new(GrantInput(input.request_id, input.history_limit, carried=state))
                continue
            wake = rules.grant_next_wake(state)
            try:
                await workflow.wait_condition(
                    lambda: bool(self._reports) or self._revoke is not None,
                    timeout=max(wake - workflow.now(), timedelta(0)),
                )
            except TimeoutError:
                pass
        await self._record_all()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return state.status

    # --- Effects ------------------------------------------------------------------------------

    def _add(
        self,
        kind: GrantEventKind,
        action: GrantAction | None = None,
        detail: str = "",
        notify: tuple[NotificationKind, list[int]] | None = None,
    ) -> int:
        """Note a change, to be recorded (with its email) by the main loop; its number."""
        state = self.state
        state.seq += 1
        notification = None
        if notify is not None:
            notification = NotificationInput(
                request_id=state.request_id,
                kind=notify[0],
                recipient_ids=notify[1],
                idempotency_key=f"{state.request_id}:grant:{state.seq}:{notify[0].value}",
                comment=detail,
                actor_name=action.actor_name if action else "",
            )
        event = GrantEvent(
            seq=state.seq,
            at=workflow.now(),
            kind=kind,
            actor_id=action.actor_id if action else None,
            actor_name=action.actor_name if action else "",
            detail=detail,
        )
        self._reports.append(
            GrantReport(
                request_id=state.request_id,
                seq=state.seq,
                status=state.status,
                ends_at=state.info.ends_at,
                extensions=state.extensions,
                event=event,
                extension=state.extension,
                notification=notification,
                approver_ids=list(state.info.approver_ids),
                starts_at=state.started_at,
            )
        )
        return state.seq

    async def _record_all(self) -> None:
        while self._reports:
            report = self._reports[0]
            await workflow.execute_activity(
                RECORD_GRANT,
                report,
                start_to_close_timeout=EMAIL_TIMEOUT,
                retry_policy=ACTIVITY_RETRY,
            )
            self._reports.pop(0)
            self._recorded_seq = report.seq

    async def _end(self, status: GrantStatus, by: GrantAction | None) -> None:
        """Take the access back (in the database, and at the access endpoint), then record it."""
        state = self.state
        await workflow.execute_activity(
            END_GRANT,
            GrantEnd(
                request_id=state.request_id,
                status=status,
                by_id=by.actor_id if by else None,
                by_name=by.actor_name if by else "",
                reason=by.reason if by else "",
                at=workflow.now(),
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=END_RETRY,
        )
        state.status, state.extension = status, None
        kind = GrantEventKind.REVOKED if status == GrantStatus.REVOKED else GrantEventKind.EXPIRED
        self._add(
            kind,
            by,
            detail=by.reason if by else "",
            notify=(NotificationKind.ACCESS_ENDED, [state.info.holder_id]),
        )
        await self._record_all()

    def _decide(self, action: GrantAction | None, *, approved: bool, why: str = "") -> int:
        state = self.state
        extension = state.extension
        assert extension is not None
        state.extension = None
        if approved:
            state.info.ends_at = state.info.ends_at + timedelta(days=extension.days)
            state.extensions += 1
            state.since = workflow.now()
            state.reminded = []
            detail = f"by {extension.days} days, until {_day(state.info.ends_at)}"
            kind, email = GrantEventKind.EXTENDED, NotificationKind.EXTENSION_APPROVED
        else:
            detail = why or (action.reason if action else "")
            kind, email = GrantEventKind.EXTENSION_REFUSED, NotificationKind.EXTENSION_REFUSED
        return self._add(kind, action, detail=detail, notify=(email, [state.info.holder_id]))

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._input.history_limit
        )

    # --- Messages -----------------------------------------------------------------------------

    @workflow.update
    async def act(self, action: GrantAction) -> str:
        """The holder asks for more time or revokes; an approver decides an extension. The
        answer comes once the read model shows it."""
        state = self.state
        if action.action_id in state.recent_action_ids:
            return "Done already."
        state.recent_action_ids = [*state.recent_action_ids, action.action_id][
            -rules.MAX_RECENT_GRANT_ACTIONS :
        ]
        if action.kind == GrantActionKind.REVOKE:
            self._revoke = action
            await workflow.wait_condition(lambda: state.status != GrantStatus.ACTIVE and not self._reports)
            # Its period may have run out first: the answer says which ended it.
            return "The access is revoked." if state.status == GrantStatus.REVOKED else rules.GRANT_ENDED
        if action.kind == GrantActionKind.EXTEND:
            now = workflow.now()
            state.extension = Extension(
                action_id=action.action_id,
                days=action.days,
                reason=action.reason,
                asked_at=now,
                deadline=min(now + rules.EXTENSION_DECISION_WITHIN, state.info.ends_at),
            )
            seq = self._add(
                GrantEventKind.EXTENSION_ASKED,
                action,
                detail=f"{action.days} more days" + (f": {action.reason}" if action.reason else ""),
                notify=(NotificationKind.EXTENSION_ASKED, list(state.info.approver_ids)),
            )
            message = "Your request for more time is sent to the resource's approvers."
        else:
            if state.extension is None:  # decided (or lapsed) while this waited its turn
                return rules.NO_EXTENSION
            seq = self._decide(action, approved=action.kind == GrantActionKind.APPROVE)
            message = (
                "The extension is approved."
                if action.kind == GrantActionKind.APPROVE
                else "The extension is refused."
            )
        await workflow.wait_condition(lambda: self._recorded_seq >= seq)
        return message

    @act.validator
    def _validate(self, action: GrantAction) -> None:
        if self._state is None:
            raise ApplicationError(rules.GRANT_LOADING, type=REFUSED, non_retryable=True)
        if action.action_id in self._state.recent_action_ids:
            return
        if problem := rules.grant_problem(self._state, action, workflow.now()):
            raise ApplicationError(problem, type=REFUSED, non_retryable=True)
        if action.kind == GrantActionKind.REVOKE and self._revoke is not None:
            raise ApplicationError(rules.BEING_REVOKED, type=REFUSED, non_retryable=True)

    @workflow.query
    def grant(self) -> GrantState | None:
        return self._state


def _day(at: object) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"
