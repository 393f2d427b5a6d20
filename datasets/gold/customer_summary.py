"""gold.customer_summary: orders, lifetime value, first and last order, country and segment per customer."""

from datasets.orders import PAID_REVENUE
from etl.audit.checks import NoNullKeys, RowCountDrop, SumMatchesSilver
from etl.dataset import GoldModel
from etl.tables import Column, Layer, TableDefinition

MODEL = GoldModel(
    table=TableDefinition(
        layer=Layer.GOLD,
        name="customer_summary",
        comment="Order count, lifetime value, first and last order, country and segment per customer",
        columns=(
            Column("customer_id", "STRING", "Customer key"),
            Column("orders", "BIGINT", "All orders"),
            Column("lifetime_value", "DECIMAL(22,2)", "Sum of amount for paid, shipped, delivered"),
            Column("first_order_at", "TIMESTAMP", "Earliest created_at (UTC)"),
            Column("last_order_at", "TIMESTAMP", "Latest created_at (UTC)"),
            Column("country", "STRING", "From silver.customers; null when it lacks the customer"),
            Column("segment", "STRING", "From silver.customers; null when it lacks the customer"),
        ),
    ),
    reads=("orders", "customers"),
    key=("customer_id",),
    # A customer's row depends on their orders and their own Silver row, and on nothing else.
    touched="SELECT customer_id FROM changed_orders UNION SELECT customer_id FROM changed_customers",
    audits=(
        NoNullKeys(columns=("customer_id",)),
        # Every order's revenue lands in exactly one row, whatever the join with customers finds.
        SumMatchesSilver(column="lifetime_value", dataset="orders", silver_sum=PAID_REVENUE),
        RowCountDrop(),
    ),
)
