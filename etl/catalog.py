"""Iceberg catalog settings, in one place for the local run and for Glue.

Locally the catalog is Iceberg's Hadoop catalog on the file system; in AWS it is the Glue Data Catalog
with S3FileIO. Both are registered under the same Spark catalog name and made the default catalog, so
`silver.orders` means the same table in SQL text in both places. Plain Python, no Spark or Pulumi.
"""

from __future__ import annotations

CATALOG = "lakehouse"
ICEBERG_EXTENSIONS = "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"

# Settings every session needs; on Glue they are static, so they arrive through the job's `--conf`.
COMMON_CONF: dict[str, str] = {
    "spark.sql.extensions": ICEBERG_EXTENSIONS,
    "spark.sql.catalog." + CATALOG: "org.apache.iceberg.spark.SparkCatalog",
    "spark.sql.defaultCatalog": CATALOG,
    # Dates of `created_at` are UTC dates, wherever the job runs.
    "spark.sql.session.timeZone": "UTC",
}


def local_catalog_conf(warehouse: str) -> dict[str, str]:
    """Spark settings for a Hadoop catalog whose warehouse is a local directory."""
    return {
        **COMMON_CONF,
        f"spark.sql.catalog.{CATALOG}.type": "hadoop",
        f"spark.sql.catalog.{CATALOG}.warehouse": warehouse,
    }


def glue_catalog_conf(warehouse: str) -> dict[str, str]:
    """Spark settings for the Glue Data Catalog with S3FileIO.

    `warehouse` (an s3:// URI) is only the fallback location: tables go under their Glue database's
    location, which the infrastructure points at the layer's own bucket.
    """
    return {
        **COMMON_CONF,
        f"spark.sql.catalog.{CATALOG}.catalog-impl": "org.apache.iceberg.aws.glue.GlueCatalog",
        f"spark.sql.catalog.{CATALOG}.io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        f"spark.sql.catalog.{CATALOG}.warehouse": warehouse,
    }


def glue_conf_argument(settings: dict[str, str]) -> str:
    """Render settings as the value of a Glue job's single `--conf` argument.

    Glue takes one `--conf` key; further settings are chained inside its value as ` --conf k=v`.
    """
    pairs = [f"{key}={value}" for key, value in settings.items()]
    return " --conf ".join(pairs)


def table_identifier(database: str, table: str) -> str:
    return f"{CATALOG}.{database}.{table}"
