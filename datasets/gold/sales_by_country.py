"""gold.sales_by_country: orders and revenue per customer country and currency."""

from datasets.orders import PAID_REVENUE
from etl.audit.checks import NoNullKeys, RowCountDrop, SumMatchesSilver
from etl.dataset import GoldModel
from etl.tables import Column, Layer, TableDefinition

# The groups a change can move rows between, with old and new versions on both sides of the join:
# - a changed order leaves the group of its old (customer's country, currency) and joins its new one;
# - a changed customer moves every order they have, from their old country to their new one, and one
#   that appears (or goes) moves their orders out of (or into) the null country.
TOUCHED = """
WITH customers AS (
    SELECT customer_id, country FROM silver_customers
    UNION ALL SELECT customer_id, country FROM changed_customers
),
orders AS (
    SELECT customer_id, currency FROM silver_orders
    UNION ALL SELECT customer_id, currency FROM changed_orders
)
SELECT c.country, o.currency
FROM changed_orders AS o
LEFT JOIN customers AS c ON c.customer_id = o.customer_id
UNION
SELECT c.country, o.currency
FROM orders AS o
JOIN changed_customers AS c ON c.customer_id = o.customer_id
UNION
SELECT NULL AS country, o.currency
FROM orders AS o
JOIN changed_customers AS c ON c.customer_id = o.customer_id
"""

MODEL = GoldModel(
    table=TableDefinition(
        layer=Layer.GOLD,
        name="sales_by_country",
        comment="Orders and revenue per customer country and currency",
        columns=(
            Column("country", "STRING", "Customer country; null when silver.customers lacks the customer"),
            Column("currency", "STRING", "ISO 4217 code"),
            Column("orders", "BIGINT", "All orders"),
            Column("gross_revenue", "DECIMAL(22,2)", "Sum of amount for paid, shipped, delivered"),
        ),
    ),
    reads=("orders", "customers"),
    key=("country", "currency"),
    touched=TOUCHED,
    audits=(
        NoNullKeys(columns=("currency",)),
        # Every order's revenue lands in exactly one row, whatever the join with customers finds.
        SumMatchesSilver(column="gross_revenue", dataset="orders", silver_sum=PAID_REVENUE),
        RowCountDrop(),
    ),
)
