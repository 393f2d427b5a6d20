"""IngestFunction: the Lambda function that runs the pipeline's FUNCTION step (Bronze ingestion)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.archive import Artifact
from components.arns import Account, log_streams
from components.bundles import LAMBDA_PYTHON
from components.data_access import LayerAccess
from components.iam import ANY_RESOURCE, Statement, service_role
from components.log_group import LogSettings, log_group
from components.naming import PIPELINE_LAYER, Naming
from etl.pipeline import Step, StepKind

# The runtime whose Python the bundle is built for (components/bundles.py).
RUNTIME = f"python{LAMBDA_PYTHON}"
# The bundle is pure Python (components/bundles.py), so the cheaper Graviton architecture runs it.
ARCHITECTURE = "arm64"


@dataclass(frozen=True)
class FunctionSizing:
    timeout_seconds: int
    memory_mb: int
    log_level: str


@dataclass(frozen=True)
class TokenSecret:
    """The Secrets Manager secret holding the source API token, and the key that encrypts it."""

    arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]


@dataclass
class IngestFunctionArgs:
    step: Step
    naming: Naming
    account: Account
    bundle: Artifact
    environment: Mapping[str, pulumi.Input[str]]
    bronze: LayerAccess
    token: TokenSecret
    sizing: FunctionSizing
    logs: LogSettings


class IngestFunction(pulumi.ComponentResource):
    function_name: pulumi.Output[str]
    """Name of the Lambda function."""
    function_arn: pulumi.Output[str]
    """ARN of the Lambda function."""
    role_arn: pulumi.Output[str]
    """ARN of the function's role."""

    def __init__(
        self, name: str, args: IngestFunctionArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("lakehouse:ingest_function:IngestFunction", name, None, opts)
        if args.step.kind is not StepKind.FUNCTION:
            raise ValueError(f"step {args.step.name} is a {args.step.kind.value} step, not a function")
        tags = args.naming.tags(PIPELINE_LAYER)
        function_name = f"{args.naming.prefix}-{args.step.name.lower()}"
        logs = log_group(
            f"{name}-logs",
            log_group_name=f"/aws/lambda/{function_name}",
            settings=args.logs,
            tags=tags,
            parent=self,
        )
        role = service_role(
            name,
            service="lambda",
            description=f"Runs the {args.step.name} function of {args.naming.prefix}",
            statements=[
                Statement(
                    sid="WriteFunctionLogs",
                    actions=("logs:CreateLogStream", "logs:PutLogEvents"),
                    resources=(logs.arn, log_streams(logs.arn)),
                ),
                Statement(
                    sid="WriteTraces",
                    # X-Ray's write actions cannot be scoped to a resource.
                    actions=("xray:PutTraceSegments", "xray:PutTelemetryRecords"),
                    resources=(ANY_RESOURCE,),
                ),
                Statement(
                    sid="ReadSourceToken",
                    actions=("secretsmanager:GetSecretValue",),
                    resources=(args.token.arn,),
                ),
                Statement(
                    sid="DecryptSourceToken",
                    actions=("kms:Decrypt",),
                    resources=(args.token.key_arn,),
                    condition={
                        "StringEquals": {"kms:ViaService": args.account.service_endpoint("secretsmanager")}
                    },
                ),
                *args.bronze.statements(args.account),
            ],
            tags=tags,
            parent=self,
        )
        function = aws.lambda_.Function(
            f"{name}-function",
            name=function_name,
            description=args.step.description,
            role=role.role.arn,
            runtime=RUNTIME,
            architectures=[ARCHITECTURE],
            # The handler module is the step's entry point; its function is called `handler`.
            handler=f"{args.step.entry_point}.handler",
            code=pulumi.FileArchive(str(args.bundle.path)),
            timeout=args.sizing.timeout_seconds,
            memory_size=args.sizing.memory_mb,
            # One ingestion at a time: two runs would race for the same watermark.
            reserved_concurrent_executions=1,
            environment={"variables": dict(args.environment)},
            logging_config={
                "log_format": "JSON",
                "log_group": logs.name,
                "application_log_level": args.sizing.log_level,
                "system_log_level": "WARN",
            },
            tracing_config={"mode": "Active"},
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role.policy, logs]),
        )

        self.function_name = function.name
        self.function_arn = function.arn
        self.role_arn = role.role.arn
        self.register_outputs(
            {
                "function_name": self.function_name,
                "function_arn": self.function_arn,
                "role_arn": self.role_arn,
            }
        )
