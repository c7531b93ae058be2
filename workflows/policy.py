"""How a policy routes a request: pure functions shared by the workflow and the web's routing
preview (stdlib only)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from workflows.types import Condition, Content, Operator, Policy, Rule, StageSpec

CONDITION_FIELDS = ("amount",)
OPERATOR_WORDS = {
    Operator.GT: "more than",
    Operator.GTE: "at least",
    Operator.LT: "less than",
    Operator.LTE: "at most",
    Operator.EQ: "exactly",
    Operator.NE: "other than",
}


def condition_words(condition: Condition) -> str:
    """A stage's condition as people read it: "only when the amount is more than 1000"."""
    return f"only when the {condition.field} is {OPERATOR_WORDS[condition.operator]} {condition.value}"


def condition_holds(condition: Condition | None, content: Content) -> bool:
    if condition is None:
        return True
    if condition.field != "amount":
        raise ValueError(f"Unknown condition field {condition.field!r}; use one of {CONDITION_FIELDS}")
    if content.amount in (None, ""):
        return False  # a stage about amounts does not apply to a request without one
    try:
        left, right = Decimal(content.amount), Decimal(condition.value)
    except InvalidOperation as exc:
        raise ValueError(f"Not a number in condition {condition}: {exc}") from exc
    return {
        Operator.GT: left > right,
        Operator.GTE: left >= right,
        Operator.LT: left < right,
        Operator.LTE: left <= right,
        Operator.EQ: left == right,
        Operator.NE: left != right,
    }[condition.operator]


def next_stage_index(policy: Policy, content: Content, after: int) -> int | None:
    """The first stage after index `after` whose condition holds for this content."""
    for index in range(after + 1, len(policy.stages)):
        if condition_holds(policy.stages[index].condition, content):
            return index
    return None


def required_approvals(stage: StageSpec, assignees: int) -> int:
    """How many approvals close the stage, given how many people were assigned to it."""
    if assignees == 0:
        return 1
    if stage.rule == Rule.ALL:
        return assignees
    if stage.rule == Rule.N_OF_M:
        return max(1, min(stage.required, assignees))
    return 1
