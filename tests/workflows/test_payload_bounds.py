"""What Temporal carries for a request stays bounded, however long the request lives.

Every field at its limit, in the text that costs most as JSON (characters outside the Basic
Multilingual Plane: twelve bytes each once escaped), through a long life: revisions, a thousand
comments, several continues-as-new. The largest payload Temporal saw is printed and held far
below its 2 MB limit.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from django.contrib.auth.models import User
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle

from approvals.models import ApprovalRequest, RequestEvent, RequestRevision, RequestType
from tests.conftest import LoopThread, make_request
from tests.workflows.helpers import act, action, result
from tests.workflows.test_engine import launch, policy, review, run_histories, settle  # noqa: F401
from workflows.approval import ApprovalWorkflow
from workflows.rules import MAX_COMMENT, MAX_DETAILS, MAX_NAME, MAX_TITLE
from workflows.types import ActionKind, Content
from workflows.types import RequestStatus as Status

pytestmark = pytest.mark.usefixtures("ts_worker", "ts_cleanup")

WIDE = "😀"  # one character, four bytes of UTF-8, twelve of escaped JSON
CEILING = 256 * 1024  # what we hold every payload under (Temporal refuses one over 2 MB)
COMMENTS = 1000
REVISIONS = 4


def payload_sizes(event: HistoryEvent) -> list[int]:
    """The size of each payload an event holds (inputs, results, signal and update arguments)."""
    sizes: list[int] = []

    def walk(message: Any) -> None:
        for descriptor, value in message.ListFields():
            if descriptor.message_type is None or hasattr(value, "items"):
                continue  # a scalar, or a map (headers, memo: no request data here)
            for item in [value] if hasattr(value, "ListFields") else value:  # one, or repeated
                if descriptor.message_type.full_name == "temporal.api.common.v1.Payload":
                    sizes.append(item.ByteSize())
                else:
                    walk(item)

    walk(event)
    return sizes


def test_the_longest_life_at_every_limit_stays_far_below_temporals_payload_limit(
    loop: LoopThread,
    launch: Any,  # noqa: F811
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    requester, reviewer = people["requester"], people["reviewer1"]
    request = make_request(people, purchase, title=WIDE * MAX_TITLE)
    ApprovalRequest.objects.filter(pk=request.pk).update(details=WIDE * MAX_DETAILS)
    request.refresh_from_db()
    # A deadline no skip of the test server's clock reaches: this is about size, not time.
    stage = review([reviewer, people["reviewer2"]], deadline_seconds=10 * 365 * 24 * 3600)
    handle: WorkflowHandle[Any, Any] = launch(request, policy(stage), history_limit=600)

    for revision in range(REVISIONS):
        act(loop, handle, action(ActionKind.REQUEST_CHANGES, reviewer, WIDE * MAX_COMMENT))
        content = Content(f"{revision}" + WIDE * (MAX_TITLE - 1), WIDE * MAX_DETAILS, "12.50")
        act(loop, handle, action(ActionKind.RESUBMIT, requester, WIDE * MAX_COMMENT, content=content))
        settle(loop, handle)  # the stage's approvers are asked again

    async def burst(first: int) -> None:
        await asyncio.gather(
            *(
                handle.signal(
                    ApprovalWorkflow.act,
                    dataclasses.replace(
                        action(ActionKind.COMMENT, reviewer if n % 2 else requester, f"{n} " + WIDE * 3990),
                        actor_name=WIDE * MAX_NAME,
                    ),
                )
                for n in range(first, first + 50)
            )
        )

    for first in range(0, COMMENTS, 50):
        loop.run(burst(first), timeout=120)
        settle(loop, handle)
    act(loop, handle, action(ActionKind.APPROVE, people["reviewer2"], WIDE * MAX_COMMENT))
    final = result(loop, handle)

    assert final.status == Status.APPROVED and final.revision == REVISIONS + 1
    assert RequestEvent.objects.filter(request=request, kind="comment").count() == COMMENTS
    assert RequestRevision.objects.filter(request=request).count() == REVISIONS + 1
    request.refresh_from_db()
    assert request.details == WIDE * MAX_DETAILS and request.title.startswith(f"{REVISIONS - 1}")

    runs = run_histories(loop, handle._client, handle)
    largest: dict[str, int] = {}
    for events in runs:
        for event in events:
            kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
            for size in payload_sizes(event):
                largest[kind] = max(largest.get(kind, 0), size)
    carried = [
        sum(payload_sizes(events[-1]))
        for events in runs
        if events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    ]
    print(f"{len(runs)} runs, {sum(map(len, runs))} events; largest payload by event: {largest}")
    print(f"carried into each next run: {carried} bytes")
    assert len(runs) >= 3 and len(carried) == len(runs) - 1
    assert max(largest.values()) <= CEILING, largest
    # What one run hands the next fills up (the last answers and timeline entries it keeps),
    # then stops growing however long the request lives.
    assert max(carried) <= CEILING and carried[-1] <= carried[len(carried) // 2] + 1024, carried
