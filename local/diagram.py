"""The architecture picture, drawn from the code: a Mermaid flowchart (GitHub renders it as is).

Everything in it comes from the objects the state machine is rendered from and the declarations: the steps
(a Lambda function or a Glue job each, per etl.pipeline.StepKind), the layers each reads and writes, the
datasets and their source paths, the tables of each layer. Adding a step, a dataset or a Gold model
changes the picture with no edit here; a test keeps the README's copy current (`lakehouse diagram`).
"""

from __future__ import annotations

from collections.abc import Sequence

from etl import registry
from etl.dataset import Dataset
from etl.pipeline import PIPELINE, Pipeline, Step, StepKind
from etl.tables import Layer, TableDefinition

# What runs each kind of step in AWS (components/pipeline.py).
SERVICE = {StepKind.FUNCTION: "Lambda function", StepKind.SPARK_JOB: "Glue Spark job"}
SOURCE = "source"
ALERTS = "alerts"
ATHENA = "athena"
MONITORING = "monitoring"
# The layer analysts query through the stack's Athena workgroup (components/analyst_access.py).
ANALYSTS_READ = Layer.GOLD


def architecture(
    pipeline: Pipeline = PIPELINE,
    datasets: Sequence[Dataset] | None = None,
    tables: Sequence[TableDefinition] | None = None,
) -> str:
    """The flowchart of `pipeline` over the declared datasets and tables (default: those under datasets/)."""
    datasets = registry.datasets() if datasets is None else datasets
    tables = registry.all_tables() if tables is None else tables
    lines = ["flowchart LR"]
    paths = ", ".join(d.source.path for d in datasets)
    lines.append(f'  {SOURCE}(["Source HTTP API<br/>{paths}"])')
    lines.append(
        f'  subgraph orchestration["Step Functions: the {pipeline.name} pipeline, one run at a time"]'
    )
    if pipeline.branch:
        names = ", ".join(d.name for d in datasets)
        lines.append(f'    subgraph per_dataset["once per dataset: {names}"]')
        lines += [f"      {_step_node(step)}" for step in pipeline.branch]
        lines.append("    end")
    lines += [f"    {_step_node(step)}" for step in pipeline.joined]
    lines.append("  end")
    for layer in Layer:
        lines.append(f'  {_layer_id(layer)}[("{_layer_label(layer, datasets, tables)}")]')
    lines.append(f'  {ALERTS}>"SNS alert topic: a failed, timed-out or aborted run"]')
    lines.append(f'  {ATHENA}[["Athena workgroup: analysts query {ANALYSTS_READ.value}"]]')
    lines.append(f'  {MONITORING}[["CloudWatch: metrics per step and dataset, alarms, dashboard"]]')
    lines.append("  %% data: what each step reads and writes")
    for step in pipeline.steps:
        if step.kind is StepKind.FUNCTION and not step.reads:
            lines.append(f"  {SOURCE} --> {_step_id(step)}")
        lines += [f"  {_layer_id(layer)} --> {_step_id(step)}" for layer in step.reads]
        lines += [f"  {_step_id(step)} --> {_layer_id(layer)}" for layer in step.writes]
    lines.append("  %% order: each step starts when the one before it succeeded")
    lines += [
        f"  {_step_id(before)} -.-> {_step_id(after)}"
        for before, after in zip(pipeline.steps, pipeline.steps[1:], strict=False)
    ]
    lines.append(f"  orchestration -. on failure .-> {ALERTS}")
    lines.append(f"  orchestration -. metrics .-> {MONITORING}")
    lines.append(f"  {MONITORING} -. alarms .-> {ALERTS}")
    lines.append(f"  {_layer_id(ANALYSTS_READ)} --> {ATHENA}")
    return "\n".join(lines) + "\n"


def _step_id(step: Step) -> str:
    return f"{step.name.lower()}_step"


def _step_node(step: Step) -> str:
    return f'{_step_id(step)}["{step.name}: {SERVICE[step.kind]}<br/>{step.entry_point}"]'


def _layer_id(layer: Layer) -> str:
    return f"{layer.value}_bucket"


def _layer_label(layer: Layer, datasets: Sequence[Dataset], tables: Sequence[TableDefinition]) -> str:
    if layer is Layer.BRONZE:
        # Bronze holds objects, not tables: the raw pages of each dataset under its own prefix.
        held = [f"{d.name}/ (raw JSON Lines)" for d in datasets]
    else:
        held = [f"{layer.value}.{t.name}" for t in tables if t.layer is layer]
    catalog = "" if layer is Layer.BRONZE else " and Glue database"
    return "<br/>".join([f"S3 {layer.value} bucket{catalog}", *held])
