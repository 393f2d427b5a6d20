"""One local run at a time per data directory: an advisory lock on a file in it, held for the whole run.

The kernel releases the lock when the holder's process ends, however it ends (a crash, kill -9), so a lock
is never left behind. The file also says who holds it, for the message a second run prints.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from etl.timestamps import format_rfc3339, utc_now

LOCK_FILE = ".lakehouse.lock"

# Data directories this process holds, so that a run inside a held block (the CLI's) does not lock twice.
_held: set[Path] = set()


class RunInProgress(RuntimeError):
    """Another run holds the data directory."""


@contextmanager
def hold_data_dir(data_dir: Path, command: str | None = None) -> Iterator[None]:
    """Hold `data_dir` for this process, or fail at once saying who holds it."""
    directory = data_dir.resolve()
    if directory in _held:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    # Opened without truncating: the holder's details must survive until this process holds the lock.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInProgress(
                f"another run is using {directory}: {_describe(path)}. Wait for it to finish, or use "
                "another --data-dir"
            ) from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": format_rfc3339(utc_now()),
            "command": command if command is not None else " ".join(sys.argv),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        _held.add(directory)
        try:
            yield
        finally:
            _held.discard(directory)
            # The file stays: were it deleted, a third run could lock a new file while another holds this one.
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def _describe(path: Path) -> str:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
        return (
            f"pid {holder['pid']} on {holder['host']}, started {holder['started_at']}, "
            f"command {holder['command']!r}"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that is just starting (its details are not written yet)"
