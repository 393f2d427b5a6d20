"""SparkJob: a Glue job that runs one SPARK_JOB step of the pipeline, with its own role and logs.

The job's script is the step's entry point module, uploaded under a content-addressed key, and the whole
`etl` package rides along as `--extra-py-files`: the job runs exactly the code the local runner runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from packaging.utils import canonicalize_name

from components.archive import Artifact
from components.arns import Account, log_streams
from components.bundles import pinned_versions
from components.data_access import LayerAccess
from components.iam import ANY_RESOURCE, Statement, service_role
from components.log_group import LogSettings, log_group
from components.naming import PIPELINE_LAYER, Naming
from etl.pipeline import Step, StepKind

# AWS Glue 5.1 runs Spark 3.5.6, Python 3.11 and Iceberg 1.10.0; the local run pins pyspark 3.5.6 and
# an Iceberg 1.10 runtime jar to match (see README, "Versions").
GLUE_VERSION = "5.1"
SCRIPT_PREFIX = "glue/scripts"
# Glue 5 writes a job's driver and executor logs to <prefix>/error and <prefix>/output.
LOG_STREAMS = ("error", "output")


@dataclass(frozen=True)
class JobCode:
    """Where the job's code lives: the artifacts bucket, its key, and the uploaded `etl` package."""

    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    etl_package_uri: pulumi.Input[str]


@dataclass(frozen=True)
class SparkSizing:
    worker_type: str
    workers: int
    flex: bool
    timeout_minutes: int


@dataclass
class SparkJobArgs:
    step: Step
    naming: Naming
    account: Account
    script: Artifact
    code: JobCode
    # The step's own arguments (`--name`: value), fixed per stack.
    arguments: Mapping[str, pulumi.Input[str]]
    # The Spark settings of the Iceberg catalog, as one `--conf` value.
    spark_conf: pulumi.Input[str]
    data: Sequence[LayerAccess]
    sizing: SparkSizing
    logs: LogSettings


class SparkJob(pulumi.ComponentResource):
    job_name: pulumi.Output[str]
    """Name of the Glue job."""
    script_location: pulumi.Output[str]
    """s3:// URI of the uploaded script the job runs."""
    role_arn: pulumi.Output[str]
    """ARN of the job's role."""

    def __init__(self, name: str, args: SparkJobArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lakehouse:spark_job:SparkJob", name, None, opts)
        if args.step.kind is not StepKind.SPARK_JOB:
            raise ValueError(f"step {args.step.name} is a {args.step.kind.value} step, not a Spark job")
        tags = args.naming.tags(PIPELINE_LAYER)
        job_name = f"{args.naming.prefix}-{args.step.name.lower()}"
        log_prefix = f"/aws-glue/{job_name}"

        script_key = args.script.content_addressed_key(f"{SCRIPT_PREFIX}/{args.step.name.lower()}")
        script = aws.s3.BucketObjectv2(
            f"{name}-script",
            bucket=args.code.bucket_name,
            key=script_key,
            source=pulumi.FileAsset(str(args.script.path)),
            content_type="text/x-python",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.script_location = pulumi.Output.format("s3://{0}/{1}", script.bucket, script.key)

        groups = [
            log_group(
                f"{name}-{stream}-logs",
                log_group_name=f"{log_prefix}/{stream}",
                settings=args.logs,
                tags=tags,
                parent=self,
            )
            for stream in LOG_STREAMS
        ]
        role = service_role(
            name,
            service="glue",
            description=f"Runs the {args.step.name} Glue job of {args.naming.prefix}",
            statements=_job_statements(args, [group.arn for group in groups]),
            tags=tags,
            parent=self,
        )
        job = aws.glue.Job(
            f"{name}-job",
            name=job_name,
            description=args.step.description,
            role_arn=role.role.arn,
            glue_version=GLUE_VERSION,
            command={"name": "glueetl", "script_location": self.script_location, "python_version": "3"},
            default_arguments={
                "--job-language": "python",
                "--datalake-formats": "iceberg",
                "--conf": args.spark_conf,
                "--extra-py-files": args.code.etl_package_uri,
                "--enable-metrics": "true",
                "--enable-observability-metrics": "true",
                # Glue 5 streams logs in real time anyway; the prefix sends them to the groups above,
                # which carry the stack's retention.
                "--enable-continuous-cloudwatch-log": "true",
                "--custom-logGroup-prefix": log_prefix,
                **_python_modules(args.step),
                **args.arguments,
            },
            worker_type=args.sizing.worker_type,
            number_of_workers=args.sizing.workers,
            execution_class="FLEX" if args.sizing.flex else "STANDARD",
            timeout=args.sizing.timeout_minutes,
            # The state machine retries, with notification; a silent retry inside Glue would double the cost.
            max_retries=0,
            execution_property={"max_concurrent_runs": 1},
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role.policy, *groups]),
        )

        self.job_name = job.name
        self.role_arn = role.role.arn
        self.register_outputs(
            {"job_name": self.job_name, "script_location": self.script_location, "role_arn": self.role_arn}
        )


def _python_modules(step: Step) -> dict[str, str]:
    """`--additional-python-modules` for the step's python_modules, pinned as requirements.txt pins them:
    Glue installs them with pip when the job starts (from PyPI, or the index set with Glue's
    `--python-modules-installer-option`)."""
    if not step.python_modules:
        return {}
    pins = pinned_versions()
    unpinned = [name for name in step.python_modules if canonicalize_name(name) not in pins]
    if unpinned:
        raise ValueError(f"step {step.name} installs {unpinned}, which requirements.txt does not pin")
    modules = ",".join(f"{name}=={pins[canonicalize_name(name)]}" for name in step.python_modules)
    return {"--additional-python-modules": modules}


def _job_statements(args: SparkJobArgs, log_group_arns: Sequence[pulumi.Output[str]]) -> list[Statement]:
    statements = [
        Statement(
            sid="ReadJobCode",
            actions=("s3:GetObject",),
            resources=(pulumi.Output.format("{0}/glue/*", args.code.bucket_arn),),
        ),
        Statement(sid="DecryptJobCode", actions=("kms:Decrypt",), resources=(args.code.key_arn,)),
        Statement(
            sid="WriteJobLogs",
            # CreateLogGroup too: Glue asks for the group at start even when it exists.
            actions=("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"),
            resources=(*log_group_arns, *(log_streams(arn) for arn in log_group_arns)),
        ),
        Statement(
            sid="PublishJobMetrics",
            actions=("cloudwatch:PutMetricData",),
            # PutMetricData has no resource to scope to; the namespace condition does the scoping.
            resources=(ANY_RESOURCE,),
            condition={"StringEquals": {"cloudwatch:namespace": "Glue"}},
        ),
    ]
    for access in args.data:
        statements.extend(access.statements(args.account))
    return statements
