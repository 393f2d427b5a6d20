"""CostBudget: a monthly AWS cost budget that e-mails when the month's actual cost passes a threshold.

The budget watches the whole account: a filter on the stack's tags would see nothing until those tags are
activated as cost allocation tags in Billing, and a budget that silently sees nothing is worse than none.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.config import BudgetConfig
from components.naming import PIPELINE_LAYER, Naming


@dataclass
class CostBudgetArgs:
    naming: Naming
    config: BudgetConfig


class CostBudget(pulumi.ComponentResource):
    budget_name: pulumi.Output[str]
    """Name of the budget (unique in the account)."""

    def __init__(self, name: str, args: CostBudgetArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lakehouse:budget:CostBudget", name, None, opts)
        budget = aws.budgets.Budget(
            f"{name}-monthly",
            name=f"{args.naming.prefix}-monthly-cost",
            budget_type="COST",
            time_unit="MONTHLY",
            limit_amount=str(args.config.monthly_usd),
            limit_unit="USD",
            notifications=[
                {
                    "notification_type": "ACTUAL",
                    "comparison_operator": "GREATER_THAN",
                    "threshold": float(args.config.threshold_percent),
                    "threshold_type": "PERCENTAGE",
                    # E-mail subscribers of a budget need no confirmation, unlike the alert topic's.
                    "subscriber_email_addresses": [args.config.email],
                }
            ],
            tags=args.naming.tags(PIPELINE_LAYER),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.budget_name = budget.name
        self.register_outputs({"budget_name": self.budget_name})
