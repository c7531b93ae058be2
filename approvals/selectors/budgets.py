"""Budgets as the ledger says: each account's balance is what came in less what went out."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import DecimalField, Q, QuerySet, Sum, Value
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Coalesce

from approvals.models import CostCentre, LedgerEntry

Account = LedgerEntry.Account
CENT = Decimal("0.01")
ZERO = Value(Decimal("0"), output_field=DecimalField(max_digits=14, decimal_places=2))


def _in_less_out(account: str, prefix: str = "") -> CombinedExpression:
    amount = f"{prefix}amount"
    came = Coalesce(Sum(amount, filter=Q(**{f"{prefix}debit": account})), ZERO)
    went = Coalesce(Sum(amount, filter=Q(**{f"{prefix}credit": account})), ZERO)
    return came - went


def money(value: Decimal) -> Decimal:
    """An amount to the cent, however the database summed it."""
    return Decimal(value).quantize(CENT)


def balance(*, cost_centre: CostCentre, account: str) -> Decimal:
    """One account's balance in a cost centre's budget."""
    entries = LedgerEntry.objects.filter(cost_centre=cost_centre)
    return money(entries.aggregate(balance=_in_less_out(account))["balance"])


@dataclass(frozen=True)
class Budget:
    centre: CostCentre
    allocated: Decimal  # everything given to it, less what was taken back
    reserved: Decimal
    available: Decimal


def budgets() -> list[Budget]:
    """Every cost centre's budget, in one query."""
    centres = CostCentre.objects.annotate(
        funding=_in_less_out(Account.FUNDING, "entries__"),
        reserved=_in_less_out(Account.RESERVED, "entries__"),
        available=_in_less_out(Account.AVAILABLE, "entries__"),
    ).order_by("code")
    return [Budget(c, money(-c.funding), money(c.reserved), money(c.available)) for c in centres]


def ledger(*, cost_centre: CostCentre) -> QuerySet[LedgerEntry]:
    """A cost centre's movements, newest first."""
    return (
        LedgerEntry.objects.filter(cost_centre=cost_centre)
        .select_related("request", "by")
        .order_by("-created_at", "-pk")
    )
