"""The local object store (Bronze on a developer's machine)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from etl.storage import LocalStore


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_objects_get_the_usual_mode_not_a_private_one(tmp_path: Path, umask_022: None) -> None:
    store = LocalStore(tmp_path)
    store.put("orders/page-000001.jsonl.gz", b"x")
    store.put("orders/page-000001.jsonl.gz", b"y")  # replaced the same way
    path = tmp_path / "orders" / "page-000001.jsonl.gz"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_bytes() == b"y"
    assert [p.name for p in path.parent.iterdir()] == ["page-000001.jsonl.gz"]
