-- gold.customer_summary: order count, lifetime value and first and last order per customer, with the
-- customer's country and segment (null when silver.customers has no such customer).
-- Reads the views silver_orders and silver_customers (the Gold job points them at the Silver tables);
-- runs unchanged locally and on Glue.
SELECT
    o.customer_id,
    COUNT(*) AS orders,
    COALESCE(SUM(CASE WHEN o.status IN ('paid', 'shipped', 'delivered') THEN o.amount END), 0) AS lifetime_value,
    MIN(o.created_at) AS first_order_at,
    MAX(o.created_at) AS last_order_at,
    MAX(c.country) AS country,
    MAX(c.segment) AS segment
FROM silver_orders AS o
LEFT JOIN silver_customers AS c ON c.customer_id = o.customer_id
GROUP BY o.customer_id
