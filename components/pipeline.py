"""Pipeline: everything that runs the pipeline definition in AWS, step by step, on a schedule.

Each step of `etl.pipeline` gets the resource its kind asks for (a Lambda function or a Glue job), with the
step's settings filled in from the medallion layers; the state machine then runs them in the same order,
with the same arguments, as the local runner.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.access_logs import AccessLogs
from components.alerts import Alerts, AlertsArgs
from components.archive import file_artifact
from components.arns import Account
from components.bundles import BUILD_DIR, build_etl_package, build_lambda_bundle, module_file
from components.config import StackConfig
from components.data_access import LayerAccess
from components.hardened_bucket import HardenedBucket, HardenedBucketArgs
from components.ingest_function import IngestFunction, IngestFunctionArgs, TokenSecret
from components.keys import customer_managed_key
from components.log_group import LogSettings
from components.medallion_layer import CHECKPOINT_PREFIX, WAREHOUSE_PREFIX, MedallionLayer
from components.monitoring import Monitoring, MonitoringArgs
from components.naming import PIPELINE_LAYER, Naming
from components.orchestrator import Orchestrator, OrchestratorArgs, Schedule
from components.spark_job import JobCode, SparkJob, SparkJobArgs
from components.state_machine import StepTarget
from etl import metrics
from etl.bronze.layout import BronzeLayout
from etl.bronze.settings import ENV_BRONZE_ROOT, ENV_TOKEN_SECRET_ARN
from etl.catalog import glue_catalog_conf, glue_conf_argument
from etl.pipeline import (
    BRONZE_ROOT,
    CHECKPOINT_ROOT,
    GOLD_DATABASE,
    GOLD_REFRESH,
    PUBLISH_ANYWAY,
    SILVER_DATABASE,
    Step,
    StepKind,
)
from etl.pipeline import Pipeline as PipelineDefinition
from etl.registry import datasets, gold_tables, silver_tables
from etl.tables import Layer, TableDefinition

ETL_PACKAGE_PREFIX = "glue/python"
TABLES: Mapping[Layer, tuple[TableDefinition, ...]] = {
    Layer.SILVER: silver_tables(),
    Layer.GOLD: gold_tables(),
}


@dataclass
class PipelineArgs:
    pipeline: PipelineDefinition
    config: StackConfig
    layers: Mapping[Layer, MedallionLayer]
    access_logs: AccessLogs | None = None


class Pipeline(pulumi.ComponentResource):
    state_machine_arn: pulumi.Output[str]
    """ARN of the state machine that runs the pipeline."""
    definition: pulumi.Output[str]
    """The state machine's Amazon States Language definition (JSON)."""
    artifacts_bucket_name: pulumi.Output[str]
    """Name of the bucket holding the Glue job scripts and the etl package."""
    function_name: pulumi.Output[str]
    """Name of the Lambda function that runs the ingestion step."""
    job_names: pulumi.Output[dict[str, str]]
    """Glue job name by step name."""
    alert_topic_arn: pulumi.Output[str]
    """ARN of the SNS topic that receives pipeline failures."""
    token_secret_arn: pulumi.Output[str]
    """ARN of the Secrets Manager secret holding the source API token."""
    job_role_arns: dict[str, pulumi.Output[str]]
    """ARN of each Glue job's role, by step name (Lake Formation grants them their tables)."""

    def __init__(self, name: str, args: PipelineArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lakehouse:pipeline:Pipeline", name, None, opts)
        ingestion = [step.name for step in args.pipeline.steps if step.kind is StepKind.FUNCTION]
        if len(ingestion) != 1:
            raise ValueError(
                f"the pipeline needs exactly one function step (the ingestion), found {ingestion}"
            )
        config = args.config
        self._resource_name = name
        self._args = args
        self._naming = Naming(config.project, config.stack)
        self._account = Account.current()
        self._tags = self._naming.tags(PIPELINE_LAYER)
        self._logs = LogSettings(config.storage.log_retention_days, config.storage.deletion_protection)

        artifacts_key = self._key("artifacts", "the Glue job code")
        artifacts = HardenedBucket(
            f"{name}-artifacts",
            HardenedBucketArgs(
                name_prefix=self._naming.bucket_prefix("artifacts"),
                tags=self._tags,
                kms_key_arn=artifacts_key.arn,
                noncurrent_version_days=config.storage.noncurrent_version_days,
                force_destroy=config.storage.force_destroy,
                protect=config.storage.deletion_protection,
                access_logs=args.access_logs.target("artifacts") if args.access_logs else None,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        etl_package = build_etl_package(BUILD_DIR / "glue" / "etl.zip")
        etl_object = aws.s3.BucketObjectv2(
            f"{name}-etl-package",
            bucket=artifacts.bucket_name,
            key=etl_package.content_addressed_key(ETL_PACKAGE_PREFIX),
            source=pulumi.FileAsset(str(etl_package.path)),
            content_type="application/zip",
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        code = JobCode(
            bucket_name=artifacts.bucket_name,
            bucket_arn=artifacts.bucket_arn,
            key_arn=artifacts_key.arn,
            etl_package_uri=pulumi.Output.format("s3://{0}/{1}", etl_object.bucket, etl_object.key),
        )
        token = self._token_secret(name)

        state_machine_name = f"{self._naming.prefix}-{args.pipeline.name}"
        alerts = Alerts(
            f"{name}-alerts",
            AlertsArgs(
                naming=self._naming,
                state_machine_arn=self._account.state_machine(state_machine_name),
                email=config.orchestration.alarm_email,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        targets: dict[str, StepTarget[pulumi.Output[str]]] = {}
        functions: dict[str, pulumi.Output[str]] = {}
        jobs: dict[str, pulumi.Output[str]] = {}
        self.job_role_arns = {}
        for step in args.pipeline.steps:
            if step.kind is StepKind.FUNCTION:
                function = self._ingest_function(name, step, token)
                functions[step.name] = function.function_name
                targets[step.name] = StepTarget(
                    function.function_arn,
                    config.function.timeout_seconds,
                    config.orchestration.ingest_max_invocations,
                )
            else:
                job = self._spark_job(name, step, code)
                jobs[step.name] = job.job_name
                self.job_role_arns[step.name] = job.role_arn
                targets[step.name] = StepTarget(
                    job.job_name, config.spark[step.writes[0]].timeout_minutes * 60
                )

        orchestration = config.orchestration
        orchestrator = Orchestrator(
            f"{name}-orchestrator",
            OrchestratorArgs(
                pipeline=args.pipeline,
                naming=self._naming,
                account=self._account,
                state_machine_name=state_machine_name,
                targets=targets,
                alert_topic_arn=alerts.topic_arn,
                log_level=orchestration.log_level,
                logs=self._logs,
                schedule=(
                    Schedule(orchestration.schedule, orchestration.schedule_timezone)
                    if orchestration.schedule
                    else None
                ),
                dataset_concurrency=orchestration.dataset_concurrency,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        Monitoring(
            f"{name}-monitoring",
            MonitoringArgs(
                pipeline=args.pipeline,
                naming=self._naming,
                config=config.monitoring,
                state_machine_arn=orchestrator.state_machine_arn,
                alert_topic_arn=alerts.topic_arn,
                region=self._account.region,
                timeout_seconds={step: target.timeout_seconds for step, target in targets.items()},
                datasets=[dataset.name for dataset in datasets()],
                tables={layer: [table.name for table in tables] for layer, tables in TABLES.items()},
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.state_machine_arn = orchestrator.state_machine_arn
        self.definition = orchestrator.definition
        self.artifacts_bucket_name = artifacts.bucket_name
        (self.function_name,) = functions.values()
        self.job_names = pulumi.Output.all(**jobs).apply(dict)
        self.alert_topic_arn = alerts.topic_arn
        self.token_secret_arn = pulumi.Output.from_input(token.arn)
        self.register_outputs(
            {
                "state_machine_arn": self.state_machine_arn,
                "artifacts_bucket_name": self.artifacts_bucket_name,
                "function_name": self.function_name,
                "job_names": self.job_names,
                "alert_topic_arn": self.alert_topic_arn,
                "token_secret_arn": self.token_secret_arn,
            }
        )

    def _key(self, role: str, what: str) -> aws.kms.Key:
        return customer_managed_key(
            f"{self._resource_name}-{role}",
            alias=f"{self._naming.prefix}-{role}",
            description=f"Encrypts {what} of {self._naming.prefix}",
            tags=self._tags,
            deletion_window_days=self._args.config.storage.deletion_window_days,
            protect=self._args.config.storage.deletion_protection,
            parent=self,
        )

    def _token_secret(self, name: str) -> TokenSecret:
        storage = self._args.config.storage
        key = self._key("secrets", "the source API token")
        secret = aws.secretsmanager.Secret(
            f"{name}-source-token",
            name_prefix=f"{self._naming.prefix}-source-api-token-",
            description=f"Token of the source API that {self._naming.prefix} ingests from",
            kms_key_id=key.arn,
            recovery_window_in_days=storage.deletion_window_days,
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self, protect=storage.deletion_protection),
        )
        aws.secretsmanager.SecretVersion(
            f"{name}-source-token-value",
            secret_id=secret.id,
            secret_string=self._args.config.source.token,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return TokenSecret(arn=secret.arn, key_arn=key.arn)

    def _ingest_function(self, name: str, step: Step, token: TokenSecret) -> IngestFunction:
        config = self._args.config
        source = config.source
        bronze = self._args.layers[Layer.BRONZE]
        environment: dict[str, pulumi.Input[str]] = {
            ENV_BRONZE_ROOT: pulumi.Output.format("s3://{0}", bronze.bucket_name),
            ENV_TOKEN_SECRET_ARN: token.arn,
            metrics.ENV_METRICS_NAMESPACE: metrics.namespace_of(config.stack),
            **source.settings.to_environment(),
        }
        return IngestFunction(
            f"{name}-{step.name.lower()}",
            IngestFunctionArgs(
                step=step,
                naming=self._naming,
                account=self._account,
                bundle=build_lambda_bundle(BUILD_DIR / "lambda" / f"{step.name.lower()}.zip"),
                environment=environment,
                bronze=LayerAccess(
                    bucket_arn=bronze.bucket_arn,
                    key_arn=bronze.key_arn,
                    # Raw pages, run manifests and the watermark of each declared dataset, nothing else.
                    object_keys=tuple(
                        key
                        for layout in _bronze_layouts()
                        for key in (f"{layout.dataset}/*", f"{layout.manifest_prefix}*", layout.watermark_key)
                    ),
                    write=True,
                ),
                token=token,
                sizing=config.function,
                logs=self._logs,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _spark_job(self, name: str, step: Step, code: JobCode) -> SparkJob:
        config = self._args.config
        layers = self._args.layers
        settings: dict[str, pulumi.Input[str]] = {
            BRONZE_ROOT: pulumi.Output.format("s3://{0}", layers[Layer.BRONZE].bucket_name),
            SILVER_DATABASE: layers[Layer.SILVER].database_name,
            GOLD_DATABASE: layers[Layer.GOLD].database_name,
            # A run's branch is published only when its audits pass; an operator overrides by starting
            # the Audit job once with `--publish-anyway true --branch <execution name>`.
            PUBLISH_ANYWAY: "false",
            GOLD_REFRESH: config.orchestration.gold_refresh,
            **config.audits.arguments(),
        }
        if CHECKPOINT_ROOT in step.settings:
            # Under the bucket of the layer the step writes, whose role may write there anyway.
            settings[CHECKPOINT_ROOT] = layers[step.writes[0]].checkpoint_uri
        missing = [setting for setting in step.settings if setting not in settings]
        if missing:
            raise ValueError(f"step {step.name} needs settings {missing} the infrastructure does not provide")
        return SparkJob(
            f"{name}-{step.name.lower()}",
            SparkJobArgs(
                step=step,
                naming=self._naming,
                account=self._account,
                script=file_artifact(module_file(step.entry_point)),
                code=code,
                arguments={
                    **{setting: settings[setting] for setting in step.settings},
                    metrics.METRICS_NAMESPACE: metrics.namespace_of(config.stack),
                },
                # Tables go under their database's location; the Silver warehouse is only Iceberg's fallback.
                spark_conf=layers[Layer.SILVER].warehouse_uri.apply(
                    lambda warehouse: glue_conf_argument(glue_catalog_conf(warehouse=warehouse))
                ),
                data=[
                    *(self._layer_access(layer, write=False) for layer in step.reads),
                    *(
                        self._layer_access(layer, write=True, checkpoints=CHECKPOINT_ROOT in step.settings)
                        for layer in step.writes
                    ),
                ],
                sizing=config.spark[step.writes[0]],
                logs=self._logs,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _layer_access(self, layer: Layer, write: bool, checkpoints: bool = False) -> LayerAccess:
        medallion = self._args.layers[layer]
        if layer is Layer.BRONZE:
            keys: tuple[str, ...] = tuple(
                key
                for layout in _bronze_layouts()
                for key in (f"{layout.dataset}/*", f"{layout.manifest_prefix}*")
            )
            database = None
        else:
            keys = (f"{WAREHOUSE_PREFIX}/*",)
            if checkpoints:
                # No slash: Hadoop's S3 file system may also write a `_checkpoints_$folder$` marker.
                keys += (f"{CHECKPOINT_PREFIX}*",)
            database = self._naming.database_name(layer)
        return LayerAccess(
            bucket_arn=medallion.bucket_arn,
            key_arn=medallion.key_arn,
            object_keys=keys,
            write=write,
            delete=write,
            database=database,
            tables=tuple(table.name for table in TABLES.get(layer, ())),
        )


def _bronze_layouts() -> tuple[BronzeLayout, ...]:
    """Where each declared dataset keeps its Bronze objects: what the ingestion and Silver may touch."""
    return tuple(BronzeLayout(dataset.name) for dataset in datasets())
