"""Record histories of the released workflows (approval, fulfilment, grant, campaign and review,
webhook delivery), for the replay tests.

    python -m tests.workflows.record_histories [SCENARIO ...]

Runs typical lifecycles on the time-skipping test server with stand-in activities (the history
records activity results, so replay needs no database) and writes one JSON file per workflow
run into tests/workflows/histories/. Run it when a workflow version is released, and commit the
files; never regenerate old files after changing the workflow, since they stand for runs
already in flight. Name scenarios to record only those (a new one, on the released code).
"""

from __future__ import annotations

import asyncio
import dataclasses
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
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from workflows.approval import ApprovalWorkflow
from workflows.campaign import CampaignWorkflow, ReviewWorkflow
from workflows.fulfilment import FulfilmentWorkflow
from workflows.grant import GrantWorkflow
from workflows.types import (
    CLOSE_REVIEWS,
    DELIVER_WEBHOOK,
    LIST_REVIEWS,
    OPEN_CAMPAIGN,
    RECORD_CAMPAIGN,
    RECORD_REVIEW,
    RECORD_WEBHOOK_FAILING,
    REFUSED_BY_PARTNER,
    REVOKE_REVIEWED,
    SEND_DIGESTS,
    UNDELIVERABLE,
    Action,
    ActionKind,
    ApprovalInput,
    Assignee,
    AssignInput,
    CampaignCancel,
    CampaignInput,
    CampaignPlan,
    CampaignReport,
    Condition,
    Content,
    DigestRound,
    EndRule,
    EscalationLevel,
    Fulfilment,
    FulfilmentInput,
    FulfilmentReport,
    GrantAction,
    GrantActionKind,
    GrantEnd,
    GrantInfo,
    GrantInput,
    GrantReport,
    NotificationInput,
    NotificationKind,
    Operator,
    Policy,
    Projection,
    ReviewDecision,
    ReviewInput,
    ReviewPage,
    ReviewRecord,
    ReviewRevoke,
    ReviewsClose,
    Rule,
    StageSpec,
    StepInput,
    WebhookDeliveryInput,
    WebhookFailure,
    campaign_id_for,
    fulfilment_id_for,
    review_id_for,
    webhook_id_for,
    workflow_id_for,
)
from workflows.webhook import WebhookDeliveryWorkflow

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

    # Fulfilment and grants: steps that succeed but for an order to a request named "refused",
    # and a cancel whose first two attempts fail.
    @activity.defn(name="reserve_budget")
    async def reserve_budget(step: StepInput) -> str:
        return "1,500.00 reserved from it"

    @activity.defn(name="release_budget")
    async def release_budget(step: StepInput) -> str:
        return "1,500.00 given back to it"

    @activity.defn(name="place_purchase_order")
    async def place_purchase_order(step: StepInput) -> str:
        if "refused" in step.request_id:
            raise ApplicationError("The purchase-order endpoint refused it (422)", type=REFUSED_BY_PARTNER)
        return "order EXT-1 placed"

    @activity.defn(name="cancel_purchase_order")
    async def cancel_purchase_order(step: StepInput) -> str:
        if activity.info().attempt < 3:
            raise RuntimeError("The purchase-order endpoint failed (503)")
        return "order EXT-1 cancelled"

    @activity.defn(name="record_fulfilment")
    async def record_fulfilment(report: FulfilmentReport) -> None:
        pass

    @activity.defn(name="load_grant")
    async def load_grant(request_id: str) -> GrantInfo:
        return GrantInfo(10, "user10", "Payroll", "read", ends_at=await _now(), approver_ids=[14], days=30)

    @activity.defn(name="record_grant")
    async def record_grant(report: GrantReport) -> None:
        pass

    @activity.defn(name="end_grant")
    async def end_grant(end: GrantEnd) -> None:
        pass

    async def _now() -> Any:
        from datetime import UTC, datetime

        return datetime.now(UTC)

    def grant_act(kind: GrantActionKind, user_id: int, **fields: Any) -> GrantAction:
        return GrantAction(kind, user_id, f"user{user_id}", str(uuid.uuid4()), **fields)

    async def extended_then_expired(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
        await handle.execute_update(
            GrantWorkflow.act, grant_act(GrantActionKind.EXTEND, 10, days=10, reason="Audit")
        )
        await handle.execute_update(GrantWorkflow.act, grant_act(GrantActionKind.APPROVE, 14))
        await handle.execute_update(
            GrantWorkflow.act, grant_act(GrantActionKind.EXTEND, 10, days=5, reason="More")
        )
        await handle.execute_update(GrantWorkflow.act, grant_act(GrantActionKind.REFUSE, 14, reason="No"))
        await env.sleep(timedelta(days=41))  # two reminders, then the end

    async def revoked(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
        await handle.execute_update(
            GrantWorkflow.act, grant_act(GrantActionKind.EXTEND, 10, days=10, reason="More")
        )
        await env.sleep(timedelta(days=4))  # undecided: refused at its deadline
        await handle.execute_update(GrantWorkflow.act, grant_act(GrantActionKind.REVOKE, 10, reason="Done"))

    async def grant_continued_as_new(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
        for _ in range(10):
            await handle.execute_update(
                GrantWorkflow.act, grant_act(GrantActionKind.EXTEND, 10, days=2, reason="More")
            )
            await handle.execute_update(GrantWorkflow.act, grant_act(GrantActionKind.APPROVE, 14))
        await handle.execute_update(
            GrantWorkflow.act, grant_act(GrantActionKind.REVOKE, 1, reason="Left", as_staff=True)
        )

    async def approved_then_fulfilled(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
        await handle.execute_update(ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, 11))
        await handle.execute_update(ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, 12))

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

    async def signal_let_go(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
        """An approval by signal (an email link's) that came once changes were requested: let go,
        in the timeline; then the requester withdraws."""
        await handle.execute_update(
            ApprovalWorkflow.submit_action, act(ActionKind.REQUEST_CHANGES, 11, "Which model?")
        )
        await handle.signal(ApprovalWorkflow.act, act(ActionKind.APPROVE, 12))
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
        "approved_then_fulfilled": dataclasses.replace(_policy(), fulfilment=Fulfilment.PURCHASE),
    }
    # On the release of agent actions: one approved with edits by the second of two people (the
    # first asked again), and one a trusting stage approves by itself.
    agent_stages = [
        StageSpec(
            name="Low risk",
            rule=Rule.ANY,
            user_ids=[11, 12],
            deadline_seconds=3600,
            condition=Condition(field="risk", operator=Operator.EQ, value="low"),
            auto_approve=True,
        ),
        StageSpec(
            name="Two people",
            rule=Rule.N_OF_M,
            required=2,
            user_ids=[11, 12, 13],
            deadline_seconds=3600,
            condition=Condition(field="tool", operator=Operator.EQ, value="db.*"),
        ),
    ]
    policies["agent_approved_with_edits"] = Policy("Agent action", agent_stages)
    policies["agent_trusted_low_risk"] = Policy("Agent action", agent_stages)
    v1, v2 = "1" * 64, "2" * 64
    contents = {
        "agent_approved_with_edits": Content(
            "db.migrate (asked by deploy-bot)", "Ship it", tool="db.migrate", risk="high", action_sha256=v1
        ),
        "agent_trusted_low_risk": Content(
            "email.send (asked by deploy-bot)", "Tell them", tool="email.send", risk="low", action_sha256=v1
        ),
    }

    async def agent_approved_with_edits(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
        await handle.execute_update(
            ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, 11, action_sha256=v1)
        )
        edited = dataclasses.replace(contents["agent_approved_with_edits"], action_sha256=v2)
        await handle.execute_update(
            ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, 12, action_sha256=v1, content=edited)
        )
        await handle.signal(ApprovalWorkflow.act, act(ActionKind.APPROVE, 13, action_sha256=v1))  # refused
        await handle.execute_update(
            ApprovalWorkflow.submit_action, act(ActionKind.APPROVE, 11, action_sha256=v2)
        )

    async def nothing(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
        pass

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
        # On the release that fulfils what an approval sets in motion (its fulfilment recorded too):
        "approved_then_fulfilled": (approved_then_fulfilled, "200", 2000),
        "agent_approved_with_edits": (agent_approved_with_edits, "", 2000),
        "agent_trusted_low_risk": (nothing, "", 2000),
        "signal_let_go": (signal_let_go, "1500", 2000),
    }
    # ... and the fulfilment and grant workflows of that release, started on their own.
    others: dict[str, tuple[Any, Any, Scenario | None]] = {
        "fulfilment_fulfilled": (
            FulfilmentWorkflow.run,
            FulfilmentInput("fulfilled", Fulfilment.PURCHASE, 1, 9),
            None,
        ),
        "fulfilment_rolled_back": (
            FulfilmentWorkflow.run,
            FulfilmentInput("refused", Fulfilment.PURCHASE, 1, 9),
            None,
        ),
        "grant_extended_then_expired": (GrantWorkflow.run, GrantInput("extended"), extended_then_expired),
        "grant_revoked": (GrantWorkflow.run, GrantInput("revoked"), revoked),
        "grant_continued_as_new": (
            GrantWorkflow.run,
            GrantInput("continued", history_limit=30),
            grant_continued_as_new,
        ),
    }
    HISTORIES.mkdir(exist_ok=True)
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=_test_server())
    client: Client = env.client
    try:
        async with Worker(
            client,
            task_queue="record-histories",
            workflows=[ApprovalWorkflow, FulfilmentWorkflow, GrantWorkflow],
            activities=[
                resolve_approvers,
                project_state,
                send_notification,
                reserve_budget,
                release_budget,
                place_purchase_order,
                cancel_purchase_order,
                record_fulfilment,
                load_grant,
                record_grant,
                end_grant,
            ],
        ):
            # Those without children first: the test server stops skipping time once a child
            # has outlived its parent (so the approval that starts a fulfilment comes last).
            for name, (run, workflow_input, scenario) in others.items():
                if only and name not in only:
                    continue
                handle = await client.start_workflow(
                    run, workflow_input, id=name, task_queue="record-histories"
                )
                if scenario is not None:
                    await asyncio.sleep(0.5)  # loaded
                    await scenario(env, handle)
                await handle.result()
                await write_runs(client, name, name, handle.first_execution_run_id)
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
                        content=contents.get(name, Content("New laptop", "For the new hire", amount or None)),
                        history_limit=history_limit,
                        first_assignees=first_assignees.get(name),
                    ),
                    id=workflow_id,
                    task_queue="record-histories",
                )
                await settle(env, handle)
                await scenario(env, handle)
                await handle.result()
                await write_runs(client, workflow_id, name, handle.first_execution_run_id)
                if policies.get(name, _policy()).fulfilment:
                    child = client.get_workflow_handle(fulfilment_id_for(name, 1))
                    await child.result()
                    await write_runs(client, child.id, f"{name}_fulfilment")
    finally:
        await env.shutdown()
    if not only or only & set(CAMPAIGN_SCENARIOS):
        await record_campaigns(only)
    if not only or only & set(WEBHOOK_SCENARIOS):
        await record_webhooks(only)


# An access-review campaign of five reviews, started two at a time and four to a run (so that it
# continues as new between batches): one kept and one revoked by their reviewers, the rest
# revoked by the end rule at the deadline, with a reminder and an escalation on the way; and a
# campaign of three cancelled after one review was kept. Each review's history is written too.
CAMPAIGN_SCENARIOS = {
    "campaign_completed": (5, False),
    "campaign_cancelled": (3, True),
}
REVIEW_HISTORIES = {
    "campaign_completed": {
        1: "campaign_review_kept",
        2: "campaign_review_revoked",
        3: "campaign_review_by_rule",
    },
    "campaign_cancelled": {2: "campaign_review_closed"},
}


async def record_campaigns(only: set[str]) -> None:
    """On a time-skipping server of their own, in seconds of real time: the reviews outlive the
    campaign's runs, and the test server stops skipping time once a child outlives its parent
    (temporalio/sdk-java#1540, #1618)."""
    from datetime import UTC, datetime

    totals: dict[str, int] = {}
    plans: dict[str, CampaignPlan] = {}

    @activity.defn(name=OPEN_CAMPAIGN)
    async def open_campaign(campaign_id: str) -> CampaignPlan:
        now = datetime.now(UTC)
        plans[campaign_id] = CampaignPlan(
            total=totals[campaign_id],
            opened_at=now,
            deadline=now + timedelta(seconds=8),
            end_rule=EndRule.REVOKE,
            remind_every=3,
            escalate_after=5,
        )
        return plans[campaign_id]

    @activity.defn(name=LIST_REVIEWS)
    async def list_reviews(page: ReviewPage) -> list[ReviewInput]:
        plan = plans[page.campaign_id]
        grants = [g for g in range(1, totals[page.campaign_id] + 1) if g > page.after][: page.limit]
        return [
            ReviewInput(
                page.campaign_id,
                g,
                f"request-{g}",
                reviewer_id=11,
                deadline=plan.deadline,
                end_rule=EndRule.REVOKE,
                campaign_name="Payroll Q4",
                manager_id=21,
                escalate_at=plan.opened_at + timedelta(seconds=5),
            )
            for g in grants
        ]

    @activity.defn(name=RECORD_CAMPAIGN)
    async def record_campaign(report: CampaignReport) -> None:
        pass

    @activity.defn(name=SEND_DIGESTS)
    async def send_digests(round: DigestRound) -> int:
        return 1

    @activity.defn(name=CLOSE_REVIEWS)
    async def close_reviews(close: ReviewsClose) -> int:
        from temporalio.service import RPCError

        client = activity.client()
        for grant in range(1, close.cursor + 1):
            try:
                await client.get_workflow_handle(review_id_for(close.campaign_id, grant)).signal(
                    ReviewWorkflow.close
                )
            except RPCError:
                pass  # decided and over already
        return close.cursor

    @activity.defn(name=RECORD_REVIEW)
    async def record_review(record: ReviewRecord) -> None:
        pass

    @activity.defn(name=REVOKE_REVIEWED)
    async def revoke_reviewed(revoke: ReviewRevoke) -> bool:
        return True

    def decision(keep: bool) -> ReviewDecision:
        return ReviewDecision(keep, 11, "user11", str(uuid.uuid4()), "" if keep else "Left the team")

    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=_test_server())
    client: Client = env.client
    try:
        async with Worker(
            client,
            task_queue="record-histories-bulk",
            workflows=[CampaignWorkflow, ReviewWorkflow],
            activities=[
                open_campaign,
                list_reviews,
                record_campaign,
                send_digests,
                close_reviews,
                record_review,
                revoke_reviewed,
            ],
        ):
            for name, (total, cancel) in CAMPAIGN_SCENARIOS.items():
                if only and name not in only:
                    continue
                totals[name] = total
                handle = await client.start_workflow(
                    CampaignWorkflow.run,
                    CampaignInput(name, batch_size=2, reviews_per_run=4),
                    id=campaign_id_for(name),
                    task_queue="record-histories-bulk",
                )
                for _ in range(200):  # every review started
                    if all([await _running(client, review_id_for(name, g)) for g in range(1, total + 1)]):
                        break
                    await asyncio.sleep(0.1)
                await client.get_workflow_handle(review_id_for(name, 1)).execute_update(
                    ReviewWorkflow.decide, decision(True)
                )
                if cancel:
                    await handle.signal(CampaignWorkflow.cancel, CampaignCancel("admin", "Wrong scope"))
                else:
                    await client.get_workflow_handle(review_id_for(name, 2)).execute_update(
                        ReviewWorkflow.decide, decision(False)
                    )
                await handle.result()
                await write_runs(client, campaign_id_for(name), name, handle.first_execution_run_id)
                for grant, review_name in REVIEW_HISTORIES[name].items():
                    review = client.get_workflow_handle(review_id_for(name, grant))
                    await review.result()
                    await write_runs(client, review.id, review_name)
    finally:
        await env.shutdown()


# Webhook deliveries: one delivered at its third attempt; one whose subscriber said it is gone
# (410), recorded as failing at once; one never answered, failing once its round's time is over.
WEBHOOK_SCENARIOS = {
    "webhook_delivered_on_retry": (1, "delivered"),
    "webhook_gone": (2, "gone"),
    "webhook_gave_up": (3, "down"),
}


async def record_webhooks(only: set[str]) -> None:
    attempts: dict[int, int] = {}
    outcome = {delivery: how for delivery, how in WEBHOOK_SCENARIOS.values()}

    @activity.defn(name=DELIVER_WEBHOOK)
    async def deliver(delivery: WebhookDeliveryInput) -> str:
        attempts[delivery.delivery_id] = attempts.get(delivery.delivery_id, 0) + 1
        how = outcome[delivery.delivery_id]
        if how == "delivered" and attempts[delivery.delivery_id] >= 3:
            return "delivered (200)"
        if how == "gone":
            raise ApplicationError("Answered 410: gone", type=UNDELIVERABLE, non_retryable=True)
        raise ApplicationError("Answered 503: down for maintenance")

    @activity.defn(name=RECORD_WEBHOOK_FAILING)
    async def failing(failure: WebhookFailure) -> None:
        pass

    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=_test_server())
    client: Client = env.client
    try:
        async with Worker(
            client,
            task_queue="record-histories-webhooks",
            workflows=[WebhookDeliveryWorkflow],
            activities=[deliver, failing],
        ):
            for name, (delivery_id, _) in WEBHOOK_SCENARIOS.items():
                if only and name not in only:
                    continue
                workflow_id = webhook_id_for(f"evt_{name}", 1, 1)
                handle = await client.start_workflow(
                    WebhookDeliveryWorkflow.run,
                    WebhookDeliveryInput(delivery_id, 1, retry_seconds=120),
                    id=workflow_id,
                    task_queue="record-histories-webhooks",
                )
                print(name, await handle.result())
                await write_runs(client, workflow_id, name)
    finally:
        await env.shutdown()


async def _running(client: Client, workflow_id: str) -> bool:
    from temporalio.service import RPCError

    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return False
    return True


def _test_server() -> str | None:
    beside = Path(sys.executable).parent / "temporal-test-server"
    return str(beside) if beside.exists() else shutil.which("temporal-test-server")


async def write_runs(client: Client, workflow_id: str, name: str, first_run_id: str | None = None) -> None:
    """Write each run of the workflow, following the chain continue-as-new made from the first
    (or from its only run)."""
    run_id = first_run_id or (await client.get_workflow_handle(workflow_id).describe()).run_id
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


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "approvals.settings")
    import django

    django.setup()
    asyncio.run(record(set(sys.argv[1:])))


if __name__ == "__main__":
    main()
