"""LakeFormation: the layers' table locations registered with Lake Formation, and who may use them.

Registered locations are read by Athena through credentials Lake Formation hands out (from a role of its
own, which may read the layer's warehouse and decrypt its key); the grants say who gets them. Tables are
granted by database (every table in it, now and later): the jobs create their tables after deployment, and
a grant on a table that does not exist yet fails.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.arns import Account
from components.data_access import LayerAccess
from components.iam import service_role
from components.medallion_layer import WAREHOUSE_PREFIX, MedallionLayer
from components.naming import ANALYTICS_LAYER, Naming
from etl.registry import all_tables
from etl.tables import Layer

# What an analyst (a configured reader) may do on Gold.
READER_DATABASE = ("DESCRIBE",)
READER_TABLES = ("SELECT", "DESCRIBE")
# What a job may do in a layer it writes (the Iceberg commit is an ALTER of the table) and one it reads.
WRITER_DATABASE = ("CREATE_TABLE", "DESCRIBE")
WRITER_TABLES = ("SELECT", "INSERT", "DELETE", "ALTER", "DESCRIBE")
LOCATION = ("DATA_LOCATION_ACCESS",)


@dataclass(frozen=True)
class JobGrant:
    """A Glue job's role and the layers whose tables it reads and writes."""

    step: str
    role_arn: pulumi.Input[str]
    reads: tuple[Layer, ...]
    writes: tuple[Layer, ...]


@dataclass
class LakeFormationArgs:
    naming: Naming
    account: Account
    layers: Mapping[Layer, MedallionLayer]
    # IAM principals granted SELECT on every Gold table.
    readers: tuple[str, ...]
    jobs: Sequence[JobGrant]


class LakeFormation(pulumi.ComponentResource):
    data_access_role_arn: pulumi.Output[str]
    """ARN of the role Lake Formation reads the registered locations with."""

    def __init__(
        self, name: str, args: LakeFormationArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("lakehouse:lake_formation:LakeFormation", name, None, opts)
        self._name = name
        self._layers = args.layers
        # The layers that hold tables (Bronze holds raw files only).
        table_layers = [layer for layer in Layer if any(t.layer is layer for t in all_tables())]
        data_access = service_role(
            f"{name}-data-access",
            service="lakeformation",
            statements=[
                statement
                for layer in table_layers
                for statement in LayerAccess(
                    bucket_arn=args.layers[layer].bucket_arn,
                    key_arn=args.layers[layer].key_arn,
                    object_keys=(f"{WAREHOUSE_PREFIX}/*",),
                ).statements(args.account)
            ],
            tags=args.naming.tags(ANALYTICS_LAYER),
            parent=self,
            description="Reads the registered warehouse locations for Lake Formation (Athena queries)",
        )
        self._locations = {
            layer: aws.lakeformation.Resource(
                f"{name}-{layer.value}-location",
                arn=self._location_arn(layer),
                role_arn=data_access.role.arn,
                # Lake Formation assumes the role as soon as a query needs the location.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[data_access.policy]),
            )
            for layer in table_layers
        }
        for reader in args.readers:
            # Named after a digest of the ARN, so reordering the readers changes no grant.
            principal = f"reader-{hashlib.sha256(reader.encode()).hexdigest()[:8]}"
            self._grant_tables(principal, reader, Layer.GOLD, READER_DATABASE, READER_TABLES)
        for job in args.jobs:
            step = job.step.lower()
            for layer in (layer for layer in job.writes if layer in self._locations):
                aws.lakeformation.Permissions(
                    f"{name}-{step}-{layer.value}-location",
                    principal=job.role_arn,
                    permissions=list(LOCATION),
                    data_location={"arn": self._location_arn(layer)},
                    # Lake Formation grants access only to a location it has registered.
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[self._locations[layer]]),
                )
                self._grant_tables(step, job.role_arn, layer, WRITER_DATABASE, WRITER_TABLES)
            for layer in (layer for layer in job.reads if layer in self._locations):
                self._grant_tables(step, job.role_arn, layer, READER_DATABASE, READER_TABLES)

        self.data_access_role_arn = data_access.role.arn
        self.register_outputs({"data_access_role_arn": self.data_access_role_arn})

    def _location_arn(self, layer: Layer) -> pulumi.Output[str]:
        return pulumi.Output.format("{0}/{1}", self._layers[layer].bucket_arn, WAREHOUSE_PREFIX)

    def _grant_tables(
        self,
        principal_name: str,
        principal: pulumi.Input[str],
        layer: Layer,
        on_database: tuple[str, ...],
        on_tables: tuple[str, ...],
    ) -> None:
        database = self._layers[layer].database_name
        prefix = f"{self._name}-{principal_name}-{layer.value}"
        aws.lakeformation.Permissions(
            f"{prefix}-database",
            principal=principal,
            permissions=list(on_database),
            database={"name": database},
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.lakeformation.Permissions(
            f"{prefix}-tables",
            principal=principal,
            permissions=list(on_tables),
            table={"database_name": database, "wildcard": True},
            opts=pulumi.ResourceOptions(parent=self),
        )
