"""Policies as data: validation, the snapshot a request carries, and the admin that edits them."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.test import Client

from approvals.models import EscalationLevel, RequestType, StaffAction, Stage
from approvals.services import policy_snapshot
from tests.conftest import PASSWORD, make_request
from workflows.policy import condition_holds, next_stage_index, required_approvals
from workflows.types import Condition, Content, Exhausted, Operator, Policy, Rule, StageSpec


def test_stage_validation_explains_each_mistake(purchase: RequestType) -> None:
    stage = Stage(request_type=purchase, order=2, name="Finance", deadline=timedelta(0))
    stage.condition_field = "amount"
    stage.on_exhausted = Exhausted.APPROVE
    with pytest.raises(ValidationError) as error:
        stage.full_clean()
    messages = error.value.message_dict
    assert messages["deadline"] == ["The deadline must be after the stage starts."]
    assert messages["condition_value"] == [
        "A condition needs a field, an operator and a value (or none of them)."
    ]
    assert messages["on_exhausted"] == ["This request type does not allow stages to approve by themselves."]

    purchase.allow_auto_approve = True
    purchase.save()
    stage = Stage(
        request_type=purchase,
        order=2,
        name="Finance",
        deadline=timedelta(days=1),
        on_exhausted=Exhausted.APPROVE,
        condition_field="amount",
        condition_operator=Operator.GT,
        condition_value=Decimal("1000"),
    )
    stage.full_clean()


def test_the_snapshot_carries_stages_in_order_with_groups_levels_and_conditions(
    people: dict[str, User], purchase: RequestType
) -> None:
    finance = Group.objects.create(name="Finance")
    stage = Stage.objects.create(
        request_type=purchase,
        order=2,
        name="Finance",
        rule=Rule.N_OF_M,
        required_approvals=2,
        deadline=timedelta(days=5),
        reminder_interval=timedelta(hours=12),
        condition_field="amount",
        condition_operator=Operator.GTE,
        condition_value=Decimal("1000"),
    )
    stage.approver_groups.set([finance])
    level = EscalationLevel.objects.create(stage=stage, order=1, after=timedelta(days=2))
    level.groups.set([finance])

    policy = policy_snapshot(request_type=purchase)

    assert [s.name for s in policy.stages] == ["Review", "Finance"]
    review, money = policy.stages
    assert review.user_ids == sorted([people["reviewer1"].pk, people["reviewer2"].pk])
    assert review.escalation[0].user_ids == [people["manager"].pk]
    assert review.escalation[0].after_seconds == 86400
    assert (money.rule, money.required, money.group_ids) == (Rule.N_OF_M, 2, [finance.pk])
    assert (money.deadline_seconds, money.reminder_seconds) == (5 * 86400, 12 * 3600)
    assert money.condition == Condition(field="amount", operator=Operator.GTE, value="1000.00")
    assert money.escalation[0].group_ids == [finance.pk]


def test_conditions_and_quorum_rules() -> None:
    over = Condition(field="amount", operator=Operator.GT, value="1000")
    assert condition_holds(over, Content("x", amount="1000.01"))
    assert not condition_holds(over, Content("x", amount="1000"))
    assert not condition_holds(over, Content("x", amount=None))  # no amount: the stage does not apply
    assert condition_holds(None, Content("x"))
    with pytest.raises(ValueError, match="Unknown condition field"):
        condition_holds(Condition(field="colour", operator=Operator.EQ, value="red"), Content("x"))

    stage = StageSpec(name="s", rule=Rule.N_OF_M, deadline_seconds=1, required=3)
    assert [required_approvals(stage, n) for n in (0, 1, 2, 5)] == [1, 1, 2, 3]
    assert required_approvals(StageSpec(name="s", rule=Rule.ALL, deadline_seconds=1), 4) == 4
    assert required_approvals(StageSpec(name="s", rule=Rule.ANY, deadline_seconds=1), 4) == 1
    stages = [
        StageSpec(name="a", rule=Rule.ANY, deadline_seconds=1),
        StageSpec("b", Rule.ANY, 1, condition=over),
    ]
    assert next_stage_index(Policy("t", stages), Content("x", amount="5"), 0) is None  # b does not apply
    assert next_stage_index(Policy("t", stages), Content("x", amount="50000"), 0) == 1


def test_staff_edit_policies_in_the_admin_and_the_audit_trail_is_read_only(
    people: dict[str, User], purchase: RequestType
) -> None:
    client = Client()
    assert client.login(username="admin", password=PASSWORD)
    people["admin"].is_superuser = True
    people["admin"].save()
    stage = purchase.stages.get()
    for url in (
        f"/admin/approvals/requesttype/{purchase.pk}/change/",
        f"/admin/approvals/stage/{stage.pk}/change/",
        "/admin/approvals/delegation/add/",
    ):
        assert client.get(url).status_code == 200, url
    request = make_request(people, purchase, started=True)
    assert client.get(f"/admin/approvals/approvalrequest/{request.pk}/change/").status_code == 200
    assert client.get("/admin/approvals/approvalrequest/add/").status_code == 403
    response = client.post(f"/admin/approvals/approvalrequest/{request.pk}/change/", {"title": "Edited"})
    assert response.status_code == 403
    request.refresh_from_db()
    assert request.title == "New laptop"
    assert (
        client.post(f"/admin/approvals/approvalrequest/{request.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    # Groups (who approves) are edited there too; the audit trails are there to read and search.
    assert client.get("/admin/auth/group/add/").status_code == 200
    event = request.events.create(
        seq=request.version + 1,
        kind="comment",
        actor_name="reviewer1",
        comment="ok",
        occurred_at=request.created_at,
    )
    action = StaffAction.objects.create(
        request=request, actor=people["admin"], kind="cancel", reason="x", outcome="y"
    )
    for name, row in (("requestevent", event), ("staffaction", action)):
        listing = client.get(
            f"/admin/approvals/{name}/", {"q": "reviewer1" if name == "requestevent" else "x"}
        )
        assert (
            listing.status_code == 200
            and f"/admin/approvals/{name}/{row.pk}/change/" in listing.content.decode()
        )
        assert client.get(f"/admin/approvals/{name}/{row.pk}/change/").status_code == 200  # read only
        assert (
            client.post(f"/admin/approvals/{name}/{row.pk}/change/", {"comment": "edited"}).status_code == 403
        )
        assert client.post(f"/admin/approvals/{name}/{row.pk}/delete/", {"post": "yes"}).status_code == 403
        assert client.get(f"/admin/approvals/{name}/add/").status_code == 403
    event.refresh_from_db()
    assert event.comment == "ok" and StaffAction.objects.filter(pk=action.pk).exists()
