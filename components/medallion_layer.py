"""MedallionLayer: the storage of one medallion layer (bronze, silver or gold) and its Glue database."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.hardened_bucket import (
    AccessLogTarget,
    HardenedBucket,
    HardenedBucketArgs,
    PrefixExpiry,
    Transition,
)
from components.keys import customer_managed_key
from components.naming import Naming
from etl.tables import Layer

# Iceberg tables of a layer live under this prefix of its bucket (the Glue database's location).
WAREHOUSE_PREFIX = "warehouse"
# A job's reliable Spark checkpoints, one directory per run, deleted by the job when the run ends.
CHECKPOINT_PREFIX = "_checkpoints"
# What a run that died left under the checkpoint prefix is deleted after this many days.
CHECKPOINT_EXPIRY_DAYS = 1


@dataclass
class MedallionLayerArgs:
    layer: Layer
    naming: Naming
    noncurrent_version_days: int
    # Noncurrent versions under the warehouse prefix: the files Iceberg deleted (expired snapshots,
    # compacted files, old metadata). Iceberg's snapshots are the tables' history; these are only a
    # safety net against a wrong delete, and would otherwise cost as much as the tables themselves.
    warehouse_noncurrent_version_days: int
    deletion_window_days: int
    transition: Transition | None = None
    force_destroy: bool = False
    protect: bool = False
    access_logs: AccessLogTarget | None = None


class MedallionLayer(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    """Name of the layer's bucket."""
    bucket_arn: pulumi.Output[str]
    """ARN of the layer's bucket."""
    key_arn: pulumi.Output[str]
    """ARN of the customer managed KMS key that encrypts the bucket."""
    database_name: pulumi.Output[str]
    """Name of the layer's Glue Data Catalog database."""
    warehouse_uri: pulumi.Output[str]
    """s3:// location of the layer's Iceberg tables (the database's location)."""
    checkpoint_uri: pulumi.Output[str]
    """s3:// prefix under which the layer's jobs keep their Spark checkpoints."""

    def __init__(
        self, name: str, args: MedallionLayerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("lakehouse:medallion_layer:MedallionLayer", name, None, opts)
        self.layer = args.layer
        tags = args.naming.tags(args.layer.value)
        key = customer_managed_key(
            name,
            alias=f"{args.naming.prefix}-{args.layer.value}",
            description=f"Encrypts the {args.layer.value} layer of {args.naming.prefix}",
            tags=tags,
            deletion_window_days=args.deletion_window_days,
            protect=args.protect,
            parent=self,
        )
        storage = HardenedBucket(
            f"{name}-storage",
            HardenedBucketArgs(
                name_prefix=args.naming.bucket_prefix(args.layer.value),
                tags=tags,
                kms_key_arn=key.arn,
                noncurrent_version_days=args.noncurrent_version_days,
                transition=args.transition,
                prefix_expiries=_prefix_expiries(args),
                force_destroy=args.force_destroy,
                protect=args.protect,
                access_logs=args.access_logs,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.warehouse_uri = pulumi.Output.format("s3://{0}/{1}", storage.bucket_name, WAREHOUSE_PREFIX)
        self.checkpoint_uri = pulumi.Output.format("s3://{0}/{1}", storage.bucket_name, CHECKPOINT_PREFIX)
        database = aws.glue.CatalogDatabase(
            f"{name}-database",
            name=args.naming.database_name(args.layer),
            description=f"The {args.layer.value} layer of {args.naming.prefix}; the jobs create its tables",
            # Iceberg puts a table under its database's location, so each layer's tables land in its bucket.
            location_uri=self.warehouse_uri,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )

        self.bucket_name = storage.bucket_name
        self.bucket_arn = storage.bucket_arn
        self.key_arn = key.arn
        self.database_name = database.name
        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "bucket_arn": self.bucket_arn,
                "key_arn": self.key_arn,
                "database_name": self.database_name,
                "warehouse_uri": self.warehouse_uri,
                "checkpoint_uri": self.checkpoint_uri,
            }
        )


def _prefix_expiries(args: MedallionLayerArgs) -> tuple[PrefixExpiry, ...]:
    return (
        PrefixExpiry(f"{WAREHOUSE_PREFIX}/", args.warehouse_noncurrent_version_days),
        # No slash: the `_checkpoints_$folder$` marker Hadoop's S3 file system may write expires too.
        PrefixExpiry(
            CHECKPOINT_PREFIX,
            noncurrent_days=CHECKPOINT_EXPIRY_DAYS,
            current_days=CHECKPOINT_EXPIRY_DAYS,
        ),
    )
