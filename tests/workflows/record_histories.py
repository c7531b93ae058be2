"""Record histories of the released approval workflow, for the replay tests.

    python -m tests.workflows.record_histories [SCENARIO ...]

Runs typical lifecycles on the time-skipping test server with stand-in activities (the history
records activity results, so replay needs no database) and writes one JSON file per workflow
run into tests/workflows/histories/. Run it when a workflow version is released, and commit the
files; never regenerate old files after changing the workflow, since they stand for runs
already in flight. Name scenarios to record only those (a new one, on the released code).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from workflows.approval import ApprovalWorkflow
from workflows.types import (
    Action,
    ActionKind,
    ApprovalInput,
    Assignee,
    AssignInput,
    Condition,
    Content,
    EscalationLevel,
    NotificationInput,
    NotificationKind,
    Operator,
    Policy,
    Projection,
    Rule,
    StageSpec,
    workflow_id_for,
)

HISTORIES = Path(__file__).resolve().parent / "histories"


def _policy(*, distinct: bool = False, undo_seconds: int = 0) -> Policy:
    """Two stages; with `distinct`, separation of duties, and user 11 named at both."""
    return Policy(
        request_type="Purchase",
        distinct_approvers=distinct,
        undo_seconds=undo_seconds,
        stages=[
            StageSpec(
                name="Team lead",
                rule=Rule.N_OF_M,
                required=2,
                user_ids=[11, 12, 13],
                deadline_seconds=int(timedelta(days=2).total_seconds()),
                reminder_seconds=int(timedelta(days=1).total_seconds()),
                escalation=[
                    EscalationLevel(after_seconds=int(timedelta(days=1).total_seconds()), user_ids=[14])
                ],
            ),
            StageSpec(
                name="Finance",
                rule=Rule.ANY,
                group_ids=[1],
                user_ids=[11] if distinct else [],
                deadline_seconds=int(timedelta(days=3).total_seconds()),
                condition=Condition(field="amount", operator=Operator.GT, value="1000"),
            ),
        ],
    )


async def record(only: set[str]) -> None:
    @activity.defn(name="resolve_approvers")
    async def resolve_approvers(assign: AssignInput) -> list[Assignee]:
        ids = list(assign.user_ids) + [20 + g for g in assign.group_ids]
        never = {assign.requester_id, *assign.exclude_ids}
        return [Assignee(user_id=i, name=f"user{i}", level=assign.level) for i in ids if i not in never]

    @activity.defn(name="project_state")
    async def project_state(projection: Projection) -> list[str]:
        # The emails that come along are sent, but for the decision's: the mail server is away
        # for that one, which then goes on its own (send_notification).
        return [n.idempotency_key for n in projection.notifications if n.kind == NotificationKind.DECIDED]

    @activity.defn(name="send_notification")
    async def send_notification(notification: NotificationInput) -> None:
        pass

    def act(kind: ActionKind, user_id: int, comment: str = "", **fields: Any) -> Action:
        return Action(kind, user_id, f"user{user_id}", comment, action_id=str(uuid.uuid4()), **fields)

    async def settle(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
        """Wait until the current stage has its approvers."""
        for _ in range(200):
            state = await handle.query(ApprovalWorkflow.state)
            if state.stage is None or state.stage.assigned:
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("the stage's approvers were never assigned")

    Scenario = Callable[[WorkflowEnvironment, WorkflowHandle[Any, Any]], Awaitable[None]]

    async def approved_in_two_stages(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
        await handle.signal(ApprovalWorkflow.act, act(ActionKind.COMMENT, 10, "Needed for the new hire"))
        await handle.execute_update(ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, 11, "ok"))
        await env.sleep(timedelta(hours=30))  # one reminder to the others
        await handle.execute_update(ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, 12))
        await settle(env, handle)
        await handle.execute_update(ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, 21, "Budget ok"))

    async def escalated_then_expired(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
        await env.sleep(timedelta(days=4))

    async def changes_then_resubmitted(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
        await handle.execute_update(
            ApprovalWorkflow.submit_action, act(ActionKind.REQUEST_CHANGES, 13, "Which model?")
        )
        await handle.execute_update(
            ApprovalWorkflow.submit_action,
            act(ActionKind.RESUBMIT, 10, "Model X1", content=Content("New laptop X1", "Model X1", "900")),
        )
        await settle(env, handle)
        await handle.execute_update(
            ApprovalWorkflow.submit_action,
            act(ActionKind.DELEGATE, 11, delegate_id=15, delegate_name="user15"),
        )
        await handle.execute_update(
            ApprovalWorkflow.submit_action, act(ActionKind.EXTEND, 12, extend_seconds=86400)
        )
        await handle.execute_update(ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, 15))
        await handle.execute_update(ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, 13))

    async def delegation_handed_back(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
        await handle.execute_update(
            ApprovalWorkflow.submit_action,
            act(ActionKind.DELEGATE, 11, "Away", delegate_id=15, delegate_name="user15"),
        )
        await handle.execute_update(
            ApprovalWorkflow.submit_action,
            act(ActionKind.DELEGATE, 15, "Back now", delegate_id=11, delegate_name="user11"),
        )
        for approver in (11, 12):
            await handle.execute_update(ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, approver))

    async def withdrawn(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
        await handle.execute_update(
            ApprovalWorkflow.submit_action, act(ActionKind.WITHDRAW, 10, "Not needed")
        )

    async def continued_as_new(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
        for i in range(60):
            await handle.signal(ApprovalWorkflow.act, act(ActionKind.COMMENT, 10 + i % 3, f"comment {i}"))
        await settle(env, handle)
        await handle.execute_update(ApprovalWorkflow.submit_action, act(ActionKind.REJECT, 11, "No"))

    # Recorded on the release that answers updates once projected and records skipped stages.
    async def skipped_stage_answers_projected(
        env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]
    ) -> None:
        await handle.signal(ApprovalWorkflow.act, act(ActionKind.COMMENT, 10, "Small one"))
        await handle.execute_update(ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, 11, "ok"))
        await handle.execute_update(ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, 12))

    async def cancelled_by_staff(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
        await handle.execute_update(ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, 11))
        await handle.execute_update(
            ApprovalWorkflow.submit_action, act(ActionKind.CANCEL, 99, "Ordered twice", as_staff=True)
        )

    # Recorded on the release that adds separation of duties.
    async def distinct_approvers(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
        for approver in (11, 12):
            await handle.execute_update(ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, approver))
        await settle(env, handle)  # Finance: user 21 only, since 11 approved the first stage
        await handle.signal(ApprovalWorkflow.act, act(ActionKind.APPROVE, 11))  # refused, dropped
        await handle.execute_update(
            ApprovalWorkflow.submit_action,
            act(ActionKind.DELEGATE, 21, delegate_id=15, delegate_name="user15"),
        )
        await handle.execute_update(ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, 15, "Budget ok"))

    # Recorded on the release whose stage timer is started again only when its time moves.
    async def steady_timer(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
        comment = act(ActionKind.COMMENT, 11, "Which model?")
        await handle.execute_update(ApprovalWorkflow.submit_action, comment)
        await handle.execute_update(ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, 11, "ok"))
        await handle.execute_update(
            ApprovalWorkflow.submit_action, act(ActionKind.EXTEND, 12, extend_seconds=86400)
        )
        await env.sleep(timedelta(hours=30))  # one reminder to the others
        await handle.execute_update(ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, 12))
        await settle(env, handle)
        await handle.execute_update(
            ApprovalWorkflow.submit_action,
            act(ActionKind.DELEGATE, 21, delegate_id=15, delegate_name="user15"),
        )
        await handle.execute_update(ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, 15, "Budget ok"))

    async def steady_timer_continued_as_new(
        env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]
    ) -> None:
        for n in range(12):
            comment = act(ActionKind.COMMENT, 11, f"Note {n}")
            await handle.execute_update(ApprovalWorkflow.submit_action, comment)
        await env.sleep(timedelta(hours=30))
        for approver in (11, 12):
            await handle.execute_update(ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, approver))

    # Recorded on the release that takes fewer tasks (one workflow task and one activity per
    # action): the steady timer's lifecycle again (as "fewer_tasks"), and one with changes requested.
    async def fewer_tasks_continued_as_new(
        env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]
    ) -> None:
        for n in range(12):
            comment = act(ActionKind.COMMENT, 11, f"Note {n}")
            await handle.execute_update(ApprovalWorkflow.submit_action, comment)
        await handle.execute_update(
            ApprovalWorkflow.submit_action, act(ActionKind.REQUEST_CHANGES, 12, "Which model?")
        )
        await handle.execute_update(
            ApprovalWorkflow.submit_action,
            act(ActionKind.RESUBMIT, 10, "Model X1", content=Content("New laptop X1", "Model X1", "900")),
        )
        await settle(env, handle)
        for approver in (11, 12):
            await handle.execute_update(ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, approver))

    # Recorded on the release whose decisions wait out an undo period (10 s) before they take
    # effect: one undone, one by signal, one let go when the request is withdrawn; and held
    # decisions carried over by continue-as-new.
    async def undo(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
        first = act(ActionKind.APPROVE, 11, "ok")
        await handle.execute_update(ApprovalWorkflow.submit_action, first)
        await handle.execute_update(
            ApprovalWorkflow.submit_action, act(ActionKind.UNDO, 11, target_id=first.action_id)
        )
        await handle.execute_update(
            ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, 11, "ok after all")
        )
        await handle.signal(ApprovalWorkflow.act, act(ActionKind.APPROVE, 12))
        await env.sleep(timedelta(seconds=15))
        await settle(env, handle)
        await handle.execute_update(
            ApprovalWorkflow.submit_action, act(ActionKind.REQUEST_CHANGES, 21, "Which model?")
        )
        await handle.execute_update(ApprovalWorkflow.submit_action, act(ActionKind.WITHDRAW, 10))

    async def undo_continued_as_new(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
        await handle.execute_update(ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, 11))
        for n in range(12):
            comment = act(ActionKind.COMMENT, 13, f"Note {n}")
            await handle.execute_update(ApprovalWorkflow.submit_action, comment)
        await env.sleep(timedelta(seconds=15))
        await handle.execute_update(ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, 12))
        await env.sleep(timedelta(seconds=15))
        await settle(env, handle)
        await handle.execute_update(ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, 21))
        await env.sleep(timedelta(seconds=15))

    policies = {
        "distinct_approvers": _policy(distinct=True),
        "undo": _policy(undo_seconds=10),
        "undo_continued_as_new": _policy(undo_seconds=10),
    }
    # Who the first stage asks, found by the starter (as the web does from this release on).
    team = [Assignee(user_id=i, name=f"user{i}", level=0) for i in (11, 12, 13)]
    first_assignees = {"fewer_tasks": team, "fewer_tasks_continued_as_new": team}
    scenarios: dict[str, tuple[Scenario, str, int]] = {
        "approved_in_two_stages": (approved_in_two_stages, "1500", 2000),
        "escalated_then_expired": (escalated_then_expired, "1500", 2000),
        "changes_then_resubmitted": (changes_then_resubmitted, "1500", 2000),
        "withdrawn": (withdrawn, "200", 2000),
        "delegation_handed_back": (delegation_handed_back, "200", 2000),
        "continued_as_new": (continued_as_new, "200", 60),
        "skipped_stage_answers_projected": (skipped_stage_answers_projected, "200", 2000),
        "cancelled_by_staff": (cancelled_by_staff, "1500", 2000),
        "distinct_approvers": (distinct_approvers, "1500", 2000),
        "steady_timer": (steady_timer, "1500", 2000),
        "steady_timer_continued_as_new": (steady_timer_continued_as_new, "200", 40),
        "fewer_tasks": (steady_timer, "1500", 2000),
        "fewer_tasks_continued_as_new": (fewer_tasks_continued_as_new, "200", 30),
        "undo": (undo, "1500", 2000),
        "undo_continued_as_new": (undo_continued_as_new, "1500", 30),
    }
    HISTORIES.mkdir(exist_ok=True)
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(Path(sys.executable).parent / "temporal-test-server")
        if (Path(sys.executable).parent / "temporal-test-server").exists()
        else shutil.which("temporal-test-server")
    )
    client: Client = env.client
    try:
        async with Worker(
            client,
            task_queue="record-histories",
            workflows=[ApprovalWorkflow],
            activities=[resolve_approvers, project_state, send_notification],
        ):
            for name, (scenario, amount, history_limit) in scenarios.items():
                if only and name not in only:
                    continue
                workflow_id = workflow_id_for(name)
                handle = await client.start_workflow(
                    ApprovalWorkflow.run,
                    ApprovalInput(
                        request_id=name,
                        requester_id=10,
                        requester_name="user10",
                        policy=policies.get(name, _policy()),
                        content=Content("New laptop", "For the new hire", amount),
                        history_limit=history_limit,
                        first_assignees=first_assignees.get(name),
                    ),
                    id=workflow_id,
                    task_queue="record-histories",
                )
                await settle(env, handle)
                await scenario(env, handle)
                await handle.result()
                # Follow the chain of runs that continue-as-new made, from the first one.
                run_id: str | None = handle.first_execution_run_id
                number = 0
                while run_id:
                    number += 1
                    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
                    path = HISTORIES / f"{name}-run{number}.json"
                    path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
                    print(f"wrote {path.name} ({len(history.events)} events)")
                    last = history.events[-1]
                    run_id = (
                        last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                        if last.HasField("workflow_execution_continued_as_new_event_attributes")
                        else None
                    )
    finally:
        await env.shutdown()


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "approvals.settings")
    import django

    django.setup()
    asyncio.run(record(set(sys.argv[1:])))


if __name__ == "__main__":
    main()
