"""QueryLayer: Athena for analysts over Gold: a workgroup, its saved queries and the policy to use them.

The workgroup enforces its settings (engine version 3, a per-query scan cutoff, results encrypted with the
layer's own key in a hardened bucket that forgets them after a while), so a client cannot pick another
result location or lift the cutoff. The named queries derive from the declarations (components/
named_queries.py); the analyst policy (components/analyst_access.py) is exported for attaching to people.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.analyst_access import AnalystAccess
from components.arns import Account
from components.config import AnalyticsConfig, StorageConfig
from components.hardened_bucket import AccessLogTarget, HardenedBucket, HardenedBucketArgs, PrefixExpiry
from components.iam import policy_document
from components.keys import customer_managed_key
from components.lake_formation import JobGrant, LakeFormation, LakeFormationArgs
from components.medallion_layer import WAREHOUSE_PREFIX, MedallionLayer
from components.named_queries import saved_queries
from components.naming import ANALYTICS_LAYER, Naming
from etl.tables import Layer

ENGINE_VERSION = "Athena engine version 3"
RESULTS_PREFIX = "results"
MEGABYTE = 1024 * 1024
# Noncurrent versions of results are of no use to anyone: gone after a day.
RESULTS_NONCURRENT_DAYS = 1


@dataclass
class QueryLayerArgs:
    naming: Naming
    account: Account
    config: AnalyticsConfig
    storage: StorageConfig
    layers: Mapping[Layer, MedallionLayer]
    access_logs: AccessLogTarget | None = None
    # The Glue jobs' roles, granted their tables in Lake Formation mode.
    jobs: Sequence[JobGrant] = ()


class QueryLayer(pulumi.ComponentResource):
    workgroup_name: pulumi.Output[str]
    """Name of the analysts' Athena workgroup."""
    results_bucket_name: pulumi.Output[str]
    """Name of the bucket holding the workgroup's query results."""
    analyst_policy_arn: pulumi.Output[str]
    """ARN of the managed policy that lets a person or role query Gold in the workgroup."""

    def __init__(self, name: str, args: QueryLayerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lakehouse:analytics:QueryLayer", name, None, opts)
        self._name = name
        self._args = args
        self._tags = args.naming.tags(ANALYTICS_LAYER)
        key, results = self._results_storage()
        workgroup = self._workgroup(results.bucket_name, key.arn)
        naming = args.naming
        for query in saved_queries(naming.database_name(Layer.GOLD), naming.database_name(Layer.SILVER)):
            aws.athena.NamedQuery(
                f"{name}-{query.key}",
                name=query.name,
                description=query.description,
                database=query.database,
                query=query.sql,
                workgroup=workgroup.name,
                opts=pulumi.ResourceOptions(parent=self),
            )
        gold = args.layers[Layer.GOLD]
        access = AnalystAccess(
            workgroup_arn=workgroup.arn,
            gold_database=naming.database_name(Layer.GOLD),
            gold_bucket_arn=gold.bucket_arn,
            gold_key_arn=gold.key_arn,
            gold_objects=f"{WAREHOUSE_PREFIX}/*",
            results_bucket_arn=results.bucket_arn,
            results_key_arn=key.arn,
            results_objects=f"{RESULTS_PREFIX}/*",
            lake_formation=args.config.lake_formation,
        )
        policy = aws.iam.Policy(
            f"{name}-analyst-policy",
            name=f"{naming.prefix}-analyst",
            # The stack's path, which the deploy policy's IAM grants are scoped to.
            path=naming.role_path,
            description=f"Query Gold of {naming.prefix} with Athena in workgroup {workgroup_name(naming)}",
            policy=policy_document(access.statements(args.account)),
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        if args.config.lake_formation:
            LakeFormation(
                f"{name}-lake-formation",
                LakeFormationArgs(
                    naming=naming,
                    account=args.account,
                    layers=args.layers,
                    readers=args.config.lake_formation_readers,
                    jobs=args.jobs,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )

        self.workgroup_name = workgroup.name
        self.results_bucket_name = results.bucket_name
        self.analyst_policy_arn = policy.arn
        self.register_outputs(
            {
                "workgroup_name": self.workgroup_name,
                "results_bucket_name": self.results_bucket_name,
                "analyst_policy_arn": self.analyst_policy_arn,
            }
        )

    def _results_storage(self) -> tuple[aws.kms.Key, HardenedBucket]:
        """The results bucket and its own key (a grant to write results opens no layer's data)."""
        naming, storage = self._args.naming, self._args.storage
        key = customer_managed_key(
            f"{self._name}-results",
            alias=f"{naming.prefix}-athena-results",
            description=f"Encrypts the Athena query results of {naming.prefix}",
            tags=self._tags,
            deletion_window_days=storage.deletion_window_days,
            protect=storage.deletion_protection,
            parent=self,
        )
        bucket = HardenedBucket(
            f"{self._name}-results",
            HardenedBucketArgs(
                name_prefix=naming.bucket_prefix("athena-results"),
                tags=self._tags,
                kms_key_arn=key.arn,
                noncurrent_version_days=storage.noncurrent_version_days,
                prefix_expiries=(
                    PrefixExpiry(
                        f"{RESULTS_PREFIX}/",
                        noncurrent_days=RESULTS_NONCURRENT_DAYS,
                        current_days=self._args.config.results_retention_days,
                    ),
                ),
                force_destroy=storage.force_destroy,
                protect=storage.deletion_protection,
                access_logs=self._args.access_logs,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return key, bucket

    def _workgroup(
        self, results_bucket: pulumi.Input[str], key_arn: pulumi.Input[str]
    ) -> aws.athena.Workgroup:
        return aws.athena.Workgroup(
            f"{self._name}-workgroup",
            name=workgroup_name(self._args.naming),
            description=f"Queries of Gold in {self._args.naming.prefix}; its settings override the client's",
            state="ENABLED",
            configuration={
                "enforce_workgroup_configuration": True,
                "engine_version": {"selected_engine_version": ENGINE_VERSION},
                "bytes_scanned_cutoff_per_query": self._args.config.bytes_scanned_cutoff_mb * MEGABYTE,
                "publish_cloudwatch_metrics_enabled": True,
                "result_configuration": {
                    "output_location": pulumi.Output.format("s3://{0}/{1}/", results_bucket, RESULTS_PREFIX),
                    "encryption_configuration": {"encryption_option": "SSE_KMS", "kms_key_arn": key_arn},
                },
            },
            # Deleting the workgroup drops its query history and saved queries, never data (results stay
            # until their bucket expires them); without this, AWS refuses while any query is on record.
            force_destroy=True,
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self),
        )


def workgroup_name(naming: Naming) -> str:
    """The analysts' workgroup of a stack, e.g. lakehouse-dev-analysts."""
    return f"{naming.prefix}-analysts"
