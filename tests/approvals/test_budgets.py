"""Budgets: a double-entry ledger per cost centre, each movement once by its key, never more
reserved than is available, read back as balances on a staff page and in the admin."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Sum
from django.urls import reverse

from approvals import selectors, services
from approvals.exceptions import InsufficientBudget, InvalidInput
from approvals.models import CostCentre, LedgerEntry, RequestType
from tests.conftest import as_user, at_once, make_request

Account = LedgerEntry.Account


@pytest.fixture
def it(people: dict[str, User]) -> CostCentre:
    centre = CostCentre.objects.create(code="it", name="IT")
    services.budget_allocate(cost_centre=centre, amount=Decimal("1000.00"), by=people["admin"])
    return centre


def balances(centre: CostCentre) -> dict[str, Decimal]:
    (budget,) = [b for b in selectors.budgets() if b.centre == centre]
    return {"allocated": budget.allocated, "reserved": budget.reserved, "available": budget.available}


def balanced(centre: CostCentre) -> bool:
    """Every movement leaves one account of the centre and enters another: together they are 0."""
    entries = LedgerEntry.objects.filter(cost_centre=centre)
    came = {a: entries.filter(debit=a).aggregate(s=Sum("amount"))["s"] or 0 for a in Account.values}
    went = {a: entries.filter(credit=a).aggregate(s=Sum("amount"))["s"] or 0 for a in Account.values}
    return sum(came[a] - went[a] for a in Account.values) == 0


def test_a_reservation_holds_budget_once_per_key_and_its_release_gives_it_back_once(
    people: dict[str, User], purchase: RequestType, it: CostCentre
) -> None:
    request = make_request(people, purchase, amount=300)
    first = services.budget_reserve(cost_centre=it, amount=Decimal("300"), key="r1:reserve", request=request)
    again = services.budget_reserve(cost_centre=it, amount=Decimal("300"), key="r1:reserve", request=request)

    assert again.pk == first.pk and first.memo == "Reserved for “New laptop”"
    assert balances(it) == {"allocated": 1000, "reserved": 300, "available": 700}
    assert balanced(it)

    released = services.budget_release(key="r1:reserve")
    assert released is not None and services.budget_release(key="r1:reserve") == released
    assert (released.credit, released.debit, released.amount) == (Account.RESERVED, Account.AVAILABLE, 300)
    assert balances(it) == {"allocated": 1000, "reserved": 0, "available": 1000}
    assert balanced(it) and LedgerEntry.objects.filter(cost_centre=it).count() == 3
    # A compensation for a step that never moved anything moves nothing.
    assert services.budget_release(key="never:reserve") is None


def test_no_more_is_reserved_or_taken_back_than_is_available(people: dict[str, User], it: CostCentre) -> None:
    services.budget_reserve(cost_centre=it, amount=Decimal("800"), key="a")
    with pytest.raises(InsufficientBudget, match="Cost centre it has 200.00 available, and this needs 300"):
        services.budget_reserve(cost_centre=it, amount=Decimal("300"), key="b")
    with pytest.raises(InsufficientBudget):
        services.budget_allocate(cost_centre=it, amount=Decimal("-250"))
    services.budget_allocate(cost_centre=it, amount=Decimal("-200"), memo="Year-end")
    assert balances(it) == {"allocated": 800, "reserved": 800, "available": 0}
    assert not LedgerEntry.objects.filter(key="b").exists() and balanced(it)
    # A key names one movement: used again for another, it is refused.
    with pytest.raises(InvalidInput, match="was used for another movement"):
        services.budget_reserve(cost_centre=it, amount=Decimal("5"), key="a")
    with pytest.raises(InvalidInput):
        services.budget_reserve(cost_centre=it, amount=Decimal("0"), key="c")


def reserving(centre: CostCentre, key: str) -> Callable[[], LedgerEntry | InsufficientBudget]:
    def reserve() -> LedgerEntry | InsufficientBudget:
        try:
            return services.budget_reserve(cost_centre=centre, amount=Decimal("600"), key=key)
        except InsufficientBudget as exc:
            return exc

    return reserve


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL (CI runs it)")
def test_two_purchases_reserving_at_once_never_spend_the_same_money(it: CostCentre) -> None:
    outcomes = at_once(*(reserving(it, key) for key in ("x", "y", "z")))
    assert sum(isinstance(o, LedgerEntry) for o in outcomes) == 1
    assert sum(isinstance(o, InsufficientBudget) for o in outcomes) == 2
    assert balances(it) == {"allocated": 1000, "reserved": 600, "available": 400}


def test_staff_read_every_budget_and_a_ledger_and_allocate_in_the_admin(
    people: dict[str, User], it: CostCentre
) -> None:
    CostCentre.objects.create(code="ops", name="Operations")
    services.budget_reserve(cost_centre=it, amount=Decimal("120.50"), key="k")
    staff = as_user(people["admin"])

    page = staff.get(reverse("budgets")).content.decode()
    row = page.split('id="budget-it"')[1].split("</tr>")[0]
    assert [cell.split("<")[0] for cell in row.split('class="number">')[1:]] == [
        "1000.00",
        "120.50",
        "879.50",
    ]
    assert "Ledger of it · IT" in page and "Available → Reserved" in page and "by admin" in page
    assert "Ledger of ops · Operations" in staff.get(reverse("budgets"), {"centre": "ops"}).content.decode()
    assert as_user(people["reviewer1"]).get(reverse("budgets")).status_code == 403

    people["admin"].is_superuser = True  # the admin's own permissions
    people["admin"].save()
    add = reverse("admin:approvals_ledgerentry_add")
    refused = staff.post(add, {"cost_centre": it.pk, "allocation": "-2000", "memo": "Too much"})
    assert (
        refused.status_code == 200
        and "Only 879.50 of it&#x27;s budget is available" in refused.content.decode()
    )
    assert balances(it)["allocated"] == 1000
    response = staff.post(add, {"cost_centre": it.pk, "allocation": "250", "memo": "Q1 top-up"}, follow=True)
    assert "it: 250.00 funding → available" in response.content.decode()
    top_up = LedgerEntry.objects.get(memo="Q1 top-up")
    assert (top_up.credit, top_up.debit, top_up.by) == (Account.FUNDING, Account.AVAILABLE, people["admin"])
    assert balances(it) == {"allocated": 1250, "reserved": Decimal("120.50"), "available": Decimal("1129.50")}
    # Part of it taken back, while it is available.
    back = staff.post(add, {"cost_centre": it.pk, "allocation": "-100", "memo": "Returned"})
    assert back.status_code == 302
    assert balances(it)["allocated"] == 1150
    change = reverse("admin:approvals_ledgerentry_change", args=[top_up.pk])
    staff.post(change, {"cost_centre": it.pk, "allocation": "1", "memo": "edited"})
    top_up.refresh_from_db()
    assert top_up.amount == 250  # never edited
