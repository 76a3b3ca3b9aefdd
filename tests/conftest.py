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


SEED_TABLE = """\
| provider | model                   | rpm | tpm   | rph   | tph     | rpd   | tpd     |
| -------- | ----------------------- | --- | ----- | ----- | ------- | ----- | ------- |
| cerebras | llama3.3-70b            | 30  | 60000 | 900   | 1000000 | 14400 | 1000000 |
| groq     | llama-3.3-70b-versatile | 30  | 6000  | 14400 |         | 14400 |         |
"""

KEY = "sk-SENTINEL-do-not-leak-0123456789"


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> str:
    """Every provider key variable the tests use, set to one sentinel value."""
    for var in ("CEREBRAS_API_KEY", "GROQ_API_KEY", "FAKE_API_KEY", "OTHER_API_KEY"):
        monkeypatch.setenv(var, KEY)
    return KEY


def fake_table(fake: object, rows: list[tuple[str, str]]) -> str:
    """A table of endpoints served by the fake provider: (name, limits cells) per row."""
    lines = [
        "| name | provider | model | base_url | rpm | tpm | rpd |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, limits in rows:
        base = fake.base_url(name)  # type: ignore[attr-defined]
        lines.append(f"| {name} | fake | m-{name} | {base} | {limits} |")
    return "\n".join(lines) + "\n"
