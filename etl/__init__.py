"""Runtime code of the lakehouse: ingestion (Lambda), the Silver and Gold Spark jobs, and the local runner.

Nothing here imports Pulumi; only the Spark jobs and the local runner import Spark.
"""
