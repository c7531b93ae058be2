"""Budgets: a cost centre's money moves only through its ledger (models.LedgerEntry), each
movement once by its key, under the cost centre's row lock, so that two purchases reserving at
once never spend the same money and a movement asked for twice (a retried activity) happens once."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import transaction

from approvals.exceptions import InsufficientBudget, InvalidInput
from approvals.models import ApprovalRequest, CostCentre, LedgerEntry
from approvals.selectors.budgets import balance

Account = LedgerEntry.Account


def budget_allocate(
    *, cost_centre: CostCentre, amount: Decimal, by: User | None = None, memo: str = "", key: str = ""
) -> LedgerEntry:
    """Give a cost centre more budget (or, with a negative amount, take some back while it is
    still available)."""
    if amount == 0:
        raise InvalidInput("Allocate an amount other than zero.")
    inward = amount > 0
    return _move(
        cost_centre=cost_centre,
        key=key or f"allocation:{uuid.uuid4()}",
        debit=Account.AVAILABLE if inward else Account.FUNDING,
        credit=Account.FUNDING if inward else Account.AVAILABLE,
        amount=abs(amount),
        memo=memo or ("Allocation" if inward else "Allocation taken back"),
        by=by,
    )


def budget_reserve(
    *, cost_centre: CostCentre, amount: Decimal, key: str, request: ApprovalRequest | None = None
) -> LedgerEntry:
    """Hold `amount` of the cost centre's available budget for a purchase, once per `key` (asked
    again, the same movement is answered); InsufficientBudget when too little is available."""
    if amount <= 0:
        raise InvalidInput("A reservation needs an amount above zero.")
    memo = f"Reserved for “{request.title}”" if request else "Reserved"
    return _move(
        cost_centre=cost_centre,
        key=key,
        debit=Account.RESERVED,
        credit=Account.AVAILABLE,
        amount=amount,
        memo=memo,
        request=request,
    )


def budget_release(*, key: str) -> LedgerEntry | None:
    """Give back what the reservation made under `key` held (its compensation), once; None when
    there was no such reservation (its step never ran, or failed before it moved anything)."""
    reservation = LedgerEntry.objects.filter(key=key).select_related("cost_centre", "request").first()
    if reservation is None:
        return None
    return _move(
        cost_centre=reservation.cost_centre,
        key=f"{key}:released",
        debit=reservation.credit,
        credit=reservation.debit,
        amount=reservation.amount,
        memo="Reservation released",
        request=reservation.request,
    )


def _move(
    *,
    cost_centre: CostCentre,
    key: str,
    debit: str,
    credit: str,
    amount: Decimal,
    memo: str,
    request: ApprovalRequest | None = None,
    by: User | None = None,
) -> LedgerEntry:
    """One movement, once per key; never more out of the available budget than is in it."""
    with transaction.atomic():
        CostCentre.objects.select_for_update().get(pk=cost_centre.pk)  # the centre's movements in turn
        done = LedgerEntry.objects.filter(key=key).first()
        if done is not None:
            same = (done.cost_centre_id, done.debit, done.credit, done.amount) == (
                cost_centre.pk,
                debit,
                credit,
                amount,
            )
            if not same:
                raise InvalidInput(f"The ledger key {key!r} was used for another movement.")
            return done
        if credit == Account.AVAILABLE:
            available = balance(cost_centre=cost_centre, account=Account.AVAILABLE)
            if available < amount:
                raise InsufficientBudget(
                    f"Cost centre {cost_centre.code} has {available} available, and this needs {amount}."
                )
        return LedgerEntry.objects.create(
            cost_centre=cost_centre,
            key=key,
            debit=debit,
            credit=credit,
            amount=amount,
            memo=memo,
            request=request,
            by=by,
        )
