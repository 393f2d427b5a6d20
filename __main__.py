"""The lakehouse stack: the storage of three medallion layers and the pipeline that fills them."""

from __future__ import annotations

import pulumi

from components.access_logs import AccessLogs, AccessLogsArgs
from components.analytics import QueryLayer, QueryLayerArgs
from components.arns import Account
from components.budget import CostBudget, CostBudgetArgs
from components.config import load_stack_config
from components.lake_formation import JobGrant
from components.medallion_layer import MedallionLayer, MedallionLayerArgs
from components.naming import Naming
from components.pipeline import Pipeline, PipelineArgs
from etl.pipeline import PIPELINE
from etl.tables import Layer

config = load_stack_config()
storage = config.storage
naming = Naming(config.project, config.stack)

access_logs = (
    AccessLogs(
        "access-logs",
        AccessLogsArgs(
            naming=naming,
            account=Account.current(),
            retention_days=storage.access_log_retention_days,
            noncurrent_version_days=storage.noncurrent_version_days,
            force_destroy=storage.force_destroy,
            protect=storage.deletion_protection,
        ),
    )
    if storage.access_logging
    else None
)

layers = {
    layer: MedallionLayer(
        layer.value,
        MedallionLayerArgs(
            layer=layer,
            naming=naming,
            noncurrent_version_days=storage.noncurrent_version_days,
            warehouse_noncurrent_version_days=storage.warehouse_noncurrent_version_days,
            deletion_window_days=storage.deletion_window_days,
            transition=storage.transitions[layer],
            force_destroy=storage.force_destroy,
            protect=storage.deletion_protection,
            access_logs=access_logs.target(layer.value) if access_logs else None,
        ),
    )
    for layer in Layer
}

pipeline = Pipeline(
    PIPELINE.name,
    PipelineArgs(pipeline=PIPELINE, config=config, layers=layers, access_logs=access_logs),
)

analytics = QueryLayer(
    "analytics",
    QueryLayerArgs(
        naming=naming,
        account=Account.current(),
        config=config.analytics,
        storage=storage,
        layers=layers,
        access_logs=access_logs.target("athena-results") if access_logs else None,
        jobs=[
            JobGrant(step.name, pipeline.job_role_arns[step.name], step.reads, step.writes)
            for step in PIPELINE.steps
            if step.name in pipeline.job_role_arns
        ],
    ),
)
if config.budget is not None:
    CostBudget("budget", CostBudgetArgs(naming=naming, config=config.budget))

pulumi.export("stateMachineArn", pipeline.state_machine_arn)
pulumi.export(
    "bucketNames",
    {
        **{layer.value: layers[layer].bucket_name for layer in Layer},
        "artifacts": pipeline.artifacts_bucket_name,
        "athenaResults": analytics.results_bucket_name,
        **({"accessLogs": access_logs.bucket_name} if access_logs else {}),
    },
)
pulumi.export("databaseNames", {layer.value: layers[layer].database_name for layer in Layer})
pulumi.export("jobNames", pipeline.job_names)
pulumi.export("functionName", pipeline.function_name)
pulumi.export("alertTopicArn", pipeline.alert_topic_arn)
pulumi.export("sourceTokenSecretArn", pipeline.token_secret_arn)
pulumi.export("athenaWorkgroup", analytics.workgroup_name)
pulumi.export("analystPolicyArn", analytics.analyst_policy_arn)
