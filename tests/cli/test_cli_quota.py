"""Quota from the command line: ``query --dry-run`` books nothing, ``release`` gives a
reservation back, ``reset`` of everything asks first; prompts from stdin."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import REPLY, fake_endpoints, long_id_table

from llamux.testing import FakeProvider

from conftest import run_cli

CEREBRAS = "cerebras:llama3.3-70b"


class Terminal(io.StringIO):
    """A stdin that is a terminal, holding what the user types."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLAMUX_STORE", f"sqlite:///{tmp_path}/q.db")
    monkeypatch.delenv("LLAMUX_CONFIG", raising=False)
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider(fake_endpoints()) as fake:
        yield fake


def rpm_used(capsys: pytest.CaptureFixture[str], config: str, endpoint: str = CEREBRAS) -> int:
    code, out, _ = run_cli(capsys, "--config", config, "status", "--json")
    assert code == 0
    found = next(e for e in json.loads(out)["endpoints"] if e["id"] == endpoint)
    return int(next(r["used"] for r in found["rules"] if r["rule"] == "rpm"))


def test_query_json_names_the_endpoint_id(
    capsys: pytest.CaptureFixture[str], seed_config: str
) -> None:
    code, out, err = run_cli(capsys, "--config", seed_config, "query", "hi", "--json")
    answer = json.loads(out)
    assert code == 0 and answer["id"] == CEREBRAS and "endpoint" not in answer
    assert set(answer) == {"provider", "model", "id", "props"}
    assert answer["props"]["reservation"] and err == ""  # the JSON is all there is


def test_query_dry_run_reserves_nothing(
    capsys: pytest.CaptureFixture[str], seed_config: str
) -> None:
    code, out, _ = run_cli(capsys, "--config", seed_config, "query", "--dry-run", "hi")
    assert code == 0 and f"endpoint     {CEREBRAS}" in out
    assert "dry run: nothing reserved" in out and "reservation" not in out
    assert "would leave  rpm 29/30" in out
    code, out, _ = run_cli(capsys, "--config", seed_config, "query", "--dry-run", "hi", "--json")
    answer = json.loads(out)
    assert answer["id"] == CEREBRAS and answer["props"]["reservation"] is None
    assert rpm_used(capsys, seed_config) == 0


def test_release_gives_a_reservation_back(
    capsys: pytest.CaptureFixture[str], seed_config: str
) -> None:
    code, out, err = run_cli(capsys, "--config", seed_config, "query", "hi")
    reservation = next(
        line.split()[1] for line in out.splitlines() if line.startswith("reservation ")
    )
    assert code == 0 and f"llamux release {reservation}" in err
    assert rpm_used(capsys, seed_config) == 1
    code, out, _ = run_cli(capsys, "--config", seed_config, "release", reservation)
    assert code == 0 and out.startswith(f"released {reservation}")
    assert rpm_used(capsys, seed_config) == 0
    code, _, err = run_cli(capsys, "--config", seed_config, "release", reservation)
    assert code == 1 and f"no reservation {reservation!r} is held in this store" in err


def test_reset_of_everything_asks_first(
    capsys: pytest.CaptureFixture[str], seed_config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_cli(capsys, "--config", seed_config, "query", "hi")
    monkeypatch.setattr("sys.stdin", io.StringIO())  # no terminal, no --yes: refused
    code, out, err = run_cli(capsys, "--config", seed_config, "reset")
    assert code == 1 and out == "" and "pass --yes to go ahead" in err
    assert rpm_used(capsys, seed_config) == 1
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    code, out, err = run_cli(capsys, "--config", seed_config, "reset")
    assert code == 0 and out == "nothing reset\n" and "Go ahead? [y/N]" in err
    assert rpm_used(capsys, seed_config) == 1
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    code, out, _ = run_cli(capsys, "--config", seed_config, "reset")
    assert code == 0 and "reset all 2 endpoints" in out
    assert rpm_used(capsys, seed_config) == 0
    run_cli(capsys, "--config", seed_config, "query", "hi")
    monkeypatch.setattr("sys.stdin", io.StringIO())
    assert run_cli(capsys, "--config", seed_config, "reset", "--yes")[0] == 0
    assert run_cli(capsys, "--config", seed_config, "reset", CEREBRAS)[0] == 0  # no question


def test_chat_reads_the_prompt_from_stdin(
    capsys: pytest.CaptureFixture[str],
    provider: FakeProvider,
    tmp_path: Path,
    keys: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = long_id_table(provider, tmp_path / "endpoints.md")
    before = provider.stats("groq").served
    monkeypatch.setattr("sys.stdin", io.StringIO("Why is the sky blue?\n"))
    code, out, err = run_cli(capsys, "--config", config, "chat")  # echo ... | llamux chat
    assert code == 0 and out == REPLY + "\n" and "served by groq:" in err
    monkeypatch.setattr("sys.stdin", io.StringIO("and why is it red at dusk?"))
    code, out, _ = run_cli(capsys, "--config", config, "chat", "-")
    assert code == 0 and out == REPLY + "\n"
    assert provider.stats("groq").served == before + 2
    monkeypatch.setattr("sys.stdin", io.StringIO("  \n"))
    code, _, err = run_cli(capsys, "--config", config, "chat")
    assert code == 1 and "the prompt read from stdin is empty" in err
    monkeypatch.setattr("sys.stdin", Terminal())
    code, _, err = run_cli(capsys, "--config", config, "chat")
    assert code == 1 and "no prompt: give one" in err and "echo Hello | llamux chat" in err


def test_chat_json_is_the_whole_response(
    capsys: pytest.CaptureFixture[str], provider: FakeProvider, tmp_path: Path, keys: str
) -> None:
    config = long_id_table(provider, tmp_path / "endpoints.md")
    code, out, err = run_cli(capsys, "--config", config, "chat", "hi", "--json")
    response = json.loads(out)
    assert code == 0 and response["object"] == "chat.completion"
    assert response["choices"][0]["message"]["content"] == REPLY and "served by" in err
