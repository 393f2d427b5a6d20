"""The local SparkSession: options given in the environment reach the JVM it starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from local.session import ENV_DRIVER_MEMORY, ENV_JAVA_OPTIONS, LOG4J_CONFIG, SparkSetupError, java_options


def test_java_options_keep_the_log_configuration_and_add_the_environment_s_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ENV_JAVA_OPTIONS, raising=False)
    assert java_options() == [f"-Dlog4j2.configurationFile=file:{LOG4J_CONFIG}"]
    monkeypatch.setenv(ENV_JAVA_OPTIONS, " -XX:TieredStopAtLevel=1  '-Dlakehouse.probe=two words' ")
    assert java_options()[1:] == ["-XX:TieredStopAtLevel=1", "-Dlakehouse.probe=two words"]


# What the JVM of a session built with $LAKEHOUSE_SPARK_JAVA_OPTIONS was started with.
JVM_ARGUMENTS = """
import sys
from local.session import build_session
spark = build_session(sys.argv[1], app_name="java-options")
jvm = spark.sparkContext._jvm
print(jvm.java.lang.System.getProperty("lakehouse.probe"))
print("\\n".join(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()))
"""


@pytest.mark.spark
def test_the_environment_s_java_options_reach_the_local_jvm(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", JVM_ARGUMENTS, str(tmp_path / "warehouse")],
        cwd=Path(__file__).resolve().parents[1],
        env={
            **os.environ,
            ENV_JAVA_OPTIONS: "'-Dlakehouse.probe=reached in two words' -XX:TieredStopAtLevel=1",
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    probe, *arguments = done.stdout.splitlines()
    assert probe == "reached in two words"  # quoted, as a shell would
    assert "-XX:TieredStopAtLevel=1" in arguments
    assert f"-Dlog4j2.configurationFile=file:{LOG4J_CONFIG}" in arguments


def test_an_option_java_refuses_is_named_with_the_variable_that_gave_it(tmp_path: Path) -> None:
    # Spark starts Java with -XX:+IgnoreUnrecognizedVMOptions: a misspelt -XX option is ignored, a value
    # Java cannot read stops it.
    (tmp_path / "warehouse").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "local", "query", "SELECT 1", "--data-dir", str(tmp_path)],
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, ENV_JAVA_OPTIONS: "-Xss1q"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "Invalid thread stack size: -Xss1q" in done.stderr  # Java's own words
    assert f"error: Java did not start with {ENV_JAVA_OPTIONS}='-Xss1q': fix or unset it" in done.stderr


def test_the_heap_is_set_by_its_own_variable_not_by_java_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_JAVA_OPTIONS, "-XX:TieredStopAtLevel=1 -Xmx2g")
    with pytest.raises(SparkSetupError, match=f"sets the heap with -Xmx, .*: set {ENV_DRIVER_MEMORY} "):
        java_options()
