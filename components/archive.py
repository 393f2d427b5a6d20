"""Zip archives that are byte-for-byte reproducible: the same files give the same bytes and the same hash.

Entries are sorted, and timestamps, permissions and the creating system are fixed, so an unchanged Lambda
bundle or Glue package hashes the same on every machine and `pulumi up` leaves it alone.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# The earliest date a zip entry can carry.
FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
# A regular file, rw-r--r--, in the upper 16 bits as Unix zip tools write it.
FILE_ATTRIBUTES = 0o100644 << 16
UNIX = 3
COMPRESS_LEVEL = 9


@dataclass(frozen=True)
class Artifact:
    """A built file and the SHA-256 of its bytes (hex), which names it in content-addressed storage."""

    path: Path
    sha256: str

    def content_addressed_key(self, prefix: str) -> str:
        """An object key that changes exactly when the bytes change, e.g. glue/<sha256>/etl.zip."""
        return f"{prefix}/{self.sha256}/{self.path.name}"


def file_artifact(path: Path) -> Artifact:
    return Artifact(path=path, sha256=hashlib.sha256(path.read_bytes()).hexdigest())


def write_zip(destination: Path, entries: Mapping[str, bytes]) -> Artifact:
    """Write `entries` (archive name -> bytes) as a reproducible zip and return it with its hash.

    The file is replaced atomically and only when its bytes change, so concurrent builds of the same
    content (two stacks previewed at once) never see a half-written archive.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}-")
    try:
        with os.fdopen(fd, "wb") as file, zipfile.ZipFile(file, "w") as archive:
            for name in sorted(entries):
                info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
                info.external_attr = FILE_ATTRIBUTES
                info.create_system = UNIX
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, entries[name], compresslevel=COMPRESS_LEVEL)
        os.chmod(temporary, 0o644)
        built = file_artifact(Path(temporary))
        if destination.exists() and file_artifact(destination).sha256 == built.sha256:
            Path(temporary).unlink()
        else:
            os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return Artifact(path=destination, sha256=built.sha256)
