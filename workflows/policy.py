"""How a policy routes a request: pure functions shared by the workflow and the web's routing
preview (stdlib only)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fnmatch import fnmatchcase

from workflows.types import RISKS, Condition, Content, Operator, Policy, Rule, StageSpec

# amount: a number; risk: one of RISKS, compared in their order; tool: the agent action's tool,
# = one of the condition's comma-separated names (each may end in *, as in "db.*"), ≠ none of them.
CONDITION_FIELDS = ("amount", "risk", "tool")
TOOL_OPERATORS = (Operator.EQ, Operator.NE)
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
    if condition.field == "tool":
        which = "one of" if condition.operator == Operator.EQ else "none of"
        return f"only when the tool is {which} {', '.join(tool_patterns(condition.value))}"
    return f"only when the {condition.field} is {OPERATOR_WORDS[condition.operator]} {condition.value}"


def tool_patterns(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


def condition_problem(field: str, operator: str, value: str) -> str | None:
    """What is wrong with a condition, in words for the admin who sets it; None when it will do."""
    if field not in CONDITION_FIELDS:
        return f"Unknown condition field “{field}”."
    if operator not in set(Operator):
        return f"Unknown operator “{operator}”."
    if field == "amount":
        try:
            Decimal(value)
        except InvalidOperation:
            return "A condition on the amount compares it with a number."
    if field == "risk" and value not in RISKS:
        return f"A risk is one of {', '.join(RISKS)}."
    if field == "tool":
        if operator not in TOOL_OPERATORS:
            return "A condition on the tool is “=” (one of these names) or “≠” (none of them)."
        if not tool_patterns(value):
            return "Name the tools, separated by commas (a name may end in *)."
    return None


def condition_holds(condition: Condition | None, content: Content) -> bool:
    if condition is None:
        return True
    if problem := condition_problem(condition.field, condition.operator, condition.value):
        raise ValueError(f"{problem} ({condition})")
    if condition.field == "tool":
        if not content.tool:
            return False  # a stage about tools does not apply to a request that names none
        named = any(fnmatchcase(content.tool, pattern) for pattern in tool_patterns(condition.value))
        return named if condition.operator == Operator.EQ else not named
    if condition.field == "risk":
        if content.risk not in RISKS:
            return False
        left_rank, right_rank = RISKS.index(content.risk), RISKS.index(condition.value)
        return _compare(condition.operator, left_rank, right_rank)
    if content.amount in (None, ""):
        return False  # a stage about amounts does not apply to a request without one
    try:
        left, right = Decimal(content.amount), Decimal(condition.value)
    except InvalidOperation as exc:
        raise ValueError(f"Not a number in condition {condition}: {exc}") from exc
    return _compare(condition.operator, left, right)


def _compare(operator: Operator, left: Decimal | int, right: Decimal | int) -> bool:
    return {
        Operator.GT: left > right,
        Operator.GTE: left >= right,
        Operator.LT: left < right,
        Operator.LTE: left <= right,
        Operator.EQ: left == right,
        Operator.NE: left != right,
    }[operator]


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
