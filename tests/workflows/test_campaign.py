"""Access-review campaigns on the time-skipping server, at scale: 2,500 reviews fanned out in
bounded runs, decided by their reviewers or by the end rule at the deadline, counted exactly.

The activities here are the campaign's books kept in memory (the real ones, with the database,
run on the dev server: tests/integration/test_campaign.py), so that what is measured is the
workflows: the fan-out, the continue-as-new between batches, the reports and the counts."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.conftest import LoopThread, binary, wait_until
from workflows.campaign import CampaignWorkflow, ReviewWorkflow
from workflows.types import (
    BULK_TASK_QUEUE,
    CLOSE_REVIEWS,
    LIST_REVIEWS,
    OPEN_CAMPAIGN,
    RECORD_CAMPAIGN,
    RECORD_REVIEW,
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
    ReviewRevoke,
    ReviewsClose,
    campaign_id_for,
    review_id_for,
)

# The campaign's clock, in real seconds: the reviews outlive the runs that started them (each
# continues as new), and the test server stops skipping time for good once a child outlives its
# parent (temporalio/sdk-java#1540, #1618). So its deadline is two minutes away, not weeks:
# reminders and the escalation come while the reviews wait, and the end rule runs at the deadline.
DEADLINE, REMIND_EVERY, ESCALATE_AFTER = 120, 30, 100


@dataclass
class Books:
    """A campaign's read model, in memory: what the activities were asked to record."""

    total: int
    end_rule: EndRule = EndRule.REVOKE
    ended_grants: frozenset[int] = frozenset()  # their access ended before the review did
    reports: list[CampaignReport] = field(default_factory=list)
    records: dict[int, list[ReviewRecord]] = field(default_factory=dict)
    revokes: Counter[str] = field(default_factory=Counter)
    digests: list[DigestRound] = field(default_factory=list)
    listed: list[ReviewPage] = field(default_factory=list)
    cancelled: int = 0
    closed_through: int = -1
    plan: CampaignPlan | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def grant_ids(self) -> list[int]:
        return [3 * n + 1 for n in range(self.total)]  # ids with gaps, as a database's are

    def activities(self) -> list[Any]:
        @activity.defn(name=OPEN_CAMPAIGN)
        def open_campaign(campaign_id: str) -> CampaignPlan:
            now = datetime.now().astimezone()
            self.plan = CampaignPlan(
                total=self.total,
                opened_at=now,
                deadline=now + timedelta(seconds=DEADLINE),
                end_rule=self.end_rule,
                remind_every=REMIND_EVERY,
                escalate_after=ESCALATE_AFTER,
            )
            return self.plan

        @activity.defn(name=LIST_REVIEWS)
        def list_reviews(page: ReviewPage) -> list[ReviewInput]:
            with self.lock:
                self.listed.append(page)
            plan = self.plan
            assert plan is not None
            return [
                ReviewInput(
                    campaign_id=page.campaign_id,
                    grant_id=grant_id,
                    request_id=f"request-{grant_id}",
                    reviewer_id=1 + grant_id % 7,
                    deadline=plan.deadline,
                    end_rule=self.end_rule,
                    manager_id=100,
                    escalate_at=plan.opened_at + timedelta(seconds=plan.escalate_after),
                )
                for grant_id in self.grant_ids()
                if grant_id > page.after
            ][: page.limit]

        @activity.defn(name=RECORD_CAMPAIGN)
        def record_campaign(report: CampaignReport) -> None:
            with self.lock:
                self.reports.append(report)

        @activity.defn(name=SEND_DIGESTS)
        def send_digests(round: DigestRound) -> None:
            with self.lock:
                self.digests.append(round)

        @activity.defn(name=CLOSE_REVIEWS)
        async def close_reviews(close: ReviewsClose) -> None:
            """As the read model's does: each review started (up to the cursor) is told."""
            client = activity.client()
            for grant_id in self.grant_ids():
                if grant_id > close.cursor:
                    break
                handle = client.get_workflow_handle(review_id_for(close.campaign_id, grant_id))
                try:
                    await handle.signal(ReviewWorkflow.close)
                except RPCError as exc:
                    if exc.status != RPCStatusCode.NOT_FOUND:
                        raise
            with self.lock:
                self.cancelled += 1
                self.closed_through = close.cursor

        @activity.defn(name=RECORD_REVIEW)
        def record_review(record: ReviewRecord) -> None:
            with self.lock:
                self.records.setdefault(record.grant_id, []).append(record)

        @activity.defn(name=REVOKE_REVIEWED)
        def revoke_reviewed(revoke: ReviewRevoke) -> bool:
            with self.lock:
                self.revokes[revoke.action_id] += 1
            return int(revoke.request_id.split("-")[1]) not in self.ended_grants

        return [
            open_campaign,
            list_reviews,
            record_campaign,
            send_digests,
            close_reviews,
            record_review,
            revoke_reviewed,
        ]

    def final(self) -> dict[int, ReviewRecord]:
        return {grant: records[-1] for grant, records in self.records.items() if records[-1].final}


@pytest.fixture
def env(loop: LoopThread) -> Iterator[WorkflowEnvironment]:
    """A time-skipping test server of the test's own: the reviews outlive the campaign's runs
    (each continues as new), and the test server's time skipping does not survive children that
    outlive their parent (temporalio/sdk-java#1540, #1618), so the session's server is kept out."""
    environment = loop.run(
        WorkflowEnvironment.start_time_skipping(test_server_existing_path=binary("temporal-test-server"))
    )
    yield environment
    loop.run(environment.shutdown())


class BulkWorker:
    """The bulk queue's worker, with the in-memory books' activities."""

    def __init__(self, loop: LoopThread, env: WorkflowEnvironment, books: Books) -> None:
        self.loop = loop
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=16)

        async def make() -> Worker:
            return Worker(
                env.client,
                task_queue=BULK_TASK_QUEUE,
                workflows=[CampaignWorkflow, ReviewWorkflow],
                activities=books.activities(),
                activity_executor=self.executor,
                max_concurrent_activities=16,
            )

        self.worker = loop.run(make())
        self.future = asyncio.run_coroutine_threadsafe(self.worker.run(), loop.loop)

    def stop(self) -> None:
        self.loop.run(self.worker.shutdown())
        self.future.result(10)
        self.executor.shutdown(wait=True)


def start(
    loop: LoopThread, env: WorkflowEnvironment, **input: Any
) -> tuple[str, WorkflowHandle[Any, CampaignProgress]]:
    campaign_id = str(uuid.uuid4())
    handle = loop.run(
        env.client.start_workflow(
            CampaignWorkflow.run,
            CampaignInput(campaign_id, **input),
            id=campaign_id_for(campaign_id),
            task_queue=BULK_TASK_QUEUE,
        )
    )
    return campaign_id, handle


def decide(
    loop: LoopThread, env: WorkflowEnvironment, campaign_id: str, grant_id: int, keep: bool, actor_id: int
) -> str:
    """A reviewer's decision on one review: its answer, or why it was refused."""
    handle = env.client.get_workflow_handle(review_id_for(campaign_id, grant_id))
    decision = ReviewDecision(
        keep=keep, actor_id=actor_id, actor_name=f"user{actor_id}", action_id=str(uuid.uuid4()), comment="no"
    )
    try:
        return str(loop.run(handle.execute_update(ReviewWorkflow.decide, decision)))
    except WorkflowUpdateFailedError as exc:
        assert isinstance(exc.cause, ApplicationError)
        return f"refused: {exc.cause.message}"
    except RPCError as exc:  # a review that is over has completed
        return f"closed: {exc.message}"


def runs_of(loop: LoopThread, env: WorkflowEnvironment, campaign_id: str) -> list[list[HistoryEvent]]:
    """Each run's history, first run first: from the last run back along continue-as-new."""

    async def fetch() -> list[list[HistoryEvent]]:
        runs: list[list[HistoryEvent]] = []
        run_id: str | None = None
        while True:
            handle = env.client.get_workflow_handle(campaign_id_for(campaign_id), run_id=run_id)
            events = list((await handle.fetch_history()).events)
            runs.insert(0, events)
            before = events[0].workflow_execution_started_event_attributes.continued_execution_run_id
            if not before:
                return runs
            run_id = before

    return loop.run(fetch())


def children_started(events: list[HistoryEvent]) -> int:
    return sum(e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED for e in events)


@pytest.mark.slow  # minutes: CI runs it after the suite (pyproject's markers)
def test_2500_reviews_fan_out_in_bounded_runs_and_end_with_exact_counts(
    loop: LoopThread, env: WorkflowEnvironment
) -> None:
    books = Books(total=2500, ended_grants=frozenset({301, 3001, 6001}))  # reviews 100, 1000, 2000
    worker = BulkWorker(loop, env, books)
    try:
        campaign_id, handle = start(loop, env, history_limit=3000)
        grants = books.grant_ids()

        def fanned_out() -> bool:
            return bool(books.reports) and books.reports[-1].progress.started == books.total

        wait_until(fanned_out, timeout=240, what="every review to start")
        # Reviewers decide some (the end rule takes the rest at the deadline).
        kept = grants[:40]
        revoked = grants[40:50]
        for grant_id in kept:
            assert decide(loop, env, campaign_id, grant_id, True, 1 + grant_id % 7) == "The access is kept."
        for grant_id in revoked:
            answer = decide(loop, env, campaign_id, grant_id, False, 1 + grant_id % 7)
            assert answer == "The access is being revoked."
        # Someone else's, and a second decision on a closed review, are refused.
        assert decide(loop, env, campaign_id, grants[60], True, 1 + (grants[60] + 1) % 7).startswith(
            "refused: Only"
        )
        assert decide(loop, env, campaign_id, kept[0], False, 1 + kept[0] % 7).startswith("closed")

        progress = loop.run(handle.result(), timeout=600)
    finally:
        worker.stop()

    rule = books.total - len(kept) - len(revoked)
    ended = len(books.ended_grants)  # ended before the rule's revoke reached them
    assert (progress.started, progress.kept, progress.revoked, progress.ended) == (
        2500,
        40,
        10 + rule - ended,
        ended,
    )
    assert progress.by_rule == rule
    # Every review recorded its outcome once, and each revoke was asked for once.
    final = books.final()
    assert sorted(final) == grants
    assert Counter(r.outcome for r in final.values()) == {
        ReviewOutcome.KEPT: 40,
        ReviewOutcome.REVOKED: 10 + rule - ended,
        ReviewOutcome.ENDED: ended,
    }
    assert all(sum(r.final for r in records) == 1 for records in books.records.values())
    assert len(books.revokes) == 10 + rule and set(books.revokes.values()) == {1}
    assert books.reports[-1].status == CampaignStatus.COMPLETED
    # Digests: the assignment's once the reviews are out, a reminder on the cadence after it,
    # and one escalation: rounds (one email per reviewer each), never one email per review.
    kinds = [d.kind for d in books.digests]
    assert kinds[0] == DigestKind.ASSIGNED and kinds.count(DigestKind.ESCALATED) == 1
    assert DigestKind.REMINDER in kinds and kinds.count(DigestKind.ASSIGNED) == 1
    rounds = [d.round for d in books.digests if d.kind != DigestKind.ESCALATED]
    assert rounds == list(range(1, len(rounds) + 1))

    runs = runs_of(loop, env, campaign_id)
    started_per_run = [children_started(events) for events in runs]
    assert sum(started_per_run) == 2500
    assert max(started_per_run) <= 1000
    assert len(runs) >= 3  # it continued as new between batches (and while counting reports)
    assert all(len(events) < 5000 for events in runs)
    assert all(page.limit <= 100 for page in books.listed)


def test_a_cancelled_campaign_closes_its_reviews_and_changes_no_access(
    loop: LoopThread, env: WorkflowEnvironment
) -> None:
    books = Books(total=30)
    worker = BulkWorker(loop, env, books)
    try:
        campaign_id, handle = start(loop, env, batch_size=10)
        wait_until(lambda: books.digests, timeout=60, what="the assignment digest")
        grants = books.grant_ids()
        assert decide(loop, env, campaign_id, grants[0], True, 1 + grants[0] % 7) == "The access is kept."
        loop.run(handle.signal(CampaignWorkflow.cancel, CampaignCancel("admin", "wrong scope")))
        progress = loop.run(handle.result(), timeout=120)
        # Every review started closes by itself, recording so; none is decided after the cancel.
        wait_until(lambda: len(books.final()) == 30, timeout=60, what="every review to close")
        answer = decide(loop, env, campaign_id, grants[1], True, 1 + grants[1] % 7)
    finally:
        worker.stop()
    assert answer.startswith("closed")
    assert books.cancelled == 1 and books.closed_through == grants[-1]
    assert books.reports[-1].status == CampaignStatus.CANCELLED
    assert books.reports[-1].cancelled_by == "admin"
    assert progress.kept == 1 and not books.revokes
    outcomes = Counter(record.outcome for record in books.final().values())
    assert outcomes == {ReviewOutcome.KEPT: 1, ReviewOutcome.CANCELLED: 29}


def test_a_decision_taken_as_the_campaign_is_cancelled_still_finishes_its_revoke(
    loop: LoopThread, env: WorkflowEnvironment
) -> None:
    """The close reaches a review whose revoke is under way: what the decision began is finished
    and recorded, never left half done."""
    books = Books(total=3)
    gate = threading.Event()
    activities = books.activities()
    revoke = next(
        a for a in activities if getattr(a, "__temporal_activity_definition").name == REVOKE_REVIEWED
    )

    @activity.defn(name=REVOKE_REVIEWED)
    def slow_revoke(request: ReviewRevoke) -> bool:
        gate.wait(30)
        return bool(revoke(request))

    books.activities = lambda: [a for a in activities if a is not revoke] + [slow_revoke]  # type: ignore[method-assign]
    worker = BulkWorker(loop, env, books)
    try:
        campaign_id, handle = start(loop, env)
        wait_until(lambda: books.digests, timeout=60, what="the assignment digest")
        grant = books.grant_ids()[0]
        assert decide(loop, env, campaign_id, grant, False, 1 + grant % 7) == "The access is being revoked."
        loop.run(handle.signal(CampaignWorkflow.cancel, CampaignCancel("admin", "wrong scope")))
        loop.run(handle.result(), timeout=60)
        gate.set()
        wait_until(lambda: len(books.final()) == 3, timeout=60, what="every review to end")
    finally:
        gate.set()
        worker.stop()
    assert books.final()[grant].outcome == ReviewOutcome.REVOKED
    assert sum(books.revokes.values()) == 1
    assert [r.outcome for r in books.final().values()].count(ReviewOutcome.CANCELLED) == 2
