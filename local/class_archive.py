"""Class data sharing for the local JVM: the classes a pipeline run loads, saved once, mapped by every
later JVM instead of being loaded from the jars again (docs/benchmarks.md, "A fresh run's JVM").

The first `lakehouse run` in a virtual environment has its JVM save the archive as it exits, in the
background, after the run's summary (about 15 s); the next JVM to start checks it and keeps it, and every
local JVM after that (runs, queries, audits) starts from it. An archive belongs to one JDK and one set of
jars: its directory is named by their fingerprint, so an upgrade makes a new one. Java checks that an
archive matches its JDK and class path, and its checksums, and goes on without one that fails, in
silence. An archive is kept only once a JVM has started from it, and a session that cannot start from one
anyway starts without it and removes it (local/session.py). Nothing but
start-up time depends on it: `LAKEHOUSE_SPARK_CLASS_ARCHIVES=off` turns it off, a directory keeps the
archives there instead of in the virtual environment.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ENV_CLASS_ARCHIVES = "LAKEHOUSE_SPARK_CLASS_ARCHIVES"
OFF = "off"
# Dynamic archives on top of a base one, written at exit, as JDK 17 has them.
MIN_JAVA = 17
# Java reports an archive that does not match (another JDK, a changed jar) and goes on without it: not
# the user's concern, so not on their terminal.
QUIET = ["-Xlog:cds=off", "-Xlog:cds+dynamic=off"]
# Archives carry checksums, which every JVM checks as it maps them: a damaged one is not used (Java does
# not check an archive's contents otherwise, and a damaged one crashed it in trials). About 0.1 s a start.
CHECKED = ["-XX:+VerifySharedSpaces", *QUIET]
# Spellings of "off" in $LAKEHOUSE_SPARK_CLASS_ARCHIVES (any other value is a directory).
OFF_VALUES = frozenset({"off", "false", "no", "0"})
# A save whose JVM is gone without its run finishing (a crash) is taken over after this long; a saved
# archive whose JVM's pid is still in use after it is another process's pid.
ABANDONED_AFTER_SECONDS = 600.0
# How long Java may take to write the base archive, or to start from a saved one.
JAVA_TIMEOUT_SECONDS = 300.0


def archives_directory() -> Path | None:
    """Where the archives live: $LAKEHOUSE_SPARK_CLASS_ARCHIVES, else under the virtual environment;
    None when off, or outside a virtual environment (nothing of this project's to write into)."""
    configured = os.environ.get(ENV_CLASS_ARCHIVES)
    if configured:
        return None if configured.strip().lower() in OFF_VALUES else Path(configured)
    if sys.prefix == sys.base_prefix:
        return None
    return Path(sys.prefix) / "var" / "lakehouse" / "class-archives"


def java_major(java_home: str) -> int | None:
    """The JDK's major version, from its `release` file; None when it cannot be told."""
    with contextlib.suppress(OSError):
        found = re.search(r'^JAVA_VERSION="(\d+)', (Path(java_home) / "release").read_text(), re.MULTILINE)
        if found:
            return int(found.group(1))
    return None


def fingerprint(java_home: str, jars: Sequence[Path]) -> str:
    """What an archive depends on: the JDK (its path and release) and every jar's path, size and time."""
    digest = hashlib.sha256()
    home = Path(java_home).resolve()
    digest.update(str(home).encode())
    with contextlib.suppress(OSError):
        digest.update((home / "release").read_bytes())
    for jar in sorted(jars):
        stat = jar.stat()
        digest.update(f"\0{jar.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class ClassArchive:
    """The archives of one JDK and one set of jars: a base archive of the JDK's own classes (the JDK
    installed from PyPI comes without one) and, on top of it, the classes a pipeline run loaded."""

    directory: Path
    java_home: str

    @property
    def base(self) -> Path:
        return self.directory / "base.jsa"

    @property
    def classes(self) -> Path:
        return self.directory / "classes.jsa"

    @property
    def partial(self) -> Path:
        return self.directory / "classes.jsa.partial"

    @property
    def saving(self) -> Path:
        """Held (created exclusively) by the one run saving the archive: its JVM's pid (its own, until
        the JVM has started)."""
        return self.directory / "saving"

    @property
    def saved(self) -> Path:
        """The save of a run that finished: its JVM's pid. The archive is written once that JVM is gone."""
        return self.directory / "saved"

    def use_options(self) -> list[str]:
        """The options of a JVM that maps the saved classes (none before they are saved and kept)."""
        self._keep_saved()
        if self.classes.is_file() and self.base.is_file():
            return [f"-XX:SharedArchiveFile={self.base}:{self.classes}", *CHECKED]
        return []

    def begin_saving(self) -> list[str]:
        """The options of a JVM that saves the classes it loaded as it exits, when no other run is
        saving them; else none. The base archive is written first (about 1 s)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.saved.exists() or not self._hold():  # a finished run's JVM may still be writing
            return []
        try:
            if not self.base.is_file():
                self._dump_base()
        except (OSError, subprocess.SubprocessError):
            self.release()
            return []
        self.partial.unlink(missing_ok=True)
        return [f"-XX:SharedArchiveFile={self.base}", f"-XX:ArchiveClassesAtExit={self.partial}", *CHECKED]

    def started(self, jvm_pid: int, class_path: str = "") -> None:
        """The saving JVM started: the save is its from now on (its class path checks the archive)."""
        self.saving.write_text(f"{jvm_pid}\n{class_path}")

    def finished(self) -> None:
        """The saving run finished: its JVM writes the archive as it exits, and the next JVM to start
        keeps it."""
        os.replace(self.saving, self.saved)

    def release(self) -> None:
        """Give up the save (a run that failed): a later run saves the archive."""
        self.saving.unlink(missing_ok=True)

    def _keep_saved(self) -> None:
        """Keep the archive a finished run's JVM wrote, once that JVM is gone and Java maps it; drop
        those of other JDKs and jars."""
        held = _holder(self.saved)
        if held is None:
            return
        writer, age, class_path = held
        if running(writer) and age < ABANDONED_AFTER_SECONDS:  # still writing (or a pid used again, later)
            return
        try:
            if self.partial.is_file() and self._maps(self.partial, class_path):
                os.replace(self.partial, self.classes)
                for other in self.directory.parent.iterdir():
                    if other != self.directory and (other / "base.jsa").exists():
                        _remove_tree(other)
            else:
                self.partial.unlink(missing_ok=True)
        except OSError:  # another JVM starting kept it first
            pass
        finally:
            self.saved.unlink(missing_ok=True)

    def discard(self) -> None:
        """Remove the archives (Java could not start from them): the next saving run writes new ones."""
        _remove_tree(self.directory)

    def _maps(self, classes: Path, class_path: str) -> bool:
        """Whether a JVM starts from the base archive and `classes`, checksums checked. With the class
        path of the JVM that wrote it, `-Xshare:on`: Java stops rather than go on without the archive."""
        java = str(Path(self.java_home) / "bin" / "java")
        strict = ["-Xshare:on", "-cp", class_path] if class_path else []
        try:
            started = subprocess.run(
                [
                    java,
                    f"-XX:SharedArchiveFile={self.base}:{classes}",
                    *strict,
                    *CHECKED,
                    "-XX:ErrorFile=/dev/null",
                    "-version",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=JAVA_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return False
        return started.returncode == 0

    def _hold(self) -> bool:
        """Take the save, or take over one abandoned by a process that is gone."""
        for _ in range(2):
            try:
                descriptor = os.open(self.saving, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._abandoned():
                    return False
                self.saving.unlink(missing_ok=True)
                continue
            with os.fdopen(descriptor, "w") as held:
                held.write(str(os.getpid()))
            return True
        return False

    def _abandoned(self) -> bool:
        held = _holder(self.saving)
        return held is None or (held[1] > ABANDONED_AFTER_SECONDS and not running(held[0]))

    def _dump_base(self) -> None:
        partial = self.base.with_suffix(".partial")
        java = str(Path(self.java_home) / "bin" / "java")
        subprocess.run(
            [java, "-Xshare:dump", f"-XX:SharedArchiveFile={partial}", *CHECKED],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=JAVA_TIMEOUT_SECONDS,
        )
        os.replace(partial, self.base)


def _holder(path: Path) -> tuple[int, float, str] | None:
    """Of a `saving` or `saved` file: the pid it names, its age in seconds and the class path after the
    pid (`ClassArchive.started`); None when it cannot be read."""
    try:
        pid, _, class_path = path.read_text().partition("\n")
        return int(pid or "0"), time.time() - path.stat().st_mtime, class_path
    except (OSError, ValueError):
        return None


def running(pid: int) -> bool:
    """Whether the process runs: it exists and has not exited (a zombie, not reaped yet, has)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        # Linux: the state follows the command's name in parentheses.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _remove_tree(directory: Path) -> None:
    with contextlib.suppress(OSError):
        for path in directory.iterdir():
            path.unlink()
        directory.rmdir()


def class_archive(java_home: str, jars: Sequence[Path]) -> ClassArchive | None:
    """The archive of this JDK and these jars, or None when archives are off or cannot be used: another
    JDK than 17 or later, or a directory whose path Java cannot take (a `:` separates archives)."""
    root = archives_directory()
    if root is None or ":" in str(root.resolve()) or (java_major(java_home) or 0) < MIN_JAVA:
        return None
    return ClassArchive(root.resolve() / fingerprint(java_home, jars), java_home)


@dataclass(frozen=True)
class Prepared:
    """What a new JVM gets of the class archive: its options, and the archive they name (if any)."""

    archive: ClassArchive | None
    options: list[str]


# The archive this process's JVM saves as it exits, if it is the one saving it.
_saving: ClassArchive | None = None


def prepare(java_home: str, jars: Sequence[Path] | None, save: bool) -> Prepared:
    """The class archive's options for a new JVM: map the saved classes, or, when none are saved yet and
    `save`, save those this JVM loads. `jars` None: Spark downloads some, and no archive is used."""
    global _saving
    archive = class_archive(java_home, jars) if jars is not None else None
    if archive is None:
        return Prepared(None, [])
    options = archive.use_options()
    if not options and save:
        options = archive.begin_saving()
        _saving = archive if options else None
    return Prepared(archive, options)


def started(spark: SparkSession) -> None:
    """Hand this process's save to its JVM, which writes the archive as it exits."""
    if _saving is not None:
        process = getattr(spark.sparkContext._gateway, "proc", None)
        jvm = spark.sparkContext._jvm
        class_path = str(jvm.System.getProperty("java.class.path")) if jvm is not None else ""
        _saving.started(process.pid if process is not None else os.getpid(), class_path)


def release() -> None:
    """Give up this process's save (its run failed, or its JVM did not start): a later run saves it."""
    global _saving
    archive, _saving = _saving, None
    if archive is not None:
        archive.release()


def finished() -> bool:
    """This process's run finished: its JVM saves the archive as it exits (when this process ends).
    Whether it does."""
    global _saving
    archive, _saving = _saving, None
    if archive is None:
        return False
    archive.finished()
    return True
