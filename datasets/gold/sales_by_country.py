"""gold.sales_by_country: orders and revenue per customer country and currency."""

from datasets.orders import PAID_REVENUE
from etl.audit.checks import NoNullKeys, RowCountDrop, SumMatchesSilver
from etl.dataset import GoldModel
from etl.tables import Column, Layer, TableDefinition

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
    audits=(
        NoNullKeys(columns=("currency",)),
        # Every order's revenue lands in exactly one row, whatever the join with customers finds.
        SumMatchesSilver(column="gross_revenue", dataset="orders", silver_sum=PAID_REVENUE),
        RowCountDrop(),
    ),
)
