"""The approval engine (workflows/approval.py) policy by policy, on the time-skipping test server.

Every test runs the real workflow with the real activities against the test database: who is
assigned comes from users, groups and out-of-office delegations; what the workflow decides is
checked through its query *and* through the read model (ApprovalRequest, Participant,
RequestEvent, RequestRevision) and the emails (django.core.mail.outbox, OutboundEmail).

Policies are built from the workflow's dataclasses and passed straight to the workflow, so each
test states its policy in a few lines and no Stage rows are needed.

Time only moves when a test sleeps on the test server (`sleep_until`); after an action or a
sleep, `settle` waits (in wall time, by polling the workflow's history) until the workflow has
run every activity the change called for, so database and email checks are exact.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.db import transaction
from django.utils import timezone
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from approvals.activities import ACTIVITIES
from approvals.models import (
    ApprovalRequest,
    Assignment,
    Delegation,
    OutboundEmail,
    Participant,
    RequestEvent,
    RequestRevision,
    RequestType,
)
from approvals.services import approval_input_for
from tests.conftest import LoopThread, RunningWorker, make_request, make_user, wait_until
from tests.workflows.helpers import (
    accepted,
    act,
    action,
    answer,
    history,
    pending_names,
    refused,
    result,
    signal,
    start,
    state,
    stop_if_running,
    wait_idle,
)
from workflows.approval import ApprovalWorkflow
from workflows.review import TIMELINE_KEPT
from workflows.types import (
    ActionKind,
    Condition,
    Content,
    EscalationLevel,
    EventKind,
    Exhausted,
    Operator,
    Policy,
    RequestState,
    Rule,
    StageSpec,
)
from workflows.types import RequestStatus as Status

pytestmark = pytest.mark.usefixtures("ts_worker", "ts_cleanup")

DAY = 24 * 3600
HOUR = 3600
MINUTE = timedelta(minutes=1)


# --- Helpers ---------------------------------------------------------------------------------


def ids(*users: User) -> list[int]:
    return [user.pk for user in users]


def review(approvers: list[User], **spec: Any) -> StageSpec:
    """A stage named "Review" (3 days, any one approver) unless `spec` says otherwise."""
    fields: dict[str, Any] = {"name": "Review", "rule": Rule.ANY, "deadline_seconds": 3 * DAY}
    fields.update(spec)
    return StageSpec(user_ids=ids(*approvers), **fields)


def policy(*stages: StageSpec) -> Policy:
    return Policy(request_type="Purchase", stages=list(stages))


def kinds(st: RequestState) -> list[EventKind]:
    return [entry.kind for entry in st.timeline]


def db_kinds(request: ApprovalRequest) -> list[str]:
    return list(RequestEvent.objects.filter(request=request).values_list("kind", flat=True))


def emailed(kind: str) -> list[str]:
    """Who got an email of this kind (the address's user part), one entry per email, sorted."""
    emails = OutboundEmail.objects.filter(kind=kind)
    assert all(email.status == OutboundEmail.Status.SENT for email in emails)
    return sorted(email.to.split("@")[0] for email in emails)


def outbox(subject_start: str) -> list[str]:
    """Recipients of the emails actually sent whose subject starts so, sorted."""
    return sorted(m.to[0].split("@")[0] for m in mail.outbox if m.subject.startswith(subject_start))


def env_now(loop: LoopThread, env: WorkflowEnvironment) -> datetime:
    return loop.run(env.get_current_time())


def sleep_until(loop: LoopThread, env: WorkflowEnvironment, moment: datetime) -> None:
    """Skip the test server's clock forward to `moment` (firing every timer due before it)."""
    gap = moment - env_now(loop, env)
    assert gap > timedelta(0), f"{moment} is already past"
    loop.run(env.sleep(gap))


def run_histories(
    loop: LoopThread, client: Client, handle: WorkflowHandle[Any, Any]
) -> list[list[HistoryEvent]]:
    """The events of every run, first to last, following the continue-as-new chain."""

    async def fetch() -> list[list[HistoryEvent]]:
        runs = []
        run_id: str | None = handle.first_execution_run_id
        while run_id:
            events = list((await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()).events)
            runs.append(events)
            last = events[-1]
            run_id = None
            if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
        return runs

    return loop.run(fetch())


def update_events(events: list[HistoryEvent], update_id: str) -> list[str]:
    """The names of the update events in `events` that belong to update `update_id`."""
    found = []
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            if (
                event.workflow_execution_update_accepted_event_attributes.accepted_request.meta.update_id
                == update_id
            ):
                found.append("accepted")
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            if event.workflow_execution_update_completed_event_attributes.meta.update_id == update_id:
                found.append("completed")
    return found


def settle(loop: LoopThread, handle: WorkflowHandle[Any, Any]) -> RequestState:
    """Wait until the workflow has projected and emailed everything so far; return its state."""
    wait_idle(loop, handle)
    return state(loop, handle)


def refreshed(request: ApprovalRequest) -> ApprovalRequest:
    request.refresh_from_db()
    return request


@contextmanager
def activities_held(request: ApprovalRequest) -> Iterator[None]:
    """Hold the request's row lock: activities that write to the request wait for it.

    A workflow that has just decided still has to project and email before it closes; holding
    its activities keeps it open, so a test can show what it answers to a late action (once it
    has closed, Temporal itself turns updates away and only the web layer answers). An update
    sent meanwhile is accepted (`accepted`) and answered once the lock is let go (`answer`).
    """
    with transaction.atomic():
        ApprovalRequest.objects.select_for_update().get(pk=request.pk)
        yield


@pytest.fixture
def launch(
    loop: LoopThread, time_skipping_env: WorkflowEnvironment, transactional_db: None
) -> Callable[..., WorkflowHandle[Any, Any]]:
    """Start a request's workflow with a policy and wait until it has settled (the
    `ts_cleanup` fixture stops it after the test)."""

    def launch_(
        request: ApprovalRequest, workflow_policy: Policy, **overrides: Any
    ) -> WorkflowHandle[Any, Any]:
        handle = start(time_skipping_env, loop, request, policy=workflow_policy, **overrides)
        settle(loop, handle)
        return handle

    return launch_


# --- Rules: any, all, N of M -----------------------------------------------------------------


def test_two_of_three_quorum_needs_a_second_approval_to_close_the_stage(
    loop: LoopThread, launch: Callable[..., Any], people: dict[str, User], purchase: RequestType
) -> None:
    r1, r2, manager = people["reviewer1"], people["reviewer2"], people["manager"]
    request = make_request(people, purchase)
    handle = launch(request, policy(review([r1, r2, manager], rule=Rule.N_OF_M, required=2)))
    st = state(loop, handle)
    assert (st.stage.rule, st.stage.required) == (Rule.N_OF_M, 2)
    assert pending_names(st) == ["manager", "reviewer1", "reviewer2"]

    first = act(loop, handle, action(ActionKind.APPROVE, r1, "Fine by me"))

    assert first.status == Status.IN_REVIEW
    assert first.message == "Your approval is recorded (1 of 2)."
    st = settle(loop, handle)
    assert st.status == Status.IN_REVIEW
    assert st.timeline[-1].kind == EventKind.APPROVAL and st.timeline[-1].detail == "1 of 2"
    assert pending_names(st) == ["manager", "reviewer2"]
    request = refreshed(request)
    assert request.status == Status.IN_REVIEW
    waiting = Participant.objects.filter(request=request, pending=True).values_list(
        "user__username", flat=True
    )
    assert sorted(waiting) == ["manager", "reviewer2"]

    with activities_held(request):
        second_update = accepted(loop, handle, action(ActionKind.APPROVE, manager))
        # reviewer2 never acted; the stage no longer needs them.
        late = refused(loop, handle, action(ActionKind.APPROVE, r2))
    second = answer(loop, second_update)  # answered once the read model shows it

    assert (second.status, second.message) == (Status.APPROVED, "Stage “Review” is approved.")
    assert late.startswith("This request is already approved by manager at ")
    final = result(loop, handle)
    assert (final.status, final.decided.by_name) == (Status.APPROVED, "manager")
    assert refreshed(request).status == Status.APPROVED
    assert RequestEvent.objects.get(request=request, kind="approval", actor=manager).detail == "2 of 2"
    assert not Participant.objects.filter(request=request, pending=True).exists()
    assert emailed("decided") == ["requester"]


def test_n_of_m_never_requires_more_approvals_than_there_are_approvers(
    loop: LoopThread, launch: Callable[..., Any], people: dict[str, User], purchase: RequestType
) -> None:
    r1, r2 = people["reviewer1"], people["reviewer2"]
    request = make_request(people, purchase)
    handle = launch(request, policy(review([r1, r2], rule=Rule.N_OF_M, required=5)))

    assert state(loop, handle).stage.required == 2
    act(loop, handle, action(ActionKind.APPROVE, r1))
    assert act(loop, handle, action(ActionKind.APPROVE, r2)).status == Status.APPROVED
    assert result(loop, handle).status == Status.APPROVED


def test_all_of_three_needs_every_approver(
    loop: LoopThread, launch: Callable[..., Any], people: dict[str, User], purchase: RequestType
) -> None:
    r1, r2, manager = people["reviewer1"], people["reviewer2"], people["manager"]
    request = make_request(people, purchase)
    handle = launch(request, policy(review([r1, r2, manager], rule=Rule.ALL)))
    assert state(loop, handle).stage.required == 3

    assert act(loop, handle, action(ActionKind.APPROVE, r1)).message == "Your approval is recorded (1 of 3)."
    assert (
        act(loop, handle, action(ActionKind.APPROVE, manager)).message
        == "Your approval is recorded (2 of 3)."
    )
    st = settle(loop, handle)
    assert st.status == Status.IN_REVIEW
    assert pending_names(st) == ["reviewer2"]
    assert refreshed(request).status == Status.IN_REVIEW
    assert list(Participant.objects.filter(request=request, pending=True).values_list("user", flat=True)) == [
        r2.pk
    ]
    assert refused(loop, handle, action(ActionKind.APPROVE, r1)).startswith(
        "You already approved stage “Review”"
    )

    last = act(loop, handle, action(ActionKind.APPROVE, r2))

    assert last.status == Status.APPROVED
    final = result(loop, handle)
    assert [e.detail for e in final.timeline if e.kind == EventKind.APPROVAL] == [
        "1 of 3",
        "2 of 3",
        "3 of 3",
    ]
    assert (refreshed(request).status, request.decided_by) == (Status.APPROVED, r2)


# --- Stages in order, with conditions --------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "route"),
    [
        (1500, ["Manager", "Finance", "IT"]),
        (500, ["Manager", "IT"]),
    ],
    ids=["1500-all-three-stages", "500-finance-skipped"],
)
def test_stages_run_in_order_and_a_conditional_stage_applies_only_when_its_condition_holds(
    loop: LoopThread,
    launch: Callable[..., Any],
    people: dict[str, User],
    purchase: RequestType,
    amount: int,
    route: list[str],
) -> None:
    finance, it = make_user("finance"), make_user("it")
    deciders = {"Manager": people["manager"], "Finance": finance, "IT": it}
    request = make_request(people, purchase, amount=amount)
    handle = launch(
        request,
        policy(
            review([people["manager"]], name="Manager"),
            review([finance], name="Finance", condition=Condition("amount", Operator.GT, "1000")),
            review([it], name="IT"),
        ),
    )

    for number, name in enumerate(route, start=1):
        st = settle(loop, handle)
        assert (st.status, st.stage.name) == (Status.IN_REVIEW, name)
        assert [a.name for a in st.stage.assignees] == [deciders[name].username]
        request = refreshed(request)
        assert (request.stage_name, request.stage_number, request.stage_count) == (name, number, len(route))
        # The approver of the stage just closed cannot act on this one.
        if number > 1:
            previous = deciders[route[number - 2]]
            assert refused(loop, handle, action(ActionKind.APPROVE, previous)).startswith(
                f"Stage “{route[number - 2]}” was already approved by {previous.username} at "
            )
        act(loop, handle, action(ActionKind.APPROVE, deciders[name]))

    final = result(loop, handle)
    assert final.status == Status.APPROVED
    assert [closed.name for closed in final.closed_stages] == route
    assert [e.stage for e in final.timeline if e.kind == EventKind.STAGE_STARTED] == route
    request = refreshed(request)
    assert (request.status, request.stage_number, request.stage_count) == (Status.APPROVED, 0, len(route))
    started = RequestEvent.objects.filter(request=request, kind="stage_started").values_list(
        "stage", flat=True
    )
    assert list(started) == route
    assert emailed("assigned") == sorted(deciders[name].username for name in route)
    assert ("finance" in emailed("assigned")) == (amount > 1000)
    # The requester hears of each stage passed on the way (and of the decision at the end).
    moved_on = sorted(m.subject for m in mail.outbox if m.to == ["requester@example.com"])
    assert moved_on == sorted(
        [f"“New laptop” moved on to {name}" for name in route[1:]]
        + ["Your request “New laptop” was approved"]
    )


# --- Time: reminders, deadlines, escalation ---------------------------------------------------


def test_daily_reminders_over_five_days_go_only_to_those_who_have_not_acted(
    loop: LoopThread,
    time_skipping_env: WorkflowEnvironment,
    launch: Callable[..., Any],
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    env = time_skipping_env
    r1, r2, r3 = people["reviewer1"], people["reviewer2"], make_user("reviewer3")
    request = make_request(people, purchase)
    handle = launch(
        request, policy(review([r1, r2, r3], rule=Rule.ALL, deadline_seconds=7 * DAY, reminder_seconds=DAY))
    )
    act(loop, handle, action(ActionKind.APPROVE, r1))
    started = settle(loop, handle).stage.started_at

    sleep_until(loop, env, started + timedelta(days=1) - MINUTE)
    assert EventKind.REMINDED not in kinds(settle(loop, handle))
    assert emailed("reminder") == []

    sleep_until(loop, env, started + timedelta(days=1) + MINUTE)
    settle(loop, handle)
    assert emailed("reminder") == ["reviewer2", "reviewer3"]

    sleep_until(loop, env, started + timedelta(days=5, hours=1))
    st = settle(loop, handle)

    reminders = [e for e in st.timeline if e.kind == EventKind.REMINDED]
    assert len(reminders) == 5
    for day, reminder in enumerate(reminders, start=1):  # each on its day, not drifting
        assert abs(reminder.at - (started + timedelta(days=day))) < timedelta(seconds=1)
    assert all(e.detail == "reviewer2, reviewer3" for e in reminders)
    assert emailed("reminder") == ["reviewer2"] * 5 + ["reviewer3"] * 5
    assert outbox("Reminder: New laptop is waiting for you") == ["reviewer2"] * 5 + ["reviewer3"] * 5
    assert RequestEvent.objects.filter(request=request, kind="reminded").count() == 5
    assert st.status == Status.IN_REVIEW and st.stage.escalation_level == 0


def test_two_escalation_levels_then_the_request_expires_at_each_boundary(
    loop: LoopThread,
    time_skipping_env: WorkflowEnvironment,
    launch: Callable[..., Any],
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    env = time_skipping_env
    manager, admin = people["manager"], people["admin"]
    request = make_request(people, purchase)
    handle = launch(
        request,
        policy(
            review(
                [people["reviewer1"], people["reviewer2"]],
                deadline_seconds=2 * DAY,
                escalation=[
                    EscalationLevel(after_seconds=DAY, user_ids=ids(manager)),
                    EscalationLevel(after_seconds=12 * HOUR, user_ids=ids(admin)),
                ],
                on_exhausted=Exhausted.EXPIRE,
            )
        ),
    )
    stage = state(loop, handle).stage
    deadline = stage.deadline
    assert deadline - stage.started_at == timedelta(days=2)
    assert refreshed(request).deadline == deadline

    # Level 1: the manager, when the stage's own deadline passes.
    sleep_until(loop, env, deadline - MINUTE)
    st = settle(loop, handle)
    assert (st.stage.escalation_level, emailed("escalated")) == (0, [])
    sleep_until(loop, env, deadline + MINUTE)
    st = settle(loop, handle)
    assert st.stage.escalation_level == 1
    assert pending_names(st) == ["manager", "reviewer1", "reviewer2"]
    assert emailed("escalated") == ["manager"]
    assert outbox("Escalated to you: New laptop") == ["manager"]
    level1_deadline = st.stage.deadline
    assert abs(level1_deadline - (deadline + timedelta(days=1))) < timedelta(seconds=1)
    request = refreshed(request)
    assert request.deadline == level1_deadline
    assert Participant.objects.get(request=request, user=manager).level == 1

    # Level 2: the admin, a day later.
    sleep_until(loop, env, level1_deadline - MINUTE)
    assert settle(loop, handle).stage.escalation_level == 1
    sleep_until(loop, env, level1_deadline + MINUTE)
    st = settle(loop, handle)
    assert st.stage.escalation_level == 2
    assert pending_names(st) == ["admin", "manager", "reviewer1", "reviewer2"]
    assert emailed("escalated") == ["admin", "manager"]
    level2_deadline = st.stage.deadline
    assert abs(level2_deadline - (level1_deadline + timedelta(hours=12))) < timedelta(seconds=1)
    escalations = RequestEvent.objects.filter(request=request, kind="escalated").order_by("seq")
    assert [e.detail.split(":")[0] for e in escalations] == ["Level 1", "Level 2"]

    # Then the policy's outcome: expired, and the requester is told.
    sleep_until(loop, env, level2_deadline - MINUTE)
    assert settle(loop, handle).status == Status.IN_REVIEW
    assert emailed("expired") == []
    sleep_until(loop, env, level2_deadline + MINUTE)

    final = result(loop, handle)
    assert final.status == Status.EXPIRED
    assert final.decided.by_name == "policy"
    assert final.decided.comment == "Deadline of stage “Review” passed after 2 escalation levels"
    assert abs(final.decided.at - level2_deadline) < timedelta(seconds=1)
    assert kinds(final)[-1] == EventKind.EXPIRED
    request = refreshed(request)
    assert (request.status, request.decided_by_name, request.deadline) == (Status.EXPIRED, "policy", None)
    assert emailed("expired") == ["requester"]
    assert outbox("Your request “New laptop” expired") == ["requester"]
    assert emailed("decided") == []


@pytest.mark.parametrize(
    ("outcome", "status"), [(Exhausted.REJECT, Status.REJECTED), (Exhausted.APPROVE, Status.APPROVED)]
)
def test_when_no_escalation_is_left_the_stage_outcome_follows_the_policy(
    loop: LoopThread,
    time_skipping_env: WorkflowEnvironment,
    launch: Callable[..., Any],
    people: dict[str, User],
    purchase: RequestType,
    outcome: Exhausted,
    status: Status,
) -> None:
    request = make_request(people, purchase)
    handle = launch(
        request, policy(review([people["reviewer1"]], deadline_seconds=DAY, on_exhausted=outcome))
    )
    sleep_until(loop, time_skipping_env, state(loop, handle).stage.deadline + MINUTE)

    final = result(loop, handle)
    assert (final.status, final.decided.by_name) == (status, "policy")
    assert refreshed(request).status == status
    assert emailed("decided") == ["requester"]
    if outcome == Exhausted.APPROVE:
        assert final.closed_stages[0].by_name == "policy"
        assert "automatically" in RequestEvent.objects.get(request=request, kind="stage_approved").detail


def test_an_approval_by_an_escalation_approver_closes_an_all_of_stage_outright(
    loop: LoopThread,
    time_skipping_env: WorkflowEnvironment,
    launch: Callable[..., Any],
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    r1, manager = people["reviewer1"], people["manager"]
    request = make_request(people, purchase)
    handle = launch(
        request,
        policy(
            review(
                [r1, people["reviewer2"]],
                rule=Rule.ALL,
                deadline_seconds=DAY,
                escalation=[EscalationLevel(after_seconds=DAY, user_ids=ids(manager))],
            )
        ),
    )
    act(loop, handle, action(ActionKind.APPROVE, r1))
    sleep_until(loop, time_skipping_env, state(loop, handle).stage.deadline + MINUTE)
    assert pending_names(settle(loop, handle)) == ["manager", "reviewer2"]

    answer = act(loop, handle, action(ActionKind.APPROVE, manager, "Approved as escalation"))

    assert (answer.status, answer.message) == (Status.APPROVED, "Stage “Review” is approved.")
    final = result(loop, handle)
    assert final.decided.by_name == "manager"
    assert [e.detail for e in final.timeline if e.kind == EventKind.APPROVAL] == ["1 of 2", "2 of 2"]
    assert Participant.objects.get(request=request, user=manager).level == 1


def test_a_stage_whose_approvers_resolve_to_nobody_escalates_at_once(
    loop: LoopThread, launch: Callable[..., Any], people: dict[str, User], purchase: RequestType
) -> None:
    """The only approver named is the requester, and an inactive user: nobody is left."""
    gone = make_user("gone", is_active=False)
    request = make_request(people, purchase)
    handle = launch(
        request,
        policy(
            review(
                [people["requester"], gone],
                escalation=[EscalationLevel(after_seconds=DAY, user_ids=ids(people["manager"]))],
            )
        ),
    )

    st = settle(loop, handle)
    assert st.stage.escalation_level == 1
    assert pending_names(st) == ["manager"]
    assert abs(st.stage.deadline - (st.stage.started_at + timedelta(days=1))) < timedelta(seconds=1)
    started = RequestEvent.objects.get(request=request, kind="stage_started")
    assert started.detail == "Approvers: nobody (escalating at once); needs 1"
    assert db_kinds(request) == ["submitted", "stage_started", "escalated"]
    assert (emailed("assigned"), emailed("escalated")) == ([], ["manager"])
    act(loop, handle, action(ActionKind.APPROVE, people["manager"]))
    assert result(loop, handle).status == Status.APPROVED


def test_need_more_time_moves_the_deadline_and_the_escalation_with_it(
    loop: LoopThread,
    time_skipping_env: WorkflowEnvironment,
    launch: Callable[..., Any],
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    env = time_skipping_env
    r1 = people["reviewer1"]
    request = make_request(people, purchase)
    handle = launch(
        request,
        policy(
            review(
                [r1, people["reviewer2"]],
                deadline_seconds=2 * DAY,
                escalation=[EscalationLevel(after_seconds=DAY, user_ids=ids(people["manager"]))],
            )
        ),
    )
    stage = state(loop, handle).stage
    old_deadline = stage.deadline
    sleep_until(loop, env, stage.started_at + timedelta(days=1))

    assert refused(loop, handle, action(ActionKind.EXTEND, r1, extend_seconds=0)) == (
        "Ask for between one minute and 30 days more."
    )
    assert refused(loop, handle, action(ActionKind.EXTEND, r1, extend_seconds=31 * DAY)) == (
        "Ask for between one minute and 30 days more."
    )
    assert refused(loop, handle, action(ActionKind.EXTEND, people["outsider"], extend_seconds=DAY)) == (
        "You are not an approver of this request, so you cannot decide it."
    )
    answer = act(
        loop, handle, action(ActionKind.EXTEND, r1, "Waiting for a second quote", extend_seconds=DAY)
    )

    new_deadline = old_deadline + timedelta(days=1)
    assert answer.message == f"The deadline is now {new_deadline:%Y-%m-%d %H:%M} UTC."
    st = settle(loop, handle)
    assert st.stage.deadline == new_deadline
    assert st.status == Status.IN_REVIEW
    extended = RequestEvent.objects.get(request=request, kind="extended")
    assert (extended.actor, extended.comment) == (r1, "Waiting for a second quote")
    assert extended.detail == f"New deadline {new_deadline:%Y-%m-%d %H:%M} UTC"
    assert refreshed(request).deadline == new_deadline
    waiting = Participant.objects.filter(request=request, pending=True).values_list("deadline", flat=True)
    assert list(waiting) == [new_deadline, new_deadline]  # what the approvers' inboxes sort on

    # Nothing happens at the old deadline ...
    sleep_until(loop, env, old_deadline + MINUTE)
    assert settle(loop, handle).stage.escalation_level == 0
    assert "escalated" not in db_kinds(request)
    sleep_until(loop, env, new_deadline - MINUTE)
    assert settle(loop, handle).stage.escalation_level == 0

    # ... the escalation comes at the new one.
    sleep_until(loop, env, new_deadline + MINUTE)
    st = settle(loop, handle)
    assert st.stage.escalation_level == 1
    assert emailed("escalated") == ["manager"]
    assert db_kinds(request)[-2:] == ["extended", "escalated"]


# --- Changes requested, withdrawn -------------------------------------------------------------


def test_changes_requested_pause_the_stage_and_a_resubmission_restarts_it(
    loop: LoopThread,
    time_skipping_env: WorkflowEnvironment,
    launch: Callable[..., Any],
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    env = time_skipping_env
    requester, r1, r2 = people["requester"], people["reviewer1"], people["reviewer2"]
    request = make_request(people, purchase)
    handle = launch(
        request,
        policy(
            review(
                [r1, r2],
                rule=Rule.ALL,
                deadline_seconds=2 * DAY,
                reminder_seconds=DAY,
                escalation=[EscalationLevel(after_seconds=DAY, user_ids=ids(people["manager"]))],
            )
        ),
    )
    first_deadline = state(loop, handle).stage.deadline
    act(loop, handle, action(ActionKind.APPROVE, r1, "Looks fine"))

    assert refused(loop, handle, action(ActionKind.REQUEST_CHANGES, r2, "  ")) == (
        "A comment is required to reject or to request changes."
    )
    answer = act(loop, handle, action(ActionKind.REQUEST_CHANGES, r2, "Please attach a quote"))

    assert (answer.status, answer.message) == (
        Status.CHANGES_REQUESTED,
        "Changes are requested from the requester.",
    )
    st = settle(loop, handle)
    assert st.status == Status.CHANGES_REQUESTED
    assert st.pending() == []
    request = refreshed(request)
    assert (request.status, request.deadline) == (Status.CHANGES_REQUESTED, None)
    assert not Participant.objects.filter(request=request, pending=True).exists()
    assert emailed("changes_requested") == ["requester"]
    assert refused(loop, handle, action(ActionKind.APPROVE, r2)) == (
        "Changes were requested; the requester has to resubmit before anyone decides."
    )

    # The clock stops for the stage: no reminder, no escalation, no expiry while the requester works.
    sleep_until(loop, env, first_deadline + timedelta(days=5))
    st = settle(loop, handle)
    assert st.status == Status.CHANGES_REQUESTED
    assert st.stage.escalation_level == 0
    assert {EventKind.REMINDED, EventKind.ESCALATED} & set(kinds(st)) == set()
    assert (emailed("reminder"), emailed("escalated")) == ([], [])

    assert refused(loop, handle, action(ActionKind.RESUBMIT, r1, content=Content("x"))) == (
        "Only the requester can resubmit the request."
    )
    assert refused(loop, handle, action(ActionKind.RESUBMIT, requester, content=Content("  "))) == (
        "A request needs a title."
    )
    new_content = Content("New laptop, with quote", "Quote from two shops attached", "1250.00")
    answer = act(loop, handle, action(ActionKind.RESUBMIT, requester, "Quote attached", content=new_content))

    assert (answer.status, answer.message) == (
        Status.IN_REVIEW,
        "Your request is resubmitted; review starts again.",
    )
    st = settle(loop, handle)
    resubmitted_at = st.timeline[-2].at
    assert kinds(st)[-2:] == [EventKind.RESUBMITTED, EventKind.STAGE_STARTED]
    assert (st.revision, st.content, st.stage.version, st.stage.approvals) == (2, new_content, 2, [])
    assert st.stage.deadline == st.stage.started_at + timedelta(days=2)
    assert st.stage.started_at >= resubmitted_at
    assert pending_names(st) == ["reviewer1", "reviewer2"]  # reviewer1's approval of revision 1 is gone
    request = refreshed(request)
    assert (request.status, request.revision, request.title) == (
        Status.IN_REVIEW,
        2,
        "New laptop, with quote",
    )
    assert str(request.amount) == "1250.00"
    revisions = RequestRevision.objects.filter(request=request).values_list("number", "title")
    assert list(revisions) == [(1, "New laptop"), (2, "New laptop, with quote")]
    assert RequestEvent.objects.get(request=request, kind="resubmitted").detail == "Revision 2"
    assert emailed("assigned") == ["reviewer1", "reviewer1", "reviewer2", "reviewer2"]
    # The new content is what the approvers are now asked about.
    assert outbox("Please review: New laptop, with quote") == ["reviewer1", "reviewer2"]

    assert act(loop, handle, action(ActionKind.APPROVE, r1)).message == "Your approval is recorded (1 of 2)."
    assert act(loop, handle, action(ActionKind.APPROVE, r2)).status == Status.APPROVED
    final = result(loop, handle)
    assert final.status == Status.APPROVED
    approvals = RequestEvent.objects.filter(request=request, kind="approval").values_list(
        "actor", "revision", "detail"
    )
    assert list(approvals) == [(r1.pk, 1, "1 of 2"), (r1.pk, 2, "1 of 2"), (r2.pk, 2, "2 of 2")]
    assert emailed("decided") == ["requester"]


def test_withdrawing_mid_stage_tells_those_still_waiting_and_refuses_later_decisions(
    loop: LoopThread, launch: Callable[..., Any], people: dict[str, User], purchase: RequestType
) -> None:
    requester, r1, r2, manager = (
        people["requester"],
        people["reviewer1"],
        people["reviewer2"],
        people["manager"],
    )
    request = make_request(people, purchase)
    handle = launch(request, policy(review([r1, r2, manager], rule=Rule.N_OF_M, required=2)))
    act(loop, handle, action(ActionKind.APPROVE, r1))

    assert (
        refused(loop, handle, action(ActionKind.WITHDRAW, r2))
        == "Only the requester can withdraw the request."
    )
    with activities_held(request):
        withdrawal = accepted(loop, handle, action(ActionKind.WITHDRAW, requester, "Bought it myself"))
        late_approval = refused(loop, handle, action(ActionKind.APPROVE, r2))
        late_comment = refused(loop, handle, action(ActionKind.COMMENT, requester, "Hello?"))
    answered = answer(loop, withdrawal)

    assert late_approval.startswith("This request is already withdrawn by requester at ")
    assert late_comment.startswith("This request is already withdrawn by requester at ")
    assert (answered.status, answered.message) == (Status.WITHDRAWN, "The request is withdrawn.")
    final = result(loop, handle)
    assert (final.status, final.decided.by_name, final.decided.comment) == (
        Status.WITHDRAWN,
        "requester",
        "Bought it myself",
    )
    request = refreshed(request)
    assert (request.status, request.decided_by, request.decision_comment) == (
        Status.WITHDRAWN,
        requester,
        "Bought it myself",
    )
    assert db_kinds(request)[-1] == "withdrawn"
    assert emailed("withdrawn") == ["manager", "reviewer2"]  # not reviewer1, who had already approved
    assert outbox("Withdrawn: New laptop") == ["manager", "reviewer2"]
    assert not Participant.objects.filter(request=request, pending=True).exists()


def test_staff_cancel_ends_the_request_and_tells_the_requester_and_those_it_waited_for(
    loop: LoopThread, launch: Callable[..., Any], people: dict[str, User], purchase: RequestType
) -> None:
    r1, r2, admin = people["reviewer1"], people["reviewer2"], people["admin"]
    request = make_request(people, purchase)
    handle = launch(request, policy(review([r1, r2], rule=Rule.ALL)))
    act(loop, handle, action(ActionKind.APPROVE, r1))

    assert (
        refused(loop, handle, action(ActionKind.CANCEL, r2, "Mine now")) == "Only staff can cancel a request."
    )
    assert (
        refused(loop, handle, action(ActionKind.CANCEL, admin, "  ", as_staff=True))
        == "Say why the request is cancelled: the requester will read it."
    )
    answer = act(loop, handle, action(ActionKind.CANCEL, admin, "Ordered twice", as_staff=True))

    assert (answer.status, answer.message) == (Status.CANCELLED, "The request is cancelled.")
    final = result(loop, handle)
    assert (final.status, final.decided.by_name, final.decided.comment) == (
        Status.CANCELLED,
        "admin",
        "Ordered twice",
    )
    request = refreshed(request)
    assert (request.status, request.decided_by, request.decision_comment) == (
        Status.CANCELLED,
        admin,
        "Ordered twice",
    )
    assert db_kinds(request)[-1] == "cancelled"
    assert emailed("cancelled") == ["requester", "reviewer2"]  # reviewer1 had already approved
    assert not Participant.objects.filter(request=request, pending=True).exists()
    run = request.stage_runs.get()  # ended by the cancellation, not left open
    assert (run.outcome, run.closed_at is not None) == ("cancelled", True)


# --- Who acts: delegation, out of office, groups, the requester -------------------------------


def test_an_approver_delegates_and_the_delegate_approves_in_their_place(
    loop: LoopThread, launch: Callable[..., Any], people: dict[str, User], purchase: RequestType
) -> None:
    r1, r2, manager = people["reviewer1"], people["reviewer2"], people["manager"]
    request = make_request(people, purchase)
    handle = launch(request, policy(review([r1, r2], rule=Rule.ALL)))

    assert refused(loop, handle, action(ActionKind.DELEGATE, r1)) == "Choose someone to delegate to."
    assert refused(
        loop,
        handle,
        action(ActionKind.DELEGATE, r1, delegate_id=people["requester"].pk, delegate_name="requester"),
    ) == ("The requester cannot approve their own request.")
    assert refused(
        loop, handle, action(ActionKind.DELEGATE, r1, delegate_id=r2.pk, delegate_name="reviewer2")
    ) == ("reviewer2 is already an approver of this stage.")
    answer = act(
        loop,
        handle,
        action(ActionKind.DELEGATE, r1, "On leave", delegate_id=manager.pk, delegate_name="manager"),
    )

    assert answer.message == "manager now acts in your place."
    st = settle(loop, handle)
    assert pending_names(st) == ["manager", "reviewer2"]
    delegate = next(a for a in st.stage.assignees if a.user_id == manager.pk)
    assert (delegate.acting_for_id, delegate.acting_for_name) == (r1.pk, "reviewer1")
    assert st.stage.required == 2
    delegated = RequestEvent.objects.get(request=request, kind="delegated")
    assert (delegated.actor, delegated.detail, delegated.comment) == (r1, "to manager", "On leave")
    stand_in = Participant.objects.get(request=request, user=manager)
    assert (stand_in.acting_for, stand_in.pending) == (r1, True)
    assert Participant.objects.get(request=request, user=r1).pending is False
    assert emailed("assigned") == ["manager", "reviewer1", "reviewer2"]
    assert refused(loop, handle, action(ActionKind.APPROVE, r1)) == "You are not an approver of this stage."

    assert (
        act(loop, handle, action(ActionKind.APPROVE, manager)).message
        == "Your approval is recorded (1 of 2)."
    )
    act(loop, handle, action(ActionKind.APPROVE, r2))

    final = result(loop, handle)
    assert final.status == Status.APPROVED
    assert kinds(final) == [
        EventKind.SUBMITTED,
        EventKind.STAGE_STARTED,
        EventKind.DELEGATED,
        EventKind.APPROVAL,
        EventKind.APPROVAL,
        EventKind.STAGE_APPROVED,
        EventKind.APPROVED,
    ]
    approvers = RequestEvent.objects.filter(request=request, kind="approval").values_list(
        "actor__username", flat=True
    )
    assert list(approvers) == ["manager", "reviewer2"]


def test_an_out_of_office_delegation_assigns_the_delegate_acting_for_the_absent_approver(
    loop: LoopThread, launch: Callable[..., Any], people: dict[str, User], purchase: RequestType
) -> None:
    r1, r2, manager, requester = (
        people["reviewer1"],
        people["reviewer2"],
        people["manager"],
        people["requester"],
    )
    now = timezone.now()
    Delegation.objects.create(
        user=r1, delegate=manager, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=7)
    )
    # Ignored: one that is over, and one to the requester (who never approves their own request).
    Delegation.objects.create(
        user=r2, delegate=people["admin"], starts_at=now - timedelta(days=9), ends_at=now - timedelta(days=2)
    )
    Delegation.objects.create(
        user=r2, delegate=requester, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=1)
    )
    request = make_request(people, purchase)

    handle = launch(request, policy(review([r1, r2])))

    st = state(loop, handle)
    assert [(a.name, a.acting_for_name) for a in st.stage.assignees] == [
        ("manager", "reviewer1"),
        ("reviewer2", ""),
    ]
    assert st.stage.assignees[0].acting_for_id == r1.pk
    participants = Participant.objects.filter(request=request).values_list(
        "user__username", "acting_for__username"
    )
    assert sorted(participants) == [("manager", "reviewer1"), ("reviewer2", None)]
    assert emailed("assigned") == ["manager", "reviewer2"]
    assert (
        refused(loop, handle, action(ActionKind.APPROVE, r1))
        == "You are not an approver of this request, so you cannot decide it."
    )

    act(loop, handle, action(ActionKind.APPROVE, manager, "For reviewer1"))

    final = result(loop, handle)
    assert (final.status, final.decided.by_name) == (Status.APPROVED, "manager")
    assert refreshed(request).decided_by == manager


def test_the_requester_is_never_assigned_and_a_person_in_two_groups_counts_once(
    loop: LoopThread, launch: Callable[..., Any], people: dict[str, User], purchase: RequestType
) -> None:
    requester, r1, r2, manager = (
        people["requester"],
        people["reviewer1"],
        people["reviewer2"],
        people["manager"],
    )
    buyers = Group.objects.create(name="Buyers")
    buyers.user_set.set([requester, r1, r2])
    it = Group.objects.create(name="IT")
    it.user_set.set([r1, manager])
    request = make_request(people, purchase)

    handle = launch(request, policy(StageSpec("Review", Rule.ALL, 3 * DAY, group_ids=[buyers.pk, it.pk])))

    st = state(loop, handle)
    assert sorted(a.user_id for a in st.stage.assignees) == sorted(ids(r1, r2, manager))
    assert st.stage.required == 3
    assert requester.pk not in st.participant_ids
    assert not Participant.objects.filter(request=request, user=requester).exists()
    assert emailed("assigned") == ["manager", "reviewer1", "reviewer2"]

    assert (
        refused(loop, handle, action(ActionKind.APPROVE, requester))
        == "You cannot decide on your own request."
    )
    assert (
        refused(loop, handle, action(ActionKind.REJECT, requester, "No"))
        == "You cannot decide on your own request."
    )
    assert act(loop, handle, action(ActionKind.COMMENT, requester, "Happy to answer questions")).status == (
        Status.IN_REVIEW
    )
    for approver in (r1, r2, manager):
        act(loop, handle, action(ActionKind.APPROVE, approver))

    final = result(loop, handle)
    assert final.status == Status.APPROVED
    assert [e.detail for e in final.timeline if e.kind == EventKind.APPROVAL] == [
        "1 of 3",
        "2 of 3",
        "3 of 3",
    ]


# --- Assignments: who was asked when, and how it ended for them ------------------------------


def assignments(request: ApprovalRequest) -> list[tuple[str, str, int, int, str]]:
    """(who, stage, stage run, level, outcome or "open"), in the order they were asked."""
    return [
        (a.user.username, a.stage_name, a.stage_version, a.level, a.outcome if a.closed_at else "open")
        for a in Assignment.objects.filter(request=request)
        .select_related("user")
        .order_by("asked_at", "user_id")
    ]


def test_each_person_asked_gets_an_assignment_closed_by_their_answer_or_by_the_stage(
    loop: LoopThread,
    time_skipping_env: WorkflowEnvironment,
    launch: Callable[..., Any],
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    env = time_skipping_env
    requester, r1, r2, manager = (people[n] for n in ("requester", "reviewer1", "reviewer2", "manager"))
    request = make_request(people, purchase)
    handle = launch(
        request,
        policy(
            review([r1, r2], deadline_seconds=DAY, escalation=[EscalationLevel(DAY, user_ids=ids(manager))]),
            StageSpec(name="Finance", rule=Rule.ANY, deadline_seconds=DAY, user_ids=ids(manager)),
        ),
    )
    started = state(loop, handle).stage.started_at
    assert assignments(request) == [
        ("reviewer1", "Review", 1, 0, "open"),
        ("reviewer2", "Review", 1, 0, "open"),
    ]
    stage_started = RequestEvent.objects.get(request=request, kind="stage_started").occurred_at
    assert {a.asked_at for a in Assignment.objects.filter(request=request)} == {stage_started}

    sleep_until(loop, env, started + timedelta(days=1, minutes=1))
    settle(loop, handle)
    escalated_at = RequestEvent.objects.get(request=request, kind="escalated").occurred_at
    assert Assignment.objects.get(request=request, user=manager).asked_at == escalated_at
    assert assignments(request)[-1] == ("manager", "Review", 1, 1, "open")

    act(loop, handle, action(ActionKind.REQUEST_CHANGES, r2, "Attach the quote"))
    settle(loop, handle)
    changes_at = RequestEvent.objects.get(request=request, kind="changes_requested").occurred_at
    assert assignments(request) == [
        ("reviewer1", "Review", 1, 0, ""),
        ("reviewer2", "Review", 1, 0, "changes_requested"),
        ("manager", "Review", 1, 1, ""),
    ]
    assert {a.closed_at for a in Assignment.objects.filter(request=request)} == {changes_at}

    act(loop, handle, action(ActionKind.RESUBMIT, requester, content=Content(title="Laptop, quote attached")))
    settle(loop, handle)
    act(loop, handle, action(ActionKind.APPROVE, r1))
    settle(loop, handle)
    act(loop, handle, action(ActionKind.APPROVE, manager))
    assert result(loop, handle).status == Status.APPROVED
    settle(loop, handle)

    assert assignments(request)[3:] == [
        ("reviewer1", "Review", 2, 0, "approval"),
        ("reviewer2", "Review", 2, 0, ""),
        ("manager", "Finance", 3, 0, "approval"),
    ]
    finance = Assignment.objects.get(request=request, stage_name="Finance")
    approved = RequestEvent.objects.get(request=request, kind="approval", actor=manager).occurred_at
    assert finance.asked_at <= finance.closed_at == approved
    assert not Assignment.objects.filter(request=request, closed_at__isnull=True).exists()


def test_a_delegation_handed_back_asks_the_approver_again_in_their_own_name(
    loop: LoopThread, launch: Callable[..., Any], people: dict[str, User], purchase: RequestType
) -> None:
    r1, r2, manager = people["reviewer1"], people["reviewer2"], people["manager"]
    request = make_request(people, purchase)
    handle = launch(request, policy(review([r1, r2], rule=Rule.ALL)))
    act(
        loop,
        handle,
        action(ActionKind.DELEGATE, r1, "On leave", delegate_id=manager.pk, delegate_name="manager"),
    )
    settle(loop, handle)
    act(
        loop,
        handle,
        action(ActionKind.DELEGATE, manager, "Back now", delegate_id=r1.pk, delegate_name="reviewer1"),
    )
    st = settle(loop, handle)

    back = next(a for a in st.stage.assignees if a.user_id == r1.pk)
    assert (back.acting_for_id, back.acting_for_name) == (None, "")
    assert pending_names(st) == ["reviewer1", "reviewer2"]
    assert Participant.objects.get(request=request, user=r1).acting_for is None
    assert assignments(request) == [
        ("reviewer1", "Review", 1, 0, "delegated"),
        ("reviewer2", "Review", 1, 0, "open"),
        ("manager", "Review", 1, 0, "delegated"),
        ("reviewer1", "Review", 1, 0, "open"),  # asked again: their load and response time count it
    ]
    act(loop, handle, action(ActionKind.APPROVE, r1))
    act(loop, handle, action(ActionKind.APPROVE, r2))
    assert result(loop, handle).status == Status.APPROVED
    settle(loop, handle)
    assert [a[-1] for a in assignments(request)] == ["delegated", "approval", "delegated", "approval"]


# --- Concurrency: decisions that meet ---------------------------------------------------------


class UncachedWorker(RunningWorker):
    """A worker on its own task queue that caches no workflow, so no sticky queue of its own
    holds on to the workflow's tasks once it has stopped: the next worker gets them at once."""

    def __init__(self, loop: LoopThread, client: Client, task_queue: str) -> None:
        self.loop = loop
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="race-activity"
        )

        async def make() -> Worker:
            return Worker(
                client,
                task_queue=task_queue,
                workflows=[ApprovalWorkflow],
                activities=ACTIVITIES,
                activity_executor=self.executor,
                max_cached_workflows=0,
            )

        self.worker = loop.run(make())
        self.task = asyncio.run_coroutine_threadsafe(self.worker.run(), loop.loop)


def start_on_own_queue(
    loop: LoopThread,
    env: WorkflowEnvironment,
    request: ApprovalRequest,
    workflow_policy: Policy,
    task_queue: str,
) -> WorkflowHandle[Any, Any]:
    workflow_input = approval_input_for(request, policy=workflow_policy)
    return loop.run(
        env.client.start_workflow(
            ApprovalWorkflow.run, workflow_input, id=request.workflow_id, task_queue=task_queue
        )
    )


@pytest.mark.parametrize("order", ["approval-then-deadline", "deadline-then-approval"])
def test_a_decision_meeting_the_deadline_is_decided_exactly_once(
    loop: LoopThread,
    time_skipping_env: WorkflowEnvironment,
    people: dict[str, User],
    purchase: RequestType,
    order: str,
) -> None:
    """The approval and the deadline both reach the history while the worker is down, in either
    order; the worker that comes back sees them in one workflow task and must decide once.

    The workflow runs on its own task queue with its own worker, so the test can stop it. While
    a workflow task waits for a worker the test server does not skip time, so the test stops
    the worker two (virtual) seconds before the deadline and lets those seconds pass in wall time.
    """
    env = time_skipping_env
    task_queue = f"race-{uuid.uuid4()}"
    request = make_request(people, purchase)
    approval = action(ActionKind.APPROVE, people["reviewer1"], "Just in time?")
    handle: WorkflowHandle[Any, Any] | None = None
    worker = UncachedWorker(loop, env.client, task_queue)
    try:
        try:
            handle = start_on_own_queue(
                loop, env, request, policy(review([people["reviewer1"]], deadline_seconds=DAY)), task_queue
            )
            wait_until(lambda: state(loop, handle).stage.assigned, what="approvers to be assigned")
            deadline = settle(loop, handle).stage.deadline
            sleep_until(loop, env, deadline - timedelta(seconds=2))
            settle(loop, handle)
        finally:
            worker.stop()
        seen = len(history(loop, handle))

        def deadline_passed() -> bool:
            return any(e.event_type == EventType.EVENT_TYPE_TIMER_FIRED for e in history(loop, handle)[seen:])

        if order == "approval-then-deadline":
            signal(loop, handle, approval)
            wait_until(deadline_passed, what="the deadline's timer to fire")
        else:
            wait_until(deadline_passed, what="the deadline's timer to fire")
            signal(loop, handle, approval)
        assert env_now(loop, env) > deadline
        arrivals = {
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: "approval",
            EventType.EVENT_TYPE_TIMER_FIRED: "deadline",
        }
        recorded = [arrivals[e.event_type] for e in history(loop, handle)[seen:] if e.event_type in arrivals]
        assert "-then-".join(recorded) == order  # as the history records them, before any worker sees them

        worker = UncachedWorker(loop, env.client, task_queue)
        try:
            final = result(loop, handle)
            settle(loop, handle)
        finally:
            worker.stop()
    finally:
        if handle is not None:
            stop_if_running(loop, handle)

    # Approved in both orders: the Python SDK applies signals before timers within one activation,
    # so the approval is seen first even when the history has the deadline first, and the
    # deadline then finds the request decided. Either way exactly one outcome, event and email.
    assert final.status == Status.APPROVED
    assert (final.decided.by_name, final.decided.comment) == ("reviewer1", "Just in time?")
    assert [k for k in kinds(final) if k in (EventKind.APPROVED, EventKind.EXPIRED)] == [EventKind.APPROVED]
    request = refreshed(request)
    assert request.status == Status.APPROVED
    final_events = RequestEvent.objects.filter(request=request, kind__in=["approved", "expired"])
    assert list(final_events.values_list("kind", flat=True)) == ["approved"]
    assert emailed("decided") == ["requester"]
    assert emailed("expired") == []


def test_two_approvals_at_once_on_a_one_of_n_stage_count_once(
    loop: LoopThread, launch: Callable[..., Any], people: dict[str, User], purchase: RequestType
) -> None:
    r1, r2 = people["reviewer1"], people["reviewer2"]
    request = make_request(people, purchase)
    handle = launch(request, policy(review([r1, r2])))
    a1, a2 = action(ActionKind.APPROVE, r1, "Yes"), action(ActionKind.APPROVE, r2, "Yes too")

    async def both() -> list[Any]:
        return await asyncio.gather(
            handle.execute_update(ApprovalWorkflow.submit_action, a1, id=a1.action_id),
            handle.execute_update(ApprovalWorkflow.submit_action, a2, id=a2.action_id),
            return_exceptions=True,
        )

    outcomes = loop.run(both())

    failures = [o for o in outcomes if isinstance(o, WorkflowUpdateFailedError)]
    successes = [o for o in outcomes if not isinstance(o, BaseException)]
    assert (len(successes), len(failures)) == (1, 1), outcomes
    assert successes[0].status == Status.APPROVED
    final = result(loop, handle)
    winner = final.decided.by_name
    assert winner in ("reviewer1", "reviewer2")
    assert str(failures[0].cause.message).startswith(f"This request is already approved by {winner} at ")
    loser = a2 if winner == "reviewer1" else a1
    assert update_events(history(loop, handle), loser.action_id) == []  # refused by the validator
    assert kinds(final).count(EventKind.APPROVAL) == 1
    request = refreshed(request)
    assert RequestEvent.objects.filter(request=request, kind="approval").count() == 1
    assert request.decided_by.username == final.decided.by_name
    assert emailed("decided") == ["requester"]


# --- History: refused updates, continue-as-new, typical size ----------------------------------


def test_a_refused_update_leaves_nothing_in_the_history(
    loop: LoopThread, launch: Callable[..., Any], people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase)
    handle = launch(request, policy(review([people["reviewer1"], people["reviewer2"]])))
    before = history(loop, handle)

    attempt = action(ActionKind.APPROVE, people["outsider"], "Let me")
    assert (
        refused(loop, handle, attempt) == "You are not an approver of this request, so you cannot decide it."
    )

    after = history(loop, handle)
    assert update_events(after, attempt.action_id) == []
    # A real server drops the rejected update's workflow task too; the test server keeps that task.
    added = {EventType.Name(e.event_type) for e in after[len(before) :]}
    assert added <= {
        "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
        "EVENT_TYPE_WORKFLOW_TASK_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
    }
    assert "approval" not in db_kinds(request)
    # An accepted one, for contrast, is recorded.
    comment = action(ActionKind.COMMENT, people["reviewer1"], "Checking the budget")
    act(loop, handle, comment)
    assert update_events(history(loop, handle), comment.action_id) == ["accepted", "completed"]


def comment_flood(
    loop: LoopThread, handle: WorkflowHandle[Any, Any], authors: list[User], numbers: range
) -> None:
    """Send comments `numbers` by signal, all at once."""

    async def send() -> None:
        await asyncio.gather(
            *(
                handle.signal(
                    ApprovalWorkflow.act, action(ActionKind.COMMENT, authors[n % 3], f"Comment {n}")
                )
                for n in numbers
            )
        )

    loop.run(send())


def test_continue_as_new_under_a_flood_of_comments_keeps_every_comment(
    loop: LoopThread,
    time_skipping_env: WorkflowEnvironment,
    launch: Callable[..., Any],
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    """400 comments in bursts: 9 signals at once, then an update; the workflow catches its breath
    between bursts, as it would between bursts of real traffic, and continues as new near its limit.

    (Updates are not sent while the workflow may be continuing as new: the time-skipping test
    server does not hand such an update over to the next run reliably.)"""
    limit = 200
    authors = [people["requester"], people["reviewer1"], people["reviewer2"]]
    request = make_request(people, purchase)
    handle = launch(request, policy(review(authors[1:])), history_limit=limit)

    for first in range(0, 400, 10):
        comment_flood(loop, handle, authors, range(first, first + 9))
        settle(loop, handle)
        act(loop, handle, action(ActionKind.COMMENT, authors[first % 3], f"Comment {first + 9}"))
        settle(loop, handle)
    act(loop, handle, action(ActionKind.APPROVE, people["reviewer1"], "Enough talk"))

    final = result(loop, handle)
    assert final.status == Status.APPROVED
    assert final.runs > 1
    comments = RequestEvent.objects.filter(request=request, kind="comment")
    assert sorted(int(c.split()[1]) for c in comments.values_list("comment", flat=True)) == list(range(400))
    seqs = list(RequestEvent.objects.filter(request=request).values_list("seq", flat=True))
    assert seqs == list(range(final.seq + 1))  # every event, in order, none missing
    assert final.timeline_dropped + len(final.timeline) == final.seq + 1  # the oldest left memory only
    assert len(final.timeline) == TIMELINE_KEPT
    assert all(entry.comment == "" for entry in final.timeline)  # the read model has them
    runs = run_histories(loop, time_skipping_env.client, handle)
    lengths = [len(events) for events in runs]
    print(f"{len(runs)} runs; history lengths {lengths}")

    assert len(runs) == final.runs
    # A run may pass the limit by what one burst adds before the workflow next checks it.
    assert max(lengths) <= limit + 100, lengths


def test_a_flood_without_pauses_loses_nothing_and_continues_as_new_once_it_pauses(
    loop: LoopThread,
    time_skipping_env: WorkflowEnvironment,
    launch: Callable[..., Any],
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    """600 comments by signal, 25 at a time, never waiting for the workflow.

    No workflow can keep this run under its limit: the server appends every signal to the
    history as it arrives, and refuses to let the run continue as new while new signals keep
    coming in (the workflow task fails with UnhandledCommand so that none is lost). What the
    engine can promise is that nothing is lost, and that it continues as new at the first pause.
    """
    limit = 200
    authors = [people["requester"], people["reviewer1"], people["reviewer2"]]
    request = make_request(people, purchase)
    handle = launch(request, policy(review(authors[1:])), history_limit=limit)

    for first in range(0, 600, 25):
        comment_flood(loop, handle, authors, range(first, first + 25))
    st = settle(loop, handle)

    assert st.runs >= 2
    assert len(history(loop, handle)) < limit  # the current run starts small again
    act(loop, handle, action(ActionKind.APPROVE, people["reviewer1"], "Enough talk"))
    final = result(loop, handle)
    assert final.status == Status.APPROVED
    comments = RequestEvent.objects.filter(request=request, kind="comment")
    assert sorted(int(c.split()[1]) for c in comments.values_list("comment", flat=True)) == list(range(600))
    seqs = list(RequestEvent.objects.filter(request=request).values_list("seq", flat=True))
    assert seqs == list(range(final.seq + 1))
    histories = run_histories(loop, time_skipping_env.client, handle)
    signals = [
        sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED for e in h) for h in histories
    ]
    print(f"{len(histories)} runs; history lengths {[len(h) for h in histories]}; signals per run {signals}")


def test_an_action_sent_twice_counts_once_even_across_continue_as_new(
    loop: LoopThread, launch: Callable[..., Any], people: dict[str, User], purchase: RequestType
) -> None:
    """An action's id makes a repeat (a retried signal, a double click) count once, and that
    memory must survive continue-as-new (failed before the answers travelled in the state)."""
    requester = people["requester"]
    request = make_request(people, purchase)
    handle = launch(request, policy(review([people["reviewer1"]])), history_limit=80)
    comment = action(ActionKind.COMMENT, requester, "Is the quote attached?")

    signal(loop, handle, comment)
    signal(loop, handle, comment)  # an integration retrying its delivery
    st = settle(loop, handle)
    assert (st.runs, kinds(st).count(EventKind.COMMENT)) == (1, 1)  # counted once within a run
    n = 0
    while settle(loop, handle).runs == 1:  # other talk until the workflow continues as new
        act(loop, handle, action(ActionKind.COMMENT, requester, f"Other comment {n}"))
        n += 1
    assert comment.action_id in state(loop, handle).recent_action_ids

    signal(loop, handle, comment)  # the same retry, arriving after the continue-as-new

    st = settle(loop, handle)
    repeats = RequestEvent.objects.filter(request=request, comment="Is the quote attached?")
    assert repeats.count() == 1
    assert RequestEvent.objects.filter(request=request, kind="comment").count() == n + 1
    assert kinds(st)[-1] == EventKind.COMMENT and st.seq == repeats.get().seq + n  # nothing new since


def test_a_typical_request_keeps_a_small_history(
    loop: LoopThread,
    time_skipping_env: WorkflowEnvironment,
    launch: Callable[..., Any],
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    request = make_request(people, purchase)
    handle = launch(
        request,
        policy(
            review([people["reviewer1"], people["reviewer2"]], deadline_seconds=7 * DAY, reminder_seconds=DAY)
        ),
    )
    started = state(loop, handle).stage.started_at
    sleep_until(loop, time_skipping_env, started + timedelta(days=3, hours=2))
    act(loop, handle, action(ActionKind.COMMENT, people["reviewer2"], "Looking at it today"))
    act(loop, handle, action(ActionKind.APPROVE, people["reviewer1"]))

    final = result(loop, handle)
    events = history(loop, handle)
    print(f"A request with 3 reminders, a comment and an approval: {len(events)} history events, 1 run")
    assert final.status == Status.APPROVED
    assert kinds(final).count(EventKind.REMINDED) == 3
    assert final.runs == 1
    assert len(events) < 200
