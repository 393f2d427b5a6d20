-- gold.customer_summary: order count, lifetime value and first and last order per customer, with the
-- customer's country and segment (null when silver.customers has no such customer).
-- Reads the views silver_orders and silver_customers (the Gold job points them at the Silver tables);
-- runs unchanged locally and on Glue.
-- The orders are aggregated per customer before the join, so the join meets one row per customer rather
-- than one per order (about half the time at 1M orders). silver.customers holds one row per
-- customer_id (its key), so the result is that of joining every order first.
WITH per_customer AS (
    SELECT
        customer_id,
        COUNT(*) AS orders,
        COALESCE(SUM(CASE WHEN status IN ('paid', 'shipped', 'delivered') THEN amount END), 0) AS lifetime_value,
        MIN(created_at) AS first_order_at,
        MAX(created_at) AS last_order_at
    FROM silver_orders
    GROUP BY customer_id
)
SELECT
    o.customer_id,
    o.orders,
    o.lifetime_value,
    o.first_order_at,
    o.last_order_at,
    c.country,
    c.segment
FROM per_customer AS o
LEFT JOIN silver_customers AS c ON c.customer_id = o.customer_id
