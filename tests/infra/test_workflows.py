"""The GitHub Actions workflows: actionlint-clean, and wired as documented (tests, previews, deploys)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import declared_keys
from tests.infra.stack_run import PROJECT, PROJECT_ROOT
from tests.infra.stacks import STACKS

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
# Stacks are named in full, organisation from a repository variable: `<org>/lakehouse/<stack>`.
QUALIFIER = f"${{{{ vars.PULUMI_ORG }}}}/{PROJECT}"
# What every Pulumi step hands the CLI, so both Pulumi Cloud and a self-managed backend work.
BACKEND_URL = "${{ vars.PULUMI_BACKEND_URL }}"
PULUMI_ENVIRONMENT = {
    "PULUMI_ACCESS_TOKEN": "${{ secrets.PULUMI_ACCESS_TOKEN }}",
    "PULUMI_CONFIG_PASSPHRASE": "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}",
}
# The stack file a stack name selects: Pulumi.<stack>.yaml.
STACK_FILES = {stack: PROJECT_ROOT / f"Pulumi.{stack}.yaml" for stack in STACKS}


def _actionlint() -> str:
    """The actionlint that requirements-dev.txt installs next to the interpreter, else one on PATH."""
    candidate = Path(sys.executable).parent / "actionlint"
    found = str(candidate) if candidate.is_file() else shutil.which("actionlint")
    if found is None:
        if sys.platform == "darwin":
            pytest.skip("no actionlint wheel for macOS: `brew install actionlint` to run this check")
        pytest.fail("actionlint is missing: run `make setup`")
    return found


def _lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        # The run steps are one-liners: shellcheck and pyflakes stay off, so results do not vary by machine.
        [_actionlint(), "-no-color", "-oneline", "-shellcheck=", "-pyflakes=", *map(str, paths)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _workflow(name: str) -> dict[str, Any]:
    document: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    return {("on" if key is True else key): value for key, value in document.items()}


def _steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in job.get("steps", []) if str(step.get("uses", "")).startswith(f"{action}@")]


def test_actionlint_accepts_every_workflow() -> None:
    workflows = sorted(WORKFLOWS.glob("*.yml"))
    assert len(workflows) == 4
    result = _lint(*workflows)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.no_such_property }}\n",
        encoding="utf-8",
    )
    assert _lint(broken).returncode == 1


def test_tests_run_on_every_pull_request() -> None:
    ci = _workflow("ci.yml")
    assert "pull_request" in ci["on"]
    (job,) = ci["jobs"].values()
    assert job["steps"][-1]["run"] == ".ci/run"


def test_pull_requests_get_a_preview_of_each_stack_as_a_comment() -> None:
    preview = _workflow("preview.yml")
    assert set(preview["on"]) == {"pull_request"}
    job = preview["jobs"]["preview"]
    assert job["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    (pulumi,) = _steps_using(job, "pulumi/actions")
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["stack-name"] == f"{QUALIFIER}/${{{{ matrix.stack }}}}"
    assert pulumi["with"]["comment-on-pr"] is True
    assert preview["permissions"]["pull-requests"] == "write"


def test_main_deploys_dev_then_prod_behind_an_approval() -> None:
    deploy = _workflow("deploy.yml")
    assert deploy["on"]["push"]["branches"] == ["main"]
    jobs = deploy["jobs"]
    assert jobs["dev"]["needs"] == "test" and jobs["prod"]["needs"] == "dev"
    assert jobs["dev"]["with"] == {"stack": "dev", "environment": "dev"}
    # Required reviewers on the `production` environment are the manual approval.
    assert jobs["prod"]["with"] == {"stack": "prod", "environment": "production"}
    up = _workflow("pulumi-up.yml")["jobs"]["up"]
    assert up["environment"] == "${{ inputs.environment }}"
    (pulumi,) = _steps_using(up, "pulumi/actions")
    assert pulumi["with"]["command"] == "up"


@pytest.mark.parametrize("name", ["preview.yml", "pulumi-up.yml"])
def test_aws_access_is_an_oidc_role_never_a_stored_key(name: str) -> None:
    workflow = _workflow(name)
    assert workflow["permissions"]["id-token"] == "write"
    (job,) = workflow["jobs"].values()
    (credentials,) = _steps_using(job, "aws-actions/configure-aws-credentials")
    assert credentials["with"]["role-to-assume"].startswith("${{ vars.")
    text = (WORKFLOWS / name).read_text(encoding="utf-8")
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text


def _pulumi_steps() -> list[tuple[str, dict[str, Any]]]:
    """(workflow, step) of every step that runs the Pulumi CLI."""
    found: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job in _workflow(path.name)["jobs"].values():
            found.extend((path.name, step) for step in _steps_using(job, "pulumi/actions"))
    return found


def _deployed_stacks() -> set[str]:
    """The stacks the workflows preview and deploy."""
    preview = _workflow("preview.yml")["jobs"]["preview"]["strategy"]["matrix"]["stack"]
    deploy = [job["with"]["stack"] for job in _workflow("deploy.yml")["jobs"].values() if "with" in job]
    return {*preview, *deploy}


def _ci_section() -> str:
    guide = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    return guide.split("### Continuous delivery", 1)[1].split("\n### ", 1)[0]


def test_pulumi_runs_in_two_workflows() -> None:
    assert sorted(name for name, _ in _pulumi_steps()) == ["preview.yml", "pulumi-up.yml"]


def test_every_stack_is_named_in_full_with_the_organisation_from_a_repository_variable() -> None:
    project = yaml.safe_load((PROJECT_ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))["name"]
    assert project == PROJECT
    for name, step in _pulumi_steps():
        stack_name = step["with"]["stack-name"]
        assert stack_name.startswith(f"{QUALIFIER}/"), f"{name}: {stack_name}"
        # org/project/stack: exactly three parts, the last one the workflow's stack.
        assert len(stack_name.split("/")) == 3, f"{name}: {stack_name}"


def test_a_fork_without_an_organisation_fails_at_once_saying_which_variable_to_set() -> None:
    for name, _ in _pulumi_steps():
        (job,) = _workflow(name)["jobs"].values()
        first = job["steps"][0]
        assert first["if"] == "vars.PULUMI_ORG == ''", name
        assert "PULUMI_ORG" in first["run"] and "exit 1" in first["run"], name


def test_every_pulumi_step_works_with_pulumi_cloud_and_a_self_managed_backend() -> None:
    for name, step in _pulumi_steps():
        assert step["with"]["cloud-url"] == BACKEND_URL, name
        assert step["env"] == PULUMI_ENVIRONMENT, name


def test_the_workflows_deploy_the_stacks_the_repository_has() -> None:
    assert _deployed_stacks() == set(STACKS)
    for stack in STACKS:
        assert STACK_FILES[stack].is_file(), stack


@pytest.mark.parametrize("stack", STACKS)
def test_every_required_config_key_is_in_the_stack_file_or_set_as_the_guide_says(stack: str) -> None:
    document = yaml.safe_load(STACK_FILES[stack].read_text(encoding="utf-8"))
    config = document["config"]
    assert "aws:region" in config
    guide = _ci_section()
    for key in declared_keys().values():
        if key.has_default:
            continue
        value = config.get(f"{PROJECT}:{key.name}")
        if key.secret:
            # Committed only encrypted (`pulumi config set --secret` writes `secure:`), never in clear text.
            assert value is None or (isinstance(value, dict) and set(value) == {"secure"}), key.name
            # Until then, the guide says how the encrypted value gets into the stack file CI checks out.
            command = f"pulumi config set --secret {key.name} --stack <org>/{PROJECT}/{stack}"
            assert value is not None or command in guide, f"{key.name}: the guide must show `{command}`"
        else:
            assert value not in (None, ""), f"{key.name} must be set in {STACK_FILES[stack].name}"


def _environment_reads(path: Path) -> set[str]:
    """Names of environment variables a module reads (os.environ[...], .get(...), os.getenv(...))."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        target: ast.expr | None = None
        if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            target = node.slice
        elif isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.get", "os.getenv"):
            target = node.args[0] if node.args else None
        if target is not None:
            names.add(ast.unparse(target).strip("'\""))
    return names


def test_the_environment_reader_finds_reads(tmp_path: Path) -> None:
    module = tmp_path / "environment_reads.py"
    module.write_text("import os\nos.environ['A']\nos.environ.get('B')\nos.getenv('C', '')\n", "utf-8")
    assert _environment_reads(module) == {"A", "B", "C"}


def test_every_environment_variable_the_program_reads_is_passed() -> None:
    modules = [PROJECT_ROOT / "__main__.py", *sorted((PROJECT_ROOT / "components").glob("*.py"))]
    read = set().union(*map(_environment_reads, modules))
    for name, step in _pulumi_steps():
        assert read <= set(step["env"]), f"{name} does not pass {sorted(read - set(step['env']))}"


def test_every_variable_and_secret_the_workflows_use_is_in_the_guide() -> None:
    used = set()
    for path in WORKFLOWS.glob("*.yml"):
        used |= set(re.findall(r"\$\{\{\s*(?:vars|secrets)\.(\w+)", path.read_text(encoding="utf-8")))
    used.discard("GITHUB_TOKEN")  # GitHub provides it.
    assert {"PULUMI_ORG", "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "AWS_DEPLOY_ROLE_ARN"} <= used
    guide = _ci_section()
    assert not [name for name in sorted(used) if f"`{name}`" not in guide]
