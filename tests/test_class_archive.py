"""The local JVM's class archive: where it lives, what makes it stale, one process saving it at a time.

That a run saves it and the next maps it is checked end to end (tests/test_end_to_end.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from local.class_archive import (
    ABANDONED_AFTER_SECONDS,
    ENV_CLASS_ARCHIVES,
    ClassArchive,
    archives_directory,
    class_archive,
    fingerprint,
    running,
)
from local.session import java_home


@pytest.fixture
def jdk(tmp_path: Path) -> Path:
    """A JDK's layout, as far as the archive looks at it: its release file."""
    home = tmp_path / "jdk"
    home.mkdir()
    (home / "release").write_text('JAVA_VERSION="17.0.9"\n')
    return home


@pytest.fixture
def jars(tmp_path: Path) -> list[Path]:
    made = [tmp_path / "jars" / name for name in ("spark-core.jar", "iceberg.jar")]
    made[0].parent.mkdir()
    for jar in made:
        jar.write_bytes(b"PK")
    return made


def test_archives_live_in_the_directory_named_by_the_variable_or_under_the_virtual_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV_CLASS_ARCHIVES, str(tmp_path))
    assert archives_directory() == tmp_path
    for off in ("off", "OFF", "false", "0", "no"):
        monkeypatch.setenv(ENV_CLASS_ARCHIVES, off)
        assert archives_directory() is None
    monkeypatch.delenv(ENV_CLASS_ARCHIVES)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    monkeypatch.setattr(sys, "base_prefix", "/usr")
    assert archives_directory() == tmp_path / "venv" / "var" / "lakehouse" / "class-archives"
    monkeypatch.setattr(sys, "base_prefix", str(tmp_path / "venv"))  # not a virtual environment
    assert archives_directory() is None


def test_a_new_jdk_or_a_changed_jar_gets_an_archive_of_its_own(jdk: Path, jars: list[Path]) -> None:
    before = fingerprint(str(jdk), jars)
    assert fingerprint(str(jdk), list(reversed(jars))) == before  # the order of the listing does not count
    jars[1].write_bytes(b"PK\x03")
    changed_jar = fingerprint(str(jdk), jars)
    (jdk / "release").write_text('JAVA_VERSION="17.0.10"\n')
    changed_jdk = fingerprint(str(jdk), jars)
    assert len({before, changed_jar, changed_jdk}) == 3


def test_no_archive_for_a_jdk_before_17_or_a_directory_java_cannot_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, jdk: Path, jars: list[Path]
) -> None:
    monkeypatch.setenv(ENV_CLASS_ARCHIVES, str(tmp_path / "archives"))
    archive = class_archive(str(jdk), jars)
    assert archive is not None and archive.directory.parent == tmp_path / "archives"
    monkeypatch.setenv(ENV_CLASS_ARCHIVES, str(tmp_path / "a:b"))  # ":" separates archives in Java's option
    assert class_archive(str(jdk), jars) is None
    monkeypatch.setenv(ENV_CLASS_ARCHIVES, str(tmp_path / "archives"))
    (jdk / "release").write_text('JAVA_VERSION="11.0.2"\n')
    assert class_archive(str(jdk), jars) is None
    (jdk / "release").unlink()
    assert class_archive(str(jdk), jars) is None


def saving_archive(tmp_path: Path, jdk: Path) -> ClassArchive:
    """An archive whose base is written already (no JVM needed to take the save)."""
    archive = ClassArchive(tmp_path / "archives" / "key", str(jdk))
    archive.directory.mkdir(parents=True)
    archive.base.write_bytes(b"base")
    return archive


def test_one_process_saves_at_a_time_and_an_abandoned_save_is_taken_over(tmp_path: Path, jdk: Path) -> None:
    archive = saving_archive(tmp_path, jdk)
    options = archive.begin_saving()
    assert options[:2] == [
        f"-XX:SharedArchiveFile={archive.base}",
        f"-XX:ArchiveClassesAtExit={archive.partial}",
    ]
    assert archive.saving.read_text() == str(os.getpid())
    assert archive.begin_saving() == []  # held by this process, alive
    archive.started(os.getpid(), "/jars/spark-core.jar")  # its JVM (this process stands in) started
    assert archive.begin_saving() == []  # still held
    # A process that is gone, long ago: its save is taken over.
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    archive.saving.write_text(gone.stdout.strip())
    recently = time.time() - 5
    os.utime(archive.saving, (recently, recently))
    assert archive.begin_saving() == []  # its JVM may still be writing
    long_ago = time.time() - ABANDONED_AFTER_SECONDS - 5
    os.utime(archive.saving, (long_ago, long_ago))
    assert archive.begin_saving() == options


def a_pid_that_is_gone() -> int:
    return int(
        subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True).stdout
    )


def test_a_failed_run_lets_go_of_the_save_and_a_finished_one_s_archive_waits_for_its_jvm(
    tmp_path: Path, jdk: Path
) -> None:
    archive = saving_archive(tmp_path, jdk)
    options = archive.begin_saving()
    archive.release()  # the run failed: what its JVM writes as it exits is not kept
    assert not archive.saving.exists()
    assert archive.begin_saving() == options  # the next run saves
    archive.started(os.getpid())  # a JVM that is still running (this process stands in for it)
    archive.finished()
    assert archive.saved.read_text() == f"{os.getpid()}\n" and not archive.saving.exists()
    assert archive.begin_saving() == []  # a finished run's JVM is writing the archive: nobody else saves
    archive.partial.write_bytes(b"written so far")
    assert archive.use_options() == []  # not before that JVM is gone
    assert archive.partial.exists() and archive.saved.exists()


def test_an_archive_its_jvm_left_unwritten_is_not_kept(tmp_path: Path, jdk: Path) -> None:
    archive = saving_archive(tmp_path, jdk)
    archive.begin_saving()
    archive.started(a_pid_that_is_gone())
    archive.finished()
    assert archive.use_options() == []  # Java wrote nothing (e.g. -Xshare:off among the options)
    assert not archive.saved.exists() and not archive.classes.exists()
    assert archive.begin_saving() != []  # the next run saves again


def java(*options: str) -> subprocess.CompletedProcess[str]:
    """The JDK of the local runs, started with `options` and asked for its version."""
    command = [str(Path(java_home()) / "bin" / "java"), *options, "-XX:ErrorFile=/dev/null", "-version"]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)


def save_with(archive: ClassArchive, options: list[str], class_path: Path) -> None:
    """A run's JVM that saves the classes it loaded, as it exits; the run finished."""
    java = str(Path(java_home()) / "bin" / "java")
    started = subprocess.Popen(
        [java, *options, "-cp", str(class_path), "-version"], stderr=subprocess.DEVNULL
    )
    archive.started(started.pid, str(class_path))
    archive.finished()
    assert started.wait(timeout=120) == 0


def damage(archive: Path) -> None:
    """4 KB of other bytes in the middle, the size unchanged, as a bad disk or a stray write would."""
    with archive.open("r+b") as written:
        written.seek(archive.stat().st_size // 2)
        written.write(os.urandom(4096))


def test_java_writes_the_archive_at_exit_and_only_one_java_can_map_is_kept(tmp_path: Path) -> None:
    stale = ClassArchive(tmp_path / "older", java_home())  # of other jars
    stale.directory.mkdir()
    stale.base.write_bytes(b"base")
    archive = ClassArchive(tmp_path / "current", java_home())
    options = archive.begin_saving()  # writes the base archive: the JDK from PyPI has none
    assert archive.base.stat().st_size > 1_000_000

    for harm in (
        lambda partial: partial.write_bytes(partial.read_bytes()[: partial.stat().st_size // 2]),
        damage,
    ):
        save_with(archive, options, tmp_path)
        harm(archive.partial)  # half written, or damaged
        assert archive.use_options() == []  # not kept: mapping it could crash Java
        assert not archive.classes.exists() and not archive.partial.exists() and stale.directory.exists()
        assert archive.begin_saving() == options

    save_with(archive, options, tmp_path)
    use = archive.use_options()
    assert use[0] == f"-XX:SharedArchiveFile={archive.base}:{archive.classes}"
    assert not archive.partial.exists() and not archive.saved.exists()
    assert not stale.directory.exists()  # an archive of other jars is of no use any more
    # -Xshare:on: Java stops rather than going on without the archives.
    assert java(*use, "-cp", str(tmp_path), "-Xshare:on").returncode == 0
    # Damaged after it was kept: its checksums fail, and Java goes on without it (no crash).
    damage(archive.classes)
    assert java(*use, "-cp", str(tmp_path), "-Xshare:on").returncode == 1
    assert java(*use, "-cp", str(tmp_path)).returncode == 0


# Writes a damaged archive where this JDK's and jars' would be, then starts a session.
START_FROM_A_DAMAGED_ARCHIVE = """
import sys
from local.class_archive import class_archive
from local.session import build_session, iceberg_conf, java_home, spark_jars

archive = class_archive(java_home(), spark_jars(iceberg_conf()))
archive.directory.mkdir(parents=True)
archive.base.write_bytes(b"damaged")
archive.classes.write_bytes(b"damaged")
spark = build_session(sys.argv[1])
print(spark.range(3).count(), archive.directory.exists())
"""


def test_a_session_java_cannot_start_from_its_archive_starts_without_it_and_the_archive_goes(
    tmp_path: Path,
) -> None:
    assert java(f"-XX:SharedArchiveFile={tmp_path / 'a.jsa'}:{tmp_path / 'b.jsa'}").returncode == 0  # absent
    (tmp_path / "a.jsa").write_bytes(b"damaged")
    assert java(f"-XX:SharedArchiveFile={tmp_path / 'a.jsa'}:{tmp_path / 'a.jsa'}").returncode == 1
    started = subprocess.run(
        [sys.executable, "-c", START_FROM_A_DAMAGED_ARCHIVE, str(tmp_path / "warehouse")],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            ENV_CLASS_ARCHIVES: str(tmp_path / "archives"),
            "PYTHONPATH": str(Path(__file__).parent.parent),
        },
        timeout=300,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    # Java's own words come first (on standard output): "Unable to read header from shared archive".
    assert "Unable to read header from shared archive" in started.stdout
    assert started.stdout.splitlines()[-1].split() == ["3", "False"]
    assert "Java did not start from the class archive in " in started.stderr
    assert "the next `lakehouse run` saves a new one" in started.stderr


def test_a_process_that_exited_is_not_running_even_before_it_is_reaped() -> None:
    assert running(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 60
    while running(child.pid):  # a zombie once it exits: this process has not waited for it yet
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert Path(f"/proc/{child.pid}").exists()
    child.wait()
    assert not running(child.pid) and not running(a_pid_that_is_gone()) and not running(0)
