from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llamux._stores import QuotaStore
from llamux._stores.memory import MemoryStore
from llamux._stores.sqlite import SQLiteStore

STORE_KINDS = ["memory", "sqlite"]


def open_store(kind: str, tmp_path: Path) -> QuotaStore:
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "state.db")
    raise AssertionError(kind)


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QuotaStore]:
    opened = open_store(request.param, tmp_path)
    yield opened
    opened.close()
