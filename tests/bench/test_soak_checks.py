"""The soak's read-model invariants (bench/soak_checks.py) can fail: each catches what it is
there for in a read model made to hold exactly that flaw, and passes on the same without it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from approvals.api.routes import KEYS
from approvals.models import OutboundEmail, RequestEvent, RequestType, WebhookDelivery, WebhookEvent
from approvals.services import subscriber_save
from bench.soak_checks import read_model_findings
from tests.conftest import make_request

pytestmark = pytest.mark.django_db


def broken(findings: list[tuple[str, int, list[str]]]) -> dict[str, list[str]]:
    return {name: problems for name, _, problems in findings if problems}


def call(who: str, kind: str, outcome: str, key: str | None = None) -> dict[str, Any]:
    return {
        "who": who,
        "kind": kind,
        "key": key or str(uuid.uuid4()),
        "request": "",
        "outcome": outcome,
        "status": 200,
    }


def event(request: Any, seq: int, kind: str, user: User, key: str, *, api: bool = True) -> None:
    """An event of the action the key names: an API call's (its id made as the API makes it), or,
    not `api`, a form's or a link's (the key is its id)."""
    RequestEvent.objects.create(
        request=request,
        seq=seq,
        kind=kind,
        actor=user,
        occurred_at=timezone.now(),
        action_id=str(uuid.uuid5(KEYS, f"{user.pk}:{key}")) if api else key,
    )


def test_actions_are_counted_against_what_the_client_was_told(
    people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase, title="Soak 1234abcd")
    once, twice, refused = (
        call("reviewer1", "approve", "acked"),
        call("reviewer1", "comment", "unknown"),
        call("reviewer1", "reject", "refused"),
    )
    created = call("requester", "create", "acked", key="1234abcd-0000")
    event(request, 1, "approval", people["reviewer1"], once["key"])
    assert broken(read_model_findings([created, once, twice, refused], {}, {})) == {}

    lost = call("reviewer1", "approve", "acked")  # acknowledged, never recorded
    event(request, 2, "comment", people["reviewer1"], twice["key"])
    event(request, 3, "comment", people["reviewer1"], twice["key"])  # recorded twice
    event(request, 4, "rejected", people["reviewer1"], refused["key"])  # refused, yet recorded
    found = broken(read_model_findings([created, once, twice, refused, lost], {}, {}))
    assert set(found) == {
        "every acknowledged action is in its timeline exactly once",
        "no unacknowledged action is in it twice",
        "no refused action is in it",
    }
    assert "0 times in the timeline" in found["every acknowledged action is in its timeline exactly once"][0]


def test_emails_and_webhooks_are_counted_against_what_their_servers_received(
    people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase)
    for key in ("assigned:1", "reminder:1"):
        OutboundEmail.objects.create(
            idempotency_key=key,
            request=request,
            kind="assigned",
            to="a@example.com",
            subject="s",
            body_text="b",
            status="sent",
        )
    subscriber = subscriber_save(
        subscriber=None,
        url="https://erp.example.com/hooks",
        description="",
        events=["request.submitted"],
        is_active=True,
        by=people["admin"],
    )
    hook = WebhookEvent.objects.create(
        type="request.submitted", source="soak:1", request=request, payload={}, occurred_at=timezone.now()
    )
    WebhookDelivery.objects.create(event=hook, subscriber=subscriber, status="delivered")
    fine = {"assigned:1": 1, "reminder:1": 1}
    assert broken(read_model_findings([], fine, {hook.event_id: 2})) == {}  # a webhook twice is allowed

    found = broken(read_model_findings([], {"assigned:1": 2, "stray:9": 1}, {}))
    assert found["every email key was sent at most once"] == [
        "assigned:1 sent 2 times",
        "stray:9 was sent but is not recorded",
    ]
    assert found["every email that was due was sent"] == ["reminder:1 is marked sent, yet never arrived"]
    assert found["every webhook event was delivered at least once and recorded once"] == [
        f"event {hook.event_id} never reached the receiver"
    ]


def test_each_soak_adds_its_row_above_the_benchmarks_history(tmp_path: Any) -> None:
    from bench.run import HISTORY, SOAK
    from bench.soak import record

    table = tmp_path / "benchmarks.md"
    table.write_text(f"# Benchmarks\n\n| Key | App |\n|---|---|\n\n{HISTORY}\n\nBy hand.\n")
    summary = {
        "seed": 29,
        "seconds": 120.0,
        "actions": 300,
        "acknowledged": 280,
        "faults": 2,
        "fault_log": [[12.5, "kill worker"], [30.1, "kill worker"]],
        "invariants": [{"held": True}, {"held": False}],
        "settle_seconds": 18.4,
    }
    record(summary, table)
    record({**summary, "seed": 30}, table)
    text = table.read_text()
    assert text.index("| Key | App |") < text.index(SOAK) < text.index(HISTORY)
    assert text.endswith(f"{HISTORY}\n\nBy hand.\n")
    rows = [line for line in text.splitlines() if line.startswith("| 20")]
    assert [row.split(" | ")[2] for row in rows] == ["29", "30"]
    assert "| 300 (280) | 2: 2× kill worker | 1 of 2 | 18.4 |" in rows[0]


def test_each_saga_is_checked_against_its_ledger_and_the_supplier(
    people: dict[str, User], purchase: RequestType
) -> None:
    from decimal import Decimal

    from approvals.models import CostCentre, Fulfilment, LedgerEntry, PurchaseOrder
    from approvals.services.budgets import budget_allocate, budget_release, budget_reserve
    from bench.soak_checks import ledger_findings

    centre = CostCentre.objects.create(code="soak", name="Soak")
    budget_allocate(cost_centre=centre, amount=Decimal("1000"), key="soak:budget")
    supplier: dict[str, Any] = {"orders": {}, "cancelled": []}

    def saga(status: str, number: str) -> str:
        request = make_request(people, purchase, amount=100, title=number)
        now = timezone.now()
        Fulfilment.objects.create(
            request=request, attempt=1, seq=1, status=status, started_at=now, updated_at=now, ended_at=now
        )
        key = f"{request.public_id}:fulfilment:1:"
        budget_reserve(cost_centre=centre, amount=Decimal(100), key=key + "reserve", request=request)
        PurchaseOrder.objects.create(
            key=key + "order",
            request=request,
            number=number,
            amount=100,
            cancelled_at=None if status == "fulfilled" else now,
        )
        supplier["orders"][key + "order"] = number
        if status == "rolled_back":
            budget_release(key=key + "reserve")
            supplier["cancelled"].append(number)
        return key

    saga("fulfilled", "EXT-1")
    undone = saga("rolled_back", "EXT-2")
    name, count, problems = ledger_findings(supplier)
    assert (count, problems) == (2, [])

    supplier["cancelled"].remove("EXT-2")  # the supplier never heard the cancel
    LedgerEntry.objects.filter(key=undone + "reserve:released").delete()  # nor was the money given back
    problems = ledger_findings(supplier)[2]
    assert any("reserved 100.00, released None" in p for p in problems)
    assert any("order EXT-2 is still live at the supplier" in p for p in problems)
    assert any(
        "cost centre soak: 1000.00 allocated, 200.00 reserved (its fulfilled purchases: 100" in p
        for p in problems
    )


def test_an_email_sent_twice_is_excused_only_after_its_worker_was_killed_with_the_same_message_id() -> None:
    def twice(resends: dict[str, list[Any]], kills: list[float]) -> tuple[str, list[str]]:
        findings = read_model_findings([], {"k": 2}, {}, None, resends, kills)
        [(name, problems)] = [(n, p) for n, _, p in findings if n.startswith("every email key")]
        return name, [p for p in problems if "sent 2 times" in p]

    same = {"k": [[10.0, "<a@x>"], [45.0, "<a@x>"]]}
    name, problems = twice(same, [30.0])
    assert problems == [] and "1 sent again after its worker was killed mid-send" in name
    assert twice(same, [50.0])[1] == ["k sent 2 times"]  # no kill between the copies
    assert twice(same, [])[1] == ["k sent 2 times"]
    assert twice({"k": [[10.0, "<a@x>"], [45.0, "<b@x>"]]}, [30.0])[1] == ["k sent 2 times"]


def test_a_held_decision_must_end_once_taken_let_go_or_undone(
    people: dict[str, User], purchase: RequestType
) -> None:
    request = make_request(people, purchase)
    reviewer = people["reviewer1"]
    taken, lapsed, undone, lost, twice = (str(uuid.uuid4()) for _ in range(5))
    undo = str(uuid.uuid4())
    rows = [
        (taken, "held"), (taken, "approval"),
        (lapsed, "held"), (lapsed, "lapsed"),
        (undone, "held"), (undo, "undone"),
        (lost, "held"),  # never ended
        (twice, "held"), (twice, "rejected"), (twice, "lapsed"),  # ended twice
    ]  # fmt: skip
    for seq, (action_id, kind) in enumerate(rows, 1):
        event(request, seq, kind, reviewer, action_id, api=False)

    def web(kind: str, key: str, target: str = "") -> dict[str, Any]:
        return {**call("reviewer1", kind, "acked", key=key), "via": "web", "target": target}

    calls = [web("approve", taken), web("approve", lapsed), web("approve", undone), web("undo", undo, undone)]
    found = broken(read_model_findings(calls, {}, {}))
    assert set(found) == {"every held decision took effect, lapsed or was undone, exactly once"}
    assert sorted(p.split(":")[1] for p in found.popitem()[1]) == [
        " held, then ended 0 times",
        " held, then ended 2 times",
    ]
    # Without the undo in the client's log, nothing ended the decision it undid.
    [problems] = broken(read_model_findings(calls[:3], {}, {})).values()
    assert len(problems) == 3 and any(undone[:8] in p for p in problems)


def test_an_email_link_counts_by_the_id_in_its_token_and_works_once(
    people: dict[str, User], purchase: RequestType
) -> None:
    from django.core import signing

    from approvals.services.email_links import SALT

    request = make_request(people, purchase)
    link_id = uuid.uuid4()
    token = signing.dumps({"n": link_id.hex}, salt=SALT, compress=True)
    event(request, 1, "approval", people["reviewer1"], str(link_id), api=False)
    clicked = {**call("reviewer1", "approve", "acked", key=token), "via": "email"}
    again = {**call("reviewer1", "click again", "refused", key=token), "via": "email", "status": 409}
    assert broken(read_model_findings([clicked, again], {}, {})) == {}

    forged = {**clicked, "key": signing.dumps({"n": link_id.hex}, salt="another", compress=True)}
    worked_again = {**again, "outcome": "acked", "status": 200}
    found = broken(read_model_findings([forged, worked_again], {}, {}))
    assert set(found) == {
        "every acknowledged action is in its timeline exactly once",
        "every email link used works once: clicked again, it is refused",
    }


def test_the_system_settled_only_when_nothing_of_any_kind_was_left() -> None:
    from bench.soak_checks import settled_judged

    assert settled_judged({"emails to send": 0, "actions shown pending": 0}, 240).held
    left = settled_judged({"emails to send": 0, "actions shown pending": 1}, 240)
    assert (left.held, left.count, left.problem) == (False, 2, "1 actions shown pending after 240 s")
