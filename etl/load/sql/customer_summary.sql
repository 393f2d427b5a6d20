-- gold.customer_summary: order count, lifetime value and first and last order per customer.
-- Reads the view silver_orders (the job points it at silver.orders); runs unchanged locally and on Glue.
SELECT
    customer_id,
    COUNT(*) AS orders,
    COALESCE(SUM(CASE WHEN status IN ('paid', 'shipped', 'delivered') THEN amount END), 0) AS lifetime_value,
    MIN(created_at) AS first_order_at,
    MAX(created_at) AS last_order_at
FROM silver_orders
GROUP BY customer_id
