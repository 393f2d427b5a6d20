"""gold.daily_sales: orders and revenue per UTC order date and currency."""

from datasets.orders import PAID_REVENUE
from etl.audit.checks import NoNullKeys, RowCountDrop, SumMatchesSilver
from etl.dataset import GoldModel
from etl.tables import Column, Layer, TableDefinition

MODEL = GoldModel(
    table=TableDefinition(
        layer=Layer.GOLD,
        name="daily_sales",
        comment="Orders and revenue per UTC order date and currency",
        columns=(
            Column("order_date", "DATE", "UTC date of created_at"),
            Column("currency", "STRING", "ISO 4217 code"),
            Column("orders", "BIGINT", "All orders"),
            Column("gross_revenue", "DECIMAL(22,2)", "Sum of amount for paid, shipped, delivered"),
            Column("cancelled_orders", "BIGINT", "Orders with status cancelled"),
            Column("refunded_amount", "DECIMAL(22,2)", "Sum of amount for refunded; 0 when none"),
        ),
    ),
    reads=("orders",),
    key=("order_date", "currency"),
    # An order that changed leaves the group of its old version and joins that of its new one.
    touched="SELECT CAST(created_at AS DATE) AS order_date, currency FROM changed_orders",
    audits=(
        NoNullKeys(columns=("order_date", "currency")),
        # Every order's revenue lands in exactly one row, whatever the join with customers finds.
        SumMatchesSilver(column="gross_revenue", dataset="orders", silver_sum=PAID_REVENUE),
        RowCountDrop(),
    ),
)
