"""``llamux check`` and ``status`` show each endpoint of a key list by its variable, never a key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import isolate

from conftest import KEY, run_cli

SECOND = "gsk-SECOND-SENTINEL-do-not-leak-987654321"
TABLE = """\
| provider | model                   | rpm | api_key_env                          |
| -------- | ----------------------- | --- | ------------------------------------ |
| groq     | llama-3.3-70b-versatile | 30  | GROQ_API_KEY, GROQ_API_KEY_2, GROQ_3 |
| cerebras | llama3.3-70b            | 30  |                                      |
"""


@pytest.fixture
def table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    isolate(monkeypatch, tmp_path)
    monkeypatch.setenv("GROQ_API_KEY", KEY)
    monkeypatch.setenv("GROQ_API_KEY_2", SECOND)
    monkeypatch.delenv("GROQ_3", raising=False)
    monkeypatch.setenv("CEREBRAS_API_KEY", KEY)
    path = tmp_path / "endpoints.md"
    path.write_text(TABLE)
    return str(path)


def test_check_lists_each_key_with_its_variable(
    capsys: pytest.CaptureFixture[str], table: str
) -> None:
    code, out, err = run_cli(capsys, "--config", table, "check")
    assert code == 0, err
    assert "ok, 4 endpoints" in out
    base = "groq:llama-3.3-70b-versatile"
    assert f" 1. {base}#1\n" in out and f" 3. {base}#3\n" in out
    assert "$GROQ_API_KEY (set)" in out and "$GROQ_API_KEY_2 (set)" in out
    assert "$GROQ_3 (NOT set" in out
    assert SECOND not in out + err


def test_status_names_the_variable_that_tells_the_keys_apart(
    capsys: pytest.CaptureFixture[str], table: str
) -> None:
    code, out, err = run_cli(capsys, "--config", table, "status")
    assert code == 0, err
    lines = out.splitlines()
    for n, variable in enumerate(("GROQ_API_KEY", "GROQ_API_KEY_2", "GROQ_3"), 1):
        at = next(i for i, line in enumerate(lines) if f"llama-3.3-70b-versatile#{n} " in line)
        assert lines[at + 1].split() == [
            "groq",
            "·",
            "llama-3.3-70b-versatile",
            "·",
            "key",
            f"${variable}",
        ]
    assert "no key (set GROQ_3)" in out
    assert "key $CEREBRAS_API_KEY" not in out  # only where the key tells endpoints apart
    assert SECOND not in out + err
    code, out, _ = run_cli(capsys, "--config", table, "status", "--json")
    data = json.loads(out)
    assert [ep["api_key_env"] for ep in data["endpoints"][:3]] == [
        "GROQ_API_KEY",
        "GROQ_API_KEY_2",
        "GROQ_3",
    ]
    assert SECOND not in out and KEY not in out
