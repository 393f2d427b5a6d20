"""The GitHub Actions workflows: actionlint-clean, and wired as documented (tests, previews, deploys)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.stack_run import PROJECT_ROOT

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"


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
    assert pulumi["with"]["stack-name"] == "${{ matrix.stack }}"
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
