-- gold.daily_sales: orders and revenue per UTC order date and currency.
-- Reads the view silver_orders (the Gold job points it at silver.orders); runs unchanged locally and on Glue.
-- The session time zone is UTC, so CAST(created_at AS DATE) is the UTC date.
SELECT
    CAST(created_at AS DATE) AS order_date,
    currency,
    COUNT(*) AS orders,
    COALESCE(SUM(CASE WHEN status IN ('paid', 'shipped', 'delivered') THEN amount END), 0) AS gross_revenue,
    COUNT(CASE WHEN status = 'cancelled' THEN 1 END) AS cancelled_orders,
    COALESCE(SUM(CASE WHEN status = 'refunded' THEN amount END), 0) AS refunded_amount
FROM silver_orders
GROUP BY CAST(created_at AS DATE), currency
