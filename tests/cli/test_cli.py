"""The ``llamux`` command line, run in-process (``main(argv)``) and once as a real process."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import isolate, one_rpm_table

from llamux import Router, __version__
from llamux.testing import FakeEndpoint, FakeProvider

from conftest import KEY, SEED_TABLE, fake_table, run_cli


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


run = run_cli


@pytest.fixture
def one_rpm(tmp_path: Path, keys: str) -> str:
    return one_rpm_table(tmp_path)


@pytest.fixture
def fake_endpoints() -> list[FakeEndpoint]:
    return [FakeEndpoint("a", model="m-a", rpm=5, reply="Hello from a.", api_key=KEY)]


@pytest.fixture
def fake_config(fake: FakeProvider, tmp_path: Path, keys: str) -> str:
    path = tmp_path / "fake.md"
    path.write_text(fake_table(fake, [("a", "5 | |")]))
    return str(path)


# ------------------------------------------------------------------ check and config


def test_check_shows_each_endpoint_without_the_key(
    capsys: pytest.CaptureFixture[str], seed_config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GROQ_API_KEY")
    code, out, _ = run(capsys, "check", "--config", seed_config)
    assert code == 0
    assert f"{seed_config}: ok, 2 endpoints" in out
    assert "cerebras:llama3.3-70b" in out and "https://api.cerebras.ai/v1" in out
    assert "$CEREBRAS_API_KEY (set)" in out
    assert "$GROQ_API_KEY (NOT set" in out
    assert "limits    rpm 30\n               tpm 60000\n               rph 900" in out
    # the table against the catalog: groq's tier allows 1000 requests a day, not 14400
    assert "rpd 14400 (catalog 1000, checked " in out
    assert "warning: endpoint groq:llama-3.3-70b-versatile: your table says rpd 14400" in out


def test_check_compares_the_table_with_what_the_provider_reported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, keys: str
) -> None:
    table = tmp_path / "endpoints.md"
    table.write_text(
        "| provider | model | base_url | rpm | tpm | rpd |\n|---|---|---|---|---|---|\n"
        "| groq | llama-3.3-70b-versatile | | 30 | auto | 14400 |\n"
        "| fake | m | http://127.0.0.1:9/v1 | auto | | |\n"
    )
    store = f"sqlite:///{tmp_path / 'state.db'}"
    with Router.from_csv(table, store=store) as router:  # as if answers had said so
        router.store.learn(
            router.quotas.own["groq:llama-3.3-70b-versatile"],
            {"rpd": 1000, "tpm": 8000},
            1_796_083_200.0,
            "headers",
        )
    code, out, _ = run(capsys, "check", "--config", str(table), "--store", store)
    assert code == 0
    assert "tpm auto = 8000 (learned 2026-12-01 from headers)" in out
    assert "rpd 14400, but the provider reported 1000 on 2026-12-01 (headers)" in out
    assert "your table says rpd 14400; groq reported 1000 on 2026-12-01" in out
    assert "rpm auto = not known yet" in out
    assert "endpoint fake:m: none of its auto limits is known yet" in out
    assert "`llamux probe fake:m` asks now" in out
    assert KEY not in out


def test_check_a_bad_table_exits_1_naming_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "endpoints.csv"
    path.write_text(SEED_TABLE.replace("| 30  | 6000  |", "| lots | 6000  |"))
    code, out, err = run(capsys, "--config", str(path), "check")
    assert code == 1 and out == ""
    assert err.startswith("llamux: error: ") and f"{path}:4" in err and "rpm" in err
    assert "Traceback" not in err


def test_missing_config_exits_1_saying_where_it_looked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "status")
    assert code == 1
    assert "no config found" in err and str(tmp_path) in err
    for where in ("./endpoints.csv", "./endpoints.md", "./llamux.toml", "--config"):
        assert where in err
    code, _, err = run(capsys, "--config", str(tmp_path / "nope.csv"), "status")
    assert code == 1 and "nope.csv (from --config) does not exist" in err


def test_config_is_found_in_the_current_directory_and_from_the_environment(
    capsys: pytest.CaptureFixture[str], seed_config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(Path(seed_config).parent)
    assert run(capsys, "check")[1].startswith("endpoints.md: ok")
    monkeypatch.setenv("LLAMUX_CONFIG", seed_config)
    monkeypatch.chdir("/")
    assert run(capsys, "check")[1].startswith(f"{seed_config}: ok")


# ------------------------------------------------------------------ status, query, reset


def test_status_shows_endpoints_bars_and_no_key(
    capsys: pytest.CaptureFixture[str], seed_config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GROQ_API_KEY")
    code, out, _ = run(capsys, "--config", seed_config, "status")
    assert code == 0
    assert "cerebras:llama3.3-70b" in out and "groq:llama-3.3-70b-versatile" in out
    assert re.search(r"░{10} +0/30", out) and "rpm" in out and "tpd" in out
    assert "no key (set GROQ_API_KEY)" in out
    assert "ok" in out


def test_status_json_parses(capsys: pytest.CaptureFixture[str], seed_config: str) -> None:
    code, out, _ = run(capsys, "--config", seed_config, "status", "--json")
    assert code == 0
    data = json.loads(out)
    first = data["endpoints"][0]
    assert first["id"] == "cerebras:llama3.3-70b" and first["has_key"] and first["state"] == "ok"
    assert [r["rule"] for r in first["rules"]] == ["rpm", "tpm", "rph", "tph", "rpd", "tpd"]
    assert first["rules"][0] == {
        "scope": "cerebras:llama3.3-70b",
        "rule": "rpm",
        "metric": "requests",
        "window": "minute",
        "limit": 30,
        "used": 0,
        "remaining": 30,
        "next_free_at": None,
        "frees_in": None,
        "origin": "configured",
    }
    assert data["pools"] == []
    # the seed's groq row allows 14400 requests a day; the catalog's tier, 1000
    (warning,) = data["warnings"]
    assert "your table says rpd 14400; the catalog says groq's tier allows 1000" in warning


def test_status_warns_of_usage_no_endpoint_owns_and_of_other_limits(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, seed_config: str
) -> None:
    assert run(capsys, "--config", seed_config, "query", "hi")[0] == 0
    edited = tmp_path / "edited.md"  # cerebras gone, groq's rpm lowered
    lines = SEED_TABLE.splitlines()
    edited.write_text("\n".join([*lines[:2], lines[3].replace("| 30  |", "| 20  |")]) + "\n")
    code, out, _ = run(capsys, "--config", str(edited), "status")
    assert code == 0
    text = " ".join(out.split())
    assert "warning: the store holds usage of 'q:api.cerebras.ai/v1|llama3.3-70b|" in text
    assert "last configured with limits 'rpm=30 tpm=6000 rph=14400 rpd=14400'" in text
    code, out, _ = run(capsys, "--config", str(edited), "status", "--json")
    warnings = json.loads(out)["warnings"]  # the new limits are recorded now
    assert len(warnings) == 2 and "the catalog says groq's tier allows 1000" in warnings[1]


def test_query_twice_then_status_shows_used_2(
    capsys: pytest.CaptureFixture[str], seed_config: str
) -> None:
    code, out, _ = run(capsys, "--config", seed_config, "query", "Hello, how are you?")
    assert code == 0
    assert "endpoint     cerebras:llama3.3-70b" in out and "rpm 29/30" in out
    assert "key from     $CEREBRAS_API_KEY" in out and "reservation  " in out
    code, out, _ = run(
        capsys, "--config", seed_config, "query", "again", "--max-tokens", "50", "--json"
    )
    answer = json.loads(out)
    assert code == 0 and answer["provider"] == "cerebras" and answer["props"]["reservation"]
    assert answer["props"]["remaining"]["rpm"] == 28
    code, out, _ = run(capsys, "--config", seed_config, "status", "--json")
    rules = {r["rule"]: r for r in json.loads(out)["endpoints"][0]["rules"]}
    assert rules["rpm"]["used"] == 2 and rules["rpm"]["frees_in"] > 55
    code, out, _ = run(capsys, "--config", seed_config, "status")
    # piped: plain columns; 2/30 of a 10-cell bar is 5/8 of one cell
    assert re.search(r"cerebras:llama3.3-70b +rpm +▋░{9} +2/30 +28 +(5\d|6\d)s ", out)


def test_exhausted_quotas_exit_2_with_when_capacity_returns(
    capsys: pytest.CaptureFixture[str], one_rpm: str
) -> None:
    assert run(capsys, "--config", one_rpm, "query", "hi")[0] == 0
    code, out, err = run(capsys, "--config", one_rpm, "query", "hi")
    assert code == 2 and out == ""
    assert "llamux: error: no endpoint can serve this request now" in err
    assert "rpm 1/1 used" in err and "capacity returns in" in err
    code, out, _ = run(capsys, "--config", one_rpm, "status")
    assert re.search(r"█{10} +1/1 ", out) and "full (rpm; frees in" in out


def test_reset_forgets_usage(capsys: pytest.CaptureFixture[str], one_rpm: str) -> None:
    assert run(capsys, "--config", one_rpm, "query", "hi")[0] == 0
    code, out, _ = run(capsys, "--config", one_rpm, "reset", "cerebras:llama3.3-70b")
    assert code == 0 and out.startswith("reset cerebras:llama3.3-70b:")
    assert run(capsys, "--config", one_rpm, "query", "hi")[0] == 0
    code, out, _ = run(capsys, "--config", one_rpm, "reset", "--yes")
    assert code == 0 and "reset all 1 endpoint:" in out
    code, _, err = run(capsys, "--config", one_rpm, "reset", "nobody")
    assert code == 1 and "no endpoint is named 'nobody'" in err


POOLED = """\
[[endpoints]]
provider = "cerebras"
model = "llama3.3-70b"
rpm = 30
pool = "shared"

[[endpoints]]
name = "local"
provider = "ollama"
model = "llama3"
api_key_env = "OTHER_API_KEY"
pool = "shared"

[pools.shared]
rpm = 5
rpd = 100
"""


def test_toml_pools_and_unlimited_endpoints_in_check_and_status(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, keys: str
) -> None:
    path = tmp_path / "llamux.toml"
    path.write_text(POOLED)
    code, out, _ = run(capsys, "--config", str(path), "check")
    assert code == 0 and "pool shared: rpm 5 · rpd 100" in out and "limits    no limits" in out
    assert run(capsys, "--config", str(path), "query", "hi", "--model", "local")[0] == 0
    code, out, _ = run(capsys, "--config", str(path), "status", "--json")
    pool = json.loads(out)["pools"][0]
    assert pool["name"] == "shared" and pool["endpoints"] == ["cerebras:llama3.3-70b", "local"]
    assert [(r["rule"], r["used"]) for r in pool["rules"]] == [("rpm", 1), ("rpd", 1)]
    code, out, _ = run(capsys, "--config", str(path), "status")
    assert "pool:shared" in out and "shared by cerebras:llama3.3-70b, local" in out
    assert "ollama · llama3" in out and "no limits" in out
    assert re.search(r"██░{8} +1/5 ", out)


# ------------------------------------------------------------------ chat


def test_chat_prints_the_reply_and_who_served_it(
    capsys: pytest.CaptureFixture[str], fake_config: str, fake: FakeProvider
) -> None:
    code, out, err = run(capsys, "--config", fake_config, "--store", "memory://", "chat", "Hi!")
    assert code == 0
    assert out == "Hello from a.\n"
    assert "served by a (fake m-a)" in err and "tokens" in err
    assert fake.stats("a").served == 1


def test_chat_provider_error_exits_3_and_cooldown_shows_in_status(
    capsys: pytest.CaptureFixture[str], fake_config: str, fake: FakeProvider
) -> None:
    fake.inject("a", 400)
    code, out, err = run(capsys, "--config", fake_config, "chat", "Hi!", "--max-tokens", "20")
    assert code == 3 and out == "" and "HTTP 400" in err
    fake.inject("a", 503)
    code, _, err = run(capsys, "--config", fake_config, "chat", "Hi!")
    # every endpoint failed (no quota refused it): the providers' fault, exit 3
    assert code == 3 and "HTTP 503" in err and "every endpoint failed" in err
    code, out, _ = run(capsys, "--config", fake_config, "status")
    assert "cooldown 10s: HTTP 503" in out or "cooldown 9s: HTTP 503" in out


def test_store_error_exits_4(capsys: pytest.CaptureFixture[str], seed_config: str) -> None:
    code, _, err = run(capsys, "--config", seed_config, "--store", "bogus://x", "status")
    assert code == 4 and "unknown store URL scheme" in err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_usage_errors_exit_1_and_version(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", _Terminal())  # no prompt, and nothing piped in
    code, _, err = run(capsys, "query")
    assert code == 1 and "llamux: error: no prompt: give one" in err
    code, _, err = run(capsys, "query", "--bogus")
    assert code == 1 and "llamux: error: unrecognized arguments: --bogus" in err
    assert run(capsys, "demo", "--requests", "0")[0] == 1
    code, out, _ = run(capsys)
    assert code == 1 and "status" in out and "demo" in out
    assert run(capsys, "--version") == (0, f"llamux {__version__}\n", "")


# ------------------------------------------------------------------ a real process


def test_python_m_llamux_runs_without_importing_openai_or_rich(seed_config: str) -> None:
    env = {**os.environ, "CEREBRAS_API_KEY": KEY}
    argv = [sys.executable, "-m", "llamux", "--config", seed_config, "--store", "memory://"]
    done = subprocess.run([*argv, "status", "--json"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["endpoints"][0]["has_key"] is True
    assert KEY not in done.stdout + done.stderr
    probe = (
        "import sys; from llamux.cli import main; "
        f"code = main(['--config', {seed_config!r}, '--store', 'memory://', 'status', '--json']); "
        "print(code, 'openai' in sys.modules, 'rich' in sys.modules, file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert done.stderr.strip() == "0 False False"
