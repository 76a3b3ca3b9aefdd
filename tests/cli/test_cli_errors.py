"""What the command line says when something goes wrong: one line, the right exit code, JSON
under ``--json``, the CLI's own knob (``--wait N``), nothing on a closed pipe, a busy port
said before anything else."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import (
    ONE_RPM,
    cli_env,
    fake_endpoints,
    isolate,
    llamux,
    long_id_table,
    one_rpm_table,
)

from llamux import Router
from llamux.testing import FakeClock, FakeProvider

from conftest import free_port, run_cli


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def one_rpm(tmp_path: Path, keys: str) -> str:
    return one_rpm_table(tmp_path)


@pytest.fixture
def unreachable(tmp_path: Path, keys: str) -> str:
    """An endpoint whose server is not there (connection refused)."""
    path = tmp_path / "down.md"
    path.write_text(
        "| provider | model | base_url | rpm |\n|---|---|---|---|\n"
        f"| fake | m | http://127.0.0.1:{free_port()}/v1 | 10 |\n"
    )
    return str(path)


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider(fake_endpoints()) as fake:
        yield fake


# ------------------------------------------------------------------ exit codes and messages


def test_full_quota_exits_2_and_names_the_cli_knob(
    capsys: pytest.CaptureFixture[str], one_rpm: str
) -> None:
    assert run_cli(capsys, "--config", one_rpm, "query", "hi")[0] == 0
    code, out, err = run_cli(capsys, "--config", one_rpm, "query", "hi")
    assert code == 2 and out == ""
    assert "capacity returns in" in err and "(pass --wait 6" in err and "wait=" not in err
    assert err.count("\n") == 1 and err.startswith("llamux: error: ")


def test_unreachable_providers_exit_3_and_say_so(
    capsys: pytest.CaptureFixture[str], unreachable: str
) -> None:
    code, out, err = run_cli(capsys, "--config", unreachable, "chat", "hi")
    assert code == 3 and out == "", err
    assert "every endpoint failed (fake:m: " in err and "capacity returns" not in err
    assert "check their status, the network and base_url" in err and "Traceback" not in err
    # again, while it rests after failing: still the provider's doing, still exit 3
    code, out, err = run_cli(capsys, "--config", unreachable, "chat", "hi", "--json")
    assert code == 3 and "every endpoint failed or rests after failing (fake:m: cooldown: " in err
    error = json.loads(out)["error"]
    assert error["type"] == "NoEndpointAvailable" and error["cause"] == "providers"
    assert error["exit_code"] == 3 and error["attempts"][0]["outcome"] == "refused"
    assert "then try again (in " in error["message"]


def test_errors_under_json_are_json_on_stdout_with_the_same_codes(
    capsys: pytest.CaptureFixture[str], one_rpm: str, tmp_path: Path
) -> None:
    run_cli(capsys, "--config", one_rpm, "query", "hi")
    code, out, err = run_cli(capsys, "--config", one_rpm, "query", "hi", "--json")
    error = json.loads(out)["error"]
    assert code == 2 and error["type"] == "NoEndpointAvailable" and err.startswith("llamux:")
    assert error["retry_after"] > 0 and error["cause"] == "quota"
    assert error["attempts"] == [
        {
            "endpoint": "cerebras:llama3.3-70b",
            "outcome": "refused",
            "reason": "rpm 1/1 used",
            "status": None,
        }
    ]
    code, out, _ = run_cli(capsys, "--config", one_rpm, "--store", "bogus://x", "status", "--json")
    assert code == 4 and json.loads(out)["error"]["type"] == "StoreError"
    bad = tmp_path / "bad.csv"
    bad.write_text(ONE_RPM.replace("| 1   |", "| lots |"))
    code, out, _ = run_cli(capsys, "--config", str(bad), "status", "--json")
    error = json.loads(out)["error"]
    assert code == 1 and error["type"] == "ConfigError" and error["line"] == 3
    assert error["file"] == str(bad) and error["exit_code"] == 1
    code, out, _ = run_cli(capsys, "query", "--json", "--max-tokens", "0", "hi")
    assert code == 1 and json.loads(out)["error"]["type"] == "UsageError"


def test_a_provider_error_under_json(
    capsys: pytest.CaptureFixture[str], provider: FakeProvider, tmp_path: Path, keys: str
) -> None:
    config = long_id_table(provider, tmp_path / "endpoints.md")
    provider.inject("groq", 400)
    code, out, err = run_cli(capsys, "--config", config, "chat", "hi", "--json")
    error = json.loads(out)["error"]
    assert code == 3 and error["type"] == "ProviderStatusError" and error["status"] == 400
    assert error["endpoint"] == "groq:llama-3.3-70b-versatile" and "HTTP 400" in err


# ------------------------------------------------------------------ a closed stdout


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (("status", "--json"), 0),
        (("status",), 0),
        (("check",), 0),
        (("query", "--dry-run", "hi", "--json"), 0),
        (("chat", "Why is the sky blue?"), 0),
        (("--help",), 0),
        (("--store", "bogus://x", "status", "--json"), 4),
    ],
)
def test_a_closed_stdout_ends_quietly_with_the_usual_code(
    provider: FakeProvider, tmp_path: Path, keys: str, argv: tuple[str, ...], code: int
) -> None:
    config = long_id_table(provider, tmp_path / "endpoints.md")
    env = cli_env(f"sqlite:///{tmp_path / 'state.db'}")
    proc = subprocess.Popen(
        llamux("--config", config, *argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # `| true`: the reader is gone before anything is written
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == code, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err


def test_head_reads_the_first_line_of_status(
    provider: FakeProvider, tmp_path: Path, keys: str
) -> None:
    config = long_id_table(provider, tmp_path / "endpoints.md")
    env = cli_env(f"sqlite:///{tmp_path / 'state.db'}")
    command = " ".join(llamux("--config", config, "status")) + " | head -1"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0 and done.stdout.startswith("endpoint"), done.stderr
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------------ serve


def test_serve_on_a_busy_port_says_so_first_and_exits_1(
    capsys: pytest.CaptureFixture[str], one_rpm: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = run_cli(capsys, "--config", one_rpm, "serve", "--port", str(port))
    assert code == 1 and out == ""
    assert err.startswith(f"llamux: error: port {port} is already in use on 127.0.0.1")
    assert f"--port {port + 1}" in err and "llamux proxy:" not in err and "Errno" not in err


def test_serve_on_an_address_that_is_not_here(
    capsys: pytest.CaptureFixture[str], one_rpm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAMUX_PROXY_KEY", "a-proxy-key-of-some-length")
    code, _, err = run_cli(capsys, "--config", one_rpm, "serve", "--host", "192.0.2.1")
    assert code == 1 and "--host 192.0.2.1 is not an address of this machine" in err


# ------------------------------------------------------------------ help


def test_every_command_help_shows_examples_within_80_columns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    commands = ("status", "query", "chat", "release", "reset", "check", "probe", "demo", "serve")
    for command in (*commands, "init", ""):
        code, out, _ = run_cli(capsys, *([command] if command else []), "--help")
        assert code == 0 and "examples:\n  llamux " in out, command
        assert all(len(line) <= 80 for line in out.splitlines()), command


def test_a_429_is_quota_not_a_provider_failure(
    capsys: pytest.CaptureFixture[str], provider: FakeProvider, tmp_path: Path, keys: str
) -> None:
    config = long_id_table(provider, tmp_path / "endpoints.md")
    groq = ("--model", "groq:llama-3.3-70b-versatile")
    provider.inject("groq", 429)
    code, out, err = run_cli(capsys, "--config", config, "chat", "hi", *groq, "--json")
    assert code == 2 and json.loads(out)["error"]["cause"] == "quota", err
    code, _, err = run_cli(capsys, "--config", config, "chat", "hi", *groq)  # it rests now
    assert code == 2 and "cooldown: HTTP 429" in err and "--wait " in err


def test_query_waits_for_capacity_too(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, keys: str
) -> None:
    path = tmp_path / "endpoints.csv"
    path.write_text(ONE_RPM)
    store = f"sqlite:///{tmp_path / 'state.db'}"
    with Router.from_csv(path, store=store, clock=FakeClock(time.time() - 58.5)) as router:
        router.query([{"role": "user", "content": "hi"}])  # frees in about 2 s
    code, _, err = run_cli(capsys, "--config", str(path), "--store", store, "query", "hi")
    assert code == 2 and "(pass --wait " in err
    started = time.monotonic()
    argv = ("--config", str(path), "--store", store, "query", "hi", "--wait", "10")
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0 and "reservation  " in out and time.monotonic() - started > 0.5
