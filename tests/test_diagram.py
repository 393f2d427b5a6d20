"""The architecture picture is drawn from the pipeline objects and the declarations, and the README's copy
is the current one."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from datasets.orders import DATASET as ORDERS
from etl import registry
from etl.pipeline import PIPELINE, Pipeline, Step, StepKind
from etl.tables import Layer
from local.cli import main
from local.diagram import architecture

README = Path(__file__).resolve().parent.parent / "README.md"
EMBEDDED = re.compile(
    r"<!-- lakehouse diagram: start -->\n```mermaid\n(.*?)```\n<!-- lakehouse diagram: end -->", re.DOTALL
)


def test_the_readme_embeds_the_current_diagram() -> None:
    match = EMBEDDED.search(README.read_text(encoding="utf-8"))
    assert match is not None, "README.md lost its diagram markers"
    assert match.group(1) == architecture(), "README.md's diagram is stale: paste `lakehouse diagram` there"


def test_lakehouse_diagram_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagram"]) == 0
    assert capsys.readouterr().out == architecture()


def test_every_step_dataset_and_table_is_drawn_with_what_runs_and_holds_it() -> None:
    diagram = architecture()
    assert diagram.startswith("flowchart LR\n")
    assert 'bronze_step["Bronze: Lambda function<br/>etl.bronze.handler"]' in diagram
    assert 'silver_step["Silver: Glue Spark job<br/>etl.silver.job"]' in diagram
    assert 'gold_step["Gold: Glue Spark job<br/>etl.gold.job"]' in diagram
    for dataset in registry.datasets():
        assert dataset.source.path in diagram
        assert f"{dataset.name}/ (raw JSON Lines)" in diagram
    for table in registry.all_tables():
        assert f"<br/>{table.layer.value}.{table.name}" in diagram
    # Data flows source -> Bronze -> Silver -> Gold through the buckets, as the steps declare.
    for edge in (
        "source --> bronze_step",
        "bronze_step --> bronze_bucket",
        "bronze_bucket --> silver_step",
        "silver_step --> silver_bucket",
        "silver_bucket --> gold_step",
        "gold_step --> gold_bucket",
        "gold_bucket --> athena",
    ):
        assert f"\n  {edge}\n" in diagram
    # The per-dataset branch is a subgraph holding exactly its steps.
    branch = diagram[diagram.index("subgraph per_dataset") : diagram.index("    end")]
    assert "bronze_step" in branch and "silver_step" in branch and "gold_step" not in branch


def test_a_new_step_and_a_new_dataset_change_the_picture_with_no_other_edit() -> None:
    report = Step(
        "Report",
        StepKind.SPARK_JOB,
        "etl.report.job",
        "Report: publish the Gold tables",
        reads=(Layer.GOLD,),
    )
    pipeline = replace(PIPELINE, steps=(*PIPELINE.steps, report))
    products = replace(ORDERS, name="products", source=replace(ORDERS.source, path="/v1/products"))
    diagram = architecture(
        Pipeline(pipeline.name, pipeline.steps, per_dataset=PIPELINE.per_dataset),
        [*registry.datasets(), products],
    )
    assert 'report_step["Report: Glue Spark job<br/>etl.report.job"]' in diagram
    assert "\n  gold_bucket --> report_step\n" in diagram
    assert f"\n  {PIPELINE.steps[-1].name.lower()}_step -.-> report_step\n" in diagram
    assert "/v1/products" in diagram and "products/ (raw JSON Lines)" in diagram
    assert "once per dataset: customers, orders, products" in diagram
