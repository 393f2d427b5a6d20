-- gold.sales_by_country: orders and revenue per customer country and currency; country is null for orders
-- whose customer silver.customers does not hold.
-- Reads the views silver_orders and silver_customers; runs unchanged locally and on Glue.
SELECT
    c.country,
    o.currency,
    COUNT(*) AS orders,
    COALESCE(SUM(CASE WHEN o.status IN ('paid', 'shipped', 'delivered') THEN o.amount END), 0) AS gross_revenue
FROM silver_orders AS o
LEFT JOIN silver_customers AS c ON c.customer_id = o.customer_id
GROUP BY c.country, o.currency
