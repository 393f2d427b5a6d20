"""Athena for analysts: each stack's enforced workgroup, named queries and analyst policy; Lake Formation."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from parliament import analyze_policy_string
from sqlglot import exp

from components.deploy_policy import deploy_policy
from components.named_queries import saved_queries
from etl.registry import datasets, gold_tables
from etl.tables import TableDefinition
from tests.infra.deploy_policy import stack_target
from tests.infra.stack_run import ACCOUNT_ID, PROJECT_ROOT
from tests.infra.stacks import STACKS, StackRun, as_list, statements
from tests.infra.test_deploy_policy import (  # noqa: F401 (a fixture)
    INLINE_POLICY_LIMIT,
    lint_knows_newer_actions,
)

MIB = 1024 * 1024
CUTOFF_MB = {"dev": 1024, "prod": 102400}
RESULT_DAYS = {"dev": 7, "prod": 30}
REGION = "eu-west-1"
LEFT_OUT = shutil.ignore_patterns(
    ".venv", ".git", "data", "build", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"
)
READERS = (
    f"arn:aws:iam::{ACCOUNT_ID}:role/analysts",
    f"arn:aws:iam::{ACCOUNT_ID}:user/jane",
)


def run_stack(stack: str, output: Path, cwd: Path = PROJECT_ROOT, **overrides: str) -> StackRun:
    """The whole program for `stack` under mocks, in its own process, with config keys overridden."""
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.infra.stack_run",
            stack,
            str(output),
            *(f"lakehouse:{key}={value}" for key, value in overrides.items()),
        ],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(cwd)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return StackRun.from_json(output.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def lake_formation(tmp_path_factory: pytest.TempPathFactory) -> StackRun:
    """The dev stack in Lake Formation mode, with two readers."""
    output = tmp_path_factory.mktemp("lake-formation") / "dev.json"
    return run_stack("dev", output, lakeFormation="true", lakeFormationReaders=" , ".join(READERS))


def _analyst_policy(stack: StackRun) -> list[dict[str, Any]]:
    (policy,) = stack.of_type("aws:iam/policy:Policy")
    assert policy.outputs["arn"] == stack.outputs["analystPolicyArn"]
    return statements(json.loads(policy.inputs["policy"]))


def _granted(stack: StackRun) -> dict[str, set[str]]:
    granted: dict[str, set[str]] = {}
    for statement in _analyst_policy(stack):
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            granted.setdefault(action, set()).update(as_list(statement["Resource"]))
    return granted


def _arn(stack: StackRun, service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:{resource}"


def test_each_stack_has_an_enforced_engine_3_workgroup_writing_encrypted_results(stack: StackRun) -> None:
    (workgroup,) = stack.of_type("aws:athena/workgroup:Workgroup")
    results_bucket = stack.outputs["bucketNames"]["athenaResults"]
    (encryption,) = stack.attached_to_bucket(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        results_bucket,
    )
    results_key = encryption.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"]
    assert workgroup.inputs["name"] == stack.outputs["athenaWorkgroup"] == f"lakehouse-{stack.stack}-analysts"
    assert workgroup.inputs["state"] == "ENABLED"
    assert workgroup.inputs["configuration"] == {
        "enforceWorkgroupConfiguration": True,
        "engineVersion": {"selectedEngineVersion": "Athena engine version 3"},
        "bytesScannedCutoffPerQuery": CUTOFF_MB[stack.stack] * MIB,
        "publishCloudwatchMetricsEnabled": True,
        "resultConfiguration": {
            "outputLocation": f"s3://{results_bucket}/results/",
            "encryptionConfiguration": {"encryptionOption": "SSE_KMS", "kmsKeyArn": results_key},
        },
    }
    # The results have a key of their own: no layer's key encrypts them.
    layer_keys = {
        r.inputs["rules"][0]["applyServerSideEncryptionByDefault"].get("kmsMasterKeyId")
        for r in stack.of_type(
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
        )
        if r is not encryption
    }
    assert results_key not in layer_keys


def test_query_results_expire_after_the_configured_days(stack: StackRun) -> None:
    (lifecycle,) = stack.attached_to_bucket(
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        stack.outputs["bucketNames"]["athenaResults"],
    )
    rules = {rule["id"]: rule for rule in lifecycle.inputs["rules"]}
    assert rules["expire-results"]["filter"] == {"prefix": "results/"}
    assert rules["expire-results"]["expiration"] == {"days": RESULT_DAYS[stack.stack]}
    assert rules["expire-results"]["noncurrentVersionExpiration"] == {"noncurrentDays": 1}


def _referenced_columns(sql: str) -> tuple[tuple[str, str], set[str]]:
    """(database, table) the query reads, and the columns it names that are not its own aliases."""
    tree = sqlglot.parse_one(sql, read="athena")
    (table,) = list(tree.find_all(exp.Table))
    aliases = {alias.alias for alias in tree.find_all(exp.Alias)}
    return (table.db, table.name), {column.name for column in tree.find_all(exp.Column)} - aliases


def _check_query(query: dict[str, Any], table: TableDefinition, database: str) -> None:
    (read_database, read_table), columns = _referenced_columns(query["query"])
    assert (read_database, read_table) == (database, table.name)
    assert query["database"] == database
    assert columns and columns <= set(table.column_names), columns - set(table.column_names)


def test_one_named_query_per_gold_table_and_per_dataset_quarantine_report(stack: StackRun) -> None:
    databases = stack.outputs["databaseNames"]
    queries = {q.inputs["name"]: q.inputs for q in stack.of_type("aws:athena/namedQuery:NamedQuery")}
    expected_gold = {f"{databases['gold']}.{table.name}": table for table in gold_tables()}
    expected_reports = {
        f"{databases['silver']}.{d.name}_quarantine by reason": d.quarantine_table for d in datasets()
    }
    assert set(queries) == set(expected_gold) | set(expected_reports)
    assert {q["workgroup"] for q in queries.values()} == {stack.outputs["athenaWorkgroup"]}
    for name, table in expected_gold.items():
        _check_query(queries[name], table, databases["gold"])
        # A first look: every column, a bounded number of rows.
        assert _referenced_columns(queries[name]["query"])[1] == set(table.column_names)
        assert queries[name]["query"].rstrip().endswith("LIMIT 100")
    for name, table in expected_reports.items():
        _check_query(queries[name], table, databases["silver"])
        assert "GROUP BY reason" in queries[name]["query"]


def test_the_query_check_catches_a_column_the_table_lacks() -> None:
    (table,) = [t for t in gold_tables() if t.name == "daily_sales"]
    query = {"database": "db", "query": 'SELECT order_date, margin FROM "db"."daily_sales"'}
    with pytest.raises(AssertionError, match="margin"):
        _check_query(query, table, "db")


def test_a_gold_model_added_under_datasets_gets_its_named_query_with_no_other_edit(tmp_path: Path) -> None:
    project = tmp_path / "lakehouse"
    shutil.copytree(PROJECT_ROOT, project, ignore=LEFT_OUT)
    gold = project / "datasets" / "gold"
    (gold / "orders_per_status.py").write_text(
        '"""gold.orders_per_status: orders per status."""\n\n'
        "from etl.dataset import GoldModel\n"
        "from etl.tables import Column, Layer, TableDefinition\n\n"
        "MODEL = GoldModel(\n"
        "    table=TableDefinition(\n"
        '        layer=Layer.GOLD,\n        name="orders_per_status",\n        comment="Orders per status",\n'
        '        columns=(Column("status", "STRING", "Status"), Column("orders", "BIGINT", "Orders")),\n'
        "    ),\n"
        '    reads=("orders",),\n)\n',
        encoding="utf-8",
    )
    (gold / "orders_per_status.sql").write_text(
        "SELECT status, COUNT(*) AS orders FROM silver_orders GROUP BY status\n", encoding="utf-8"
    )
    stack = run_stack("dev", tmp_path / "dev.json", cwd=project)
    queries = {q.inputs["name"]: q.inputs for q in stack.of_type("aws:athena/namedQuery:NamedQuery")}
    added = queries["lakehouse_dev_gold.orders_per_status"]
    assert _referenced_columns(added["query"]) == (
        ("lakehouse_dev_gold", "orders_per_status"),
        {"status", "orders"},
    )
    assert len(queries) == len(gold_tables()) + len(datasets()) + 1
    # The analyst policy reads Gold by database, so the new table is readable with no change to it.
    assert (
        f"arn:aws:glue:{REGION}:{ACCOUNT_ID}:table/lakehouse_dev_gold/*" in _granted(stack)["glue:GetTable"]
    )


def test_saved_queries_follow_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    import components.named_queries as named_queries

    extra = TableDefinition(
        layer=gold_tables()[0].layer, name="extra", comment="An extra table", columns=gold_tables()[0].columns
    )
    monkeypatch.setattr(named_queries, "gold_tables", lambda: (*gold_tables(), extra))
    names = [query.name for query in saved_queries("g", "s")]
    assert "g.extra" in names
    assert len(names) == len(gold_tables()) + 1 + len(datasets())


ANALYST_ACTIONS = {
    "athena:StartQueryExecution",
    "athena:StopQueryExecution",
    "athena:GetQueryExecution",
    "athena:BatchGetQueryExecution",
    "athena:ListQueryExecutions",
    "athena:GetQueryResults",
    "athena:GetQueryRuntimeStatistics",
    "athena:GetWorkGroup",
    "athena:ListNamedQueries",
    "athena:GetNamedQuery",
    "athena:BatchGetNamedQuery",
    "athena:GetDataCatalog",
    "athena:ListDatabases",
    "athena:GetDatabase",
    "athena:ListTableMetadata",
    "athena:GetTableMetadata",
    "glue:GetDatabase",
    "glue:GetTable",
    "glue:GetTables",
    "glue:GetPartition",
    "glue:GetPartitions",
    "s3:ListBucket",
    "s3:GetBucketLocation",
    "s3:ListBucketMultipartUploads",
    "s3:GetObject",
    "s3:PutObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
    "kms:Decrypt",
    "kms:GenerateDataKey",
}


def test_the_analyst_may_query_the_workgroup_and_read_gold_and_nothing_else(stack: StackRun) -> None:
    granted = _granted(stack)
    assert set(granted) == ANALYST_ACTIONS
    buckets = stack.outputs["bucketNames"]
    gold, results = f"arn:aws:s3:::{buckets['gold']}", f"arn:aws:s3:::{buckets['athenaResults']}"
    workgroup = _arn(stack, "athena", f"workgroup/{stack.outputs['athenaWorkgroup']}")
    database = stack.outputs["databaseNames"]["gold"]
    for action in ANALYST_ACTIONS:
        if action.startswith("athena:") and "Data" not in action and "Table" not in action:
            assert granted[action] == {workgroup}, action
    assert granted["athena:GetTableMetadata"] == {_arn(stack, "athena", "datacatalog/AwsDataCatalog")}
    for action in (a for a in ANALYST_ACTIONS if a.startswith("glue:")):
        assert granted[action] == {
            _arn(stack, "glue", "catalog"),
            _arn(stack, "glue", f"database/{database}"),
            _arn(stack, "glue", f"table/{database}/*"),
        }, action
    assert granted["s3:GetObject"] == {f"{gold}/warehouse/*", f"{results}/results/*"}
    assert granted["s3:PutObject"] == {f"{results}/results/*"}
    assert granted["s3:ListBucket"] == {gold, results}
    # No other layer, no Silver, no artifacts: only Gold and the results.
    others = {name for role, name in buckets.items() if role not in ("gold", "athenaResults")}
    assert not any(name in arn for arns in granted.values() for arn in arns for name in others)


def test_the_analyst_uses_keys_only_through_s3_gold_to_read_results_to_write(stack: StackRun) -> None:
    keys = {}
    for statement in _analyst_policy(stack):
        if any(a.startswith("kms:") for a in as_list(statement["Action"])):
            assert statement["Condition"] == {
                "StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
            }
            for resource in as_list(statement["Resource"]):
                keys[resource] = set(as_list(statement["Action"]))
    gold_key = stack.one("aws:kms/key:Key", "gold-key").outputs["arn"]
    results_key = stack.one("aws:kms/key:Key", "analytics-results-key").outputs["arn"]
    assert keys == {gold_key: {"kms:Decrypt"}, results_key: {"kms:Decrypt", "kms:GenerateDataKey"}}


def test_the_analyst_policy_is_parliament_clean_in_both_modes(
    stack: StackRun, lake_formation: StackRun
) -> None:
    for run in (stack, lake_formation):
        (policy,) = run.of_type("aws:iam/policy:Policy")
        findings = analyze_policy_string(policy.inputs["policy"]).findings
        assert not findings, [(f.issue, f.detail) for f in findings]
        assert policy.inputs["path"] == f"/lakehouse/{run.stack}/"


def test_without_lake_formation_nothing_is_registered_or_granted(stack: StackRun) -> None:
    assert not [r for r in stack.resources if r.type.startswith("aws:lakeformation/")]
    assert "lakeformation:GetDataAccess" not in _granted(stack)


def test_with_lake_formation_analysts_read_gold_only_through_it(lake_formation: StackRun) -> None:
    granted = _granted(lake_formation)
    assert set(granted) == (ANALYST_ACTIONS | {"lakeformation:GetDataAccess"})
    gold = f"arn:aws:s3:::{lake_formation.outputs['bucketNames']['gold']}"
    # No S3 or KMS permission on Gold itself: Lake Formation's credentials are the only way in.
    assert not any(arn.startswith(gold) for arns in granted.values() for arn in arns)
    gold_key = lake_formation.one("aws:kms/key:Key", "gold-key").outputs["arn"]
    assert gold_key not in granted["kms:Decrypt"]


def _grants(run: StackRun) -> dict[tuple[str, str], set[str]]:
    """(principal, what) -> permissions; what: `location:<arn>`, `database:<name>` or `tables:<database>`."""
    grants: dict[tuple[str, str], set[str]] = {}
    for grant in run.of_type("aws:lakeformation/permissions:Permissions"):
        inputs = grant.inputs
        if "dataLocation" in inputs:
            what = f"location:{inputs['dataLocation']['arn']}"
        elif "database" in inputs:
            what = f"database:{inputs['database']['name']}"
        else:
            assert inputs["table"]["wildcard"] is True and "name" not in inputs["table"]
            what = f"tables:{inputs['table']['databaseName']}"
        key = (inputs["principal"], what)
        assert key not in grants, f"two grants for {key}"
        grants[key] = set(inputs["permissions"])
    return grants


def test_lake_formation_registers_the_table_layers_with_a_read_only_role(lake_formation: StackRun) -> None:
    buckets = lake_formation.outputs["bucketNames"]
    locations = {
        r.inputs["arn"]: r.inputs for r in lake_formation.of_type("aws:lakeformation/resource:Resource")
    }
    assert set(locations) == {f"arn:aws:s3:::{buckets[layer]}/warehouse" for layer in ("silver", "gold")}
    (role,) = [r for r in lake_formation.of_type("aws:iam/role:Role") if r.name.startswith("analytics-")]
    assert {location["roleArn"] for location in locations.values()} == {role.outputs["arn"]}
    (trust,) = statements(json.loads(role.inputs["assumeRolePolicy"]))
    assert trust["Principal"] == {"Service": "lakeformation.amazonaws.com"}
    policy = lake_formation.one(
        "aws:iam/rolePolicy:RolePolicy", "analytics-lake-formation-data-access-policy"
    )
    actions = {a for s in statements(json.loads(policy.inputs["policy"])) for a in as_list(s["Action"])}
    assert actions == {"s3:ListBucket", "s3:GetBucketLocation", "s3:GetObject", "kms:Decrypt"}
    findings = analyze_policy_string(policy.inputs["policy"]).findings
    assert not findings, [(f.issue, f.detail) for f in findings]


def test_lake_formation_grants_readers_gold_and_each_job_its_own_layers(lake_formation: StackRun) -> None:
    databases = lake_formation.outputs["databaseNames"]
    buckets = lake_formation.outputs["bucketNames"]
    roles = {r.name: r.outputs["arn"] for r in lake_formation.of_type("aws:iam/role:Role")}
    silver_job, gold_job = roles["medallion-silver-role"], roles["medallion-gold-role"]
    audit_job = roles["medallion-audit-role"]
    read = {"SELECT", "DESCRIBE"}
    write = {"SELECT", "INSERT", "DELETE", "ALTER", "DESCRIBE"}
    expected = {
        **{
            grant: permissions
            for reader in READERS
            for grant, permissions in (
                ((reader, f"database:{databases['gold']}"), {"DESCRIBE"}),
                ((reader, f"tables:{databases['gold']}"), read),
            )
        },
        (silver_job, f"location:arn:aws:s3:::{buckets['silver']}/warehouse"): {"DATA_LOCATION_ACCESS"},
        (silver_job, f"database:{databases['silver']}"): {"CREATE_TABLE", "DESCRIBE"},
        (silver_job, f"tables:{databases['silver']}"): write,
        (gold_job, f"location:arn:aws:s3:::{buckets['gold']}/warehouse"): {"DATA_LOCATION_ACCESS"},
        (gold_job, f"database:{databases['gold']}"): {"CREATE_TABLE", "DESCRIBE"},
        (gold_job, f"tables:{databases['gold']}"): write,
        (gold_job, f"database:{databases['silver']}"): {"DESCRIBE"},
        (gold_job, f"tables:{databases['silver']}"): read,
        # Publishing a run's branch commits to every Silver and Gold table.
        **{
            grant: permissions
            for layer in ("silver", "gold")
            for grant, permissions in (
                ((audit_job, f"location:arn:aws:s3:::{buckets[layer]}/warehouse"), {"DATA_LOCATION_ACCESS"}),
                ((audit_job, f"database:{databases[layer]}"), {"CREATE_TABLE", "DESCRIBE"}),
                ((audit_job, f"tables:{databases[layer]}"), write),
            )
        },
    }
    assert _grants(lake_formation) == expected


@pytest.mark.parametrize("stack_name", STACKS)
def test_the_deploy_policy_of_lake_formation_mode_is_clean_and_fits(
    stack_name: str,
    tmp_path: Path,
    lint_knows_newer_actions: None,  # noqa: F811
) -> None:
    run = run_stack(stack_name, tmp_path / f"{stack_name}.json", lakeFormation="true")
    policy = deploy_policy((r.type for r in run.resources), stack_target(stack_name))
    findings = analyze_policy_string(json.dumps(policy)).findings
    assert not findings, [(f.issue, f.detail) for f in findings]
    sids = {s["Sid"]: s for s in statements(policy)}
    assert (
        "lakeformation.amazonaws.com"
        in sids["PassStackRoles"]["Condition"]["StringEquals"]["iam:PassedToService"]
    )
    # The inline policy limit of the deploy role (prod in this mode comes within a hundred characters).
    assert len(json.dumps(policy, separators=(",", ":"))) <= INLINE_POLICY_LIMIT
