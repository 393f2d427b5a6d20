"""The monthly cost budget: declared from the stack config, e-mailing at the threshold; none without limit."""

from __future__ import annotations

from pathlib import Path

from tests.infra.stacks import StackRun
from tests.infra.test_analytics import run_stack

LIMIT_USD = {"dev": "50", "prod": "1000"}


def test_each_stack_declares_a_monthly_cost_budget_that_emails_at_the_threshold(stack: StackRun) -> None:
    (budget,) = stack.of_type("aws:budgets/budget:Budget")
    assert budget.parent_type == "lakehouse:budget:CostBudget"
    inputs = budget.inputs
    assert inputs["name"] == f"lakehouse-{stack.stack}-monthly-cost"
    assert (inputs["budgetType"], inputs["timeUnit"]) == ("COST", "MONTHLY")
    assert (inputs["limitAmount"], inputs["limitUnit"]) == (LIMIT_USD[stack.stack], "USD")
    # dev names its own address (budgetEmail); prod's budget e-mails alarmEmail.
    assert inputs["notifications"] == [
        {
            "notificationType": "ACTUAL",
            "comparisonOperator": "GREATER_THAN",
            "threshold": 80,
            "thresholdType": "PERCENTAGE",
            "subscriberEmailAddresses": ["data-oncall@example.com"],
        }
    ]
    assert "costFilters" not in inputs  # the whole account (see components/budget.py)


def test_a_stack_without_a_limit_declares_no_budget(tmp_path: Path) -> None:
    stack = run_stack("dev", tmp_path / "dev.json", budgetMonthlyUsd="0")
    assert not stack.of_type("aws:budgets/budget:Budget")
    assert not stack.of_type("lakehouse:budget:CostBudget")
    assert stack.of_type("aws:athena/workgroup:Workgroup")  # the rest of the stack is still there
