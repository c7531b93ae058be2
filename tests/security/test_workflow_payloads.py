"""Garbage sent straight to a workflow, as signals and updates: a clear refusal, never a stuck run."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.converter import value_to_type
from temporalio.exceptions import ApplicationError

from approvals.models import RequestType
from tests.conftest import LoopThread, make_request
from tests.workflows.helpers import act, action, refused, signal, state
from tests.workflows.test_engine import launch  # noqa: F401  (the fixture)
from workflows.types import ActionKind, Content, Policy
from workflows.types import RequestStatus as Status

pytestmark = pytest.mark.usefixtures("ts_worker", "ts_cleanup")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
# Shaped like an Action, with every field free to be wrong.
action_like = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.sampled_from([k.value for k in ActionKind]) | st.text(max_size=20) | json_values,
        "actor_id": st.integers(min_value=-(2**63), max_value=2**63) | json_values,
        "actor_name": st.text(max_size=200) | json_values,
        "comment": st.text(max_size=5000) | json_values,
        "action_id": st.uuids().map(str) | st.text(max_size=40) | json_values,
        "delegate_id": st.integers() | json_values,
        "extend_seconds": st.integers() | json_values,
        "content": json_values,
    },
)
payloads = action_like | json_values


def failed_tasks(loop: LoopThread, handle: WorkflowHandle[Any, Any]) -> int:
    async def count() -> int:
        failed = 0
        async for event in handle.fetch_history_events():
            failed += event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        return failed

    return loop.run(count())


def test_garbage_signals_and_updates_are_refused_and_the_workflow_keeps_working(
    loop: LoopThread,
    launch: Callable[..., WorkflowHandle[Any, Any]],  # noqa: F811
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    request = make_request(people, purchase)
    handle = launch(request, value_to_type(Policy, request.policy))
    before = state(loop, handle)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(payload=payloads)
    def send(payload: Any) -> None:
        loop.run(handle.signal("act", payload), timeout=10)
        try:
            loop.run(handle.execute_update("submit_action", payload, id=str(uuid.uuid4())), timeout=10)
        except WorkflowUpdateFailedError as exc:
            assert isinstance(exc.cause, ApplicationError)
            assert exc.cause.message  # a reason a person or a program can act on
        # (an update that happens to be a valid action by an approver would be applied: the
        # strategies cannot forge one, since actor ids are random and names do not matter)

    send()
    after = state(loop, handle)
    assert after.status == Status.IN_REVIEW and after.stage is not None
    assert [a.user_id for a in after.pending()] == [a.user_id for a in before.pending()]
    assert failed_tasks(loop, handle) == 0, "a payload broke a workflow task: the run would be stuck"


def test_a_requester_resubmitting_nonsense_is_refused_and_the_stage_still_works(
    loop: LoopThread,
    launch: Callable[..., WorkflowHandle[Any, Any]],  # noqa: F811
    people: dict[str, User],
    purchase: RequestType,
) -> None:
    """Conditions compare amounts: an amount that is not a number must never reach them."""
    request = make_request(people, purchase)
    handle = launch(request, value_to_type(Policy, request.policy))
    requester, reviewer = people["requester"], people["reviewer1"]
    act(loop, handle, action(ActionKind.REQUEST_CHANGES, reviewer, "Add the quote"))
    for amount, why in [
        ("NaN", "The amount is not a number."),
        ("lots", "The amount is not a number."),
        ("Infinity", "The amount is not a number."),
    ]:
        resubmit = action(ActionKind.RESUBMIT, requester, content=Content(title="Laptop", amount=amount))
        assert refused(loop, handle, resubmit) == why
        signal(loop, handle, resubmit)  # dropped, not applied, not a crash
    assert refused(
        loop, handle, action(ActionKind.RESUBMIT, requester, content=Content(title="x" * 201))
    ) == ("Titles are limited to 200 characters.")
    nul = action(ActionKind.COMMENT, requester, "a\x00b")
    assert refused(loop, handle, nul) == "The action holds a character that cannot be kept (NUL)."
    signal(loop, handle, nul)
    loop.run(handle.signal("act", None))
    answer = act(
        loop, handle, action(ActionKind.RESUBMIT, requester, content=Content("Laptop", amount="1200.50"))
    )
    assert answer.status == Status.IN_REVIEW
    assert state(loop, handle).content.amount == "1200.50"
    assert failed_tasks(loop, handle) == 0
