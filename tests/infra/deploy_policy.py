"""Write the deploy role's policy of each stack to docs/deploy-policy/<stack>.json (`make deploy-policy`).

Run as `python -m tests.infra.deploy_policy [stack ...]` (default: dev and prod). Each stack's program runs
under the same mocks as the infrastructure tests; the resource types it declares decide the policy
(components/deploy_policy.py). tests/infra/test_deploy_policy.py fails when a committed file is not current.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from components.deploy_policy import StackTarget, deploy_policy
from components.naming import Naming
from tests.infra.stack_run import PROJECT, PROJECT_ROOT, stack_config
from tests.infra.stacks import STACKS, StackRun

POLICY_DIRECTORY = PROJECT_ROOT / "docs" / "deploy-policy"


def policy_file(stack: str) -> Path:
    return POLICY_DIRECTORY / f"{stack}.json"


def stack_target(stack: str) -> StackTarget:
    return StackTarget(Naming(PROJECT, stack), region=stack_config(stack)["aws:region"])


def policy_of(run: StackRun) -> dict[str, Any]:
    """The deploy policy of what `run` declared."""
    return deploy_policy((resource.type for resource in run.resources), stack_target(run.stack))


def policy_text(policy: dict[str, Any]) -> str:
    return json.dumps(policy, indent=2) + "\n"


def run_under_mocks(stack: str) -> StackRun:
    """Run the whole program for `stack` under mocks, in its own process (Pulumi's state is global)."""
    with tempfile.TemporaryDirectory() as directory:
        output = Path(directory) / f"{stack}.json"
        completed = subprocess.run(
            [sys.executable, "-m", "tests.infra.stack_run", stack, str(output)],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if completed.returncode != 0:
            raise SystemExit(f"the {stack} stack failed under mocks:\n{completed.stdout}\n{completed.stderr}")
        return StackRun.from_json(output.read_text(encoding="utf-8"))


def main(argv: list[str]) -> None:
    POLICY_DIRECTORY.mkdir(parents=True, exist_ok=True)
    for stack in argv or STACKS:
        path = policy_file(stack)
        path.write_text(policy_text(policy_of(run_under_mocks(stack))), encoding="utf-8")
        print(f"wrote {path.relative_to(PROJECT_ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
