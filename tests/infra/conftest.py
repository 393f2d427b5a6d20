"""Fixtures of the infrastructure tests: the whole program run once per stack, in its own process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.stack_run import PROJECT_ROOT
from tests.infra.stacks import STACKS, StackRun


@pytest.fixture(scope="session")
def stack_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, StackRun]:
    """Both stacks, run in parallel: each process sets Pulumi's global mocks and config for itself only."""
    directory = tmp_path_factory.mktemp("stacks")
    outputs = {stack: directory / f"{stack}.json" for stack in STACKS}
    processes = {
        stack: subprocess.Popen(
            [sys.executable, "-m", "tests.infra.stack_run", stack, str(output)],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for stack, output in outputs.items()
    }
    runs = {}
    for stack, process in processes.items():
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, f"the {stack} stack failed under mocks:\n{stdout}\n{stderr}"
        runs[stack] = StackRun.from_json(Path(outputs[stack]).read_text(encoding="utf-8"))
    return runs


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest, stack_runs: dict[str, StackRun]) -> StackRun:
    """Each stack in turn."""
    run: StackRun = stack_runs[request.param]
    return run


@pytest.fixture
def dev(stack_runs: dict[str, StackRun]) -> StackRun:
    return stack_runs["dev"]


@pytest.fixture
def prod(stack_runs: dict[str, StackRun]) -> StackRun:
    return stack_runs["prod"]
