"""``llamux probe``: asks before spending, learns what the providers report, and shows it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from llamux import Router
from llamux.testing import FakeEndpoint, FakeProvider

from conftest import run_cli

run = run_cli


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # the table's cells on one line each


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider([FakeEndpoint("a", rpm=30, tpm=9000), FakeEndpoint("b", rpm=5)]) as fake:
        yield fake


@pytest.fixture
def config(fake: FakeProvider, tmp_path: Path, keys: str) -> list[str]:
    table = tmp_path / "endpoints.md"
    table.write_text(
        "| name | provider | model | base_url | api_key_env | rpm | tpm |\n"
        "|---|---|---|---|---|---|---|\n"
        f"| a | fake | m-a | {fake.base_url('a')} | FAKE_API_KEY | auto | auto |\n"
        f"| b | fake | m-b | {fake.base_url('b')} | FAKE_API_KEY | 50 |  |\n"
        f"| c | fake | m-c | {fake.base_url('a')} | UNSET_API_KEY | auto |  |\n"
    )
    return ["--config", str(table), "--store", f"sqlite:///{tmp_path / 'state.db'}"]


def table_rows(out: str) -> list[list[str]]:
    """The cells of each row of a printed table."""
    return [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in out.splitlines()
        if line.startswith("│")
    ]


def test_probe_learns_what_each_provider_reports_and_shows_it(
    capsys: pytest.CaptureFixture[str], fake: FakeProvider, config: list[str]
) -> None:
    code, out, _ = run(capsys, *config, "probe", "--yes")
    assert code == 0
    rows = {cells[0]: cells for cells in table_rows(out) if cells[0]}
    assert rows["a"][1:3] == ["rpm", "30 (29 left, resets in 60s)"]
    assert rows["a"][3].startswith("auto = 30 (learned ") and rows["a"][4].startswith(
        "ok: 1 request"
    )
    assert "auto = 9000 (learned " in out
    # b's table allows 50 a minute; the provider says 5: tightened, and said so
    assert rows["b"][3].startswith("50, but the provider reported 5 on ")
    assert "c" not in rows  # no key: not probed
    assert fake.stats("a").served == 1 and fake.stats("b").served == 1
    with Router.from_config(config[1], store=config[3]) as router:  # kept in the store
        rows = {k.name: (k.limit, k.origin) for k in router.quotas.known["a"]}
        assert rows == {"rpm": (30, "learned"), "tpm": (9000, "learned")}


def test_probe_asks_before_spending_and_needs_yes_without_a_terminal(
    capsys: pytest.CaptureFixture[str], fake: FakeProvider, config: list[str]
) -> None:
    code, out, err = run(capsys, *config, "probe", "a")
    assert code == 1 and out == ""
    assert (
        "sends one chat request (1 output token) to each of 1 endpoint (a); it costs quota" in err
    )
    assert "pass --yes" in err
    assert fake.stats("a").served == 0


def test_probe_a_named_endpoint_as_json(
    capsys: pytest.CaptureFixture[str], fake: FakeProvider, config: list[str]
) -> None:
    code, out, _ = run(capsys, *config, "probe", "b", "c", "--yes", "--json")
    assert code == 0
    b, c = json.loads(out)
    assert (b["endpoint"], b["outcome"], b["via"]) == ("b", "ok", "request")
    assert {"metric": "requests", "window": "minute", "limit": 5}.items() <= b["reported"][
        0
    ].items()
    assert b["enforced"] == [
        {
            "rule": "rpm",
            "limit": 5,
            "origin": "tightened",
            "configured": 50,
            "catalog": None,
            "learned": 5,
        }
    ]
    assert (c["outcome"], c["detail"]) == ("skipped", "no key: set UNSET_API_KEY")


def test_probe_an_unknown_endpoint_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], config: list[str]
) -> None:
    code, _, err = run(capsys, *config, "probe", "zz", "--yes")
    assert code == 1 and "no endpoint is named 'zz'; use one of: a, b, c" in err


def test_probe_asks_openrouters_key_endpoint_without_spending_a_request(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, keys: str
) -> None:
    endpoints = [FakeEndpoint("or", rpm=20, rpd=50, dialect="openrouter")]
    with FakeProvider(endpoints) as fake:
        table = tmp_path / "llamux.toml"
        table.write_text(
            "[[endpoints]]\n"
            'provider = "openrouter"\n'
            'model = "m:free"\n'
            f'base_url = "{fake.base_url("or")}"\n'
            'api_key_env = "FAKE_API_KEY"\n'
            'pool = "free"\n'
            "[pools.free]\nrpm = 20\nrpd = 1000\n"  # as if 10 credits had been bought
        )
        store = f"sqlite:///{tmp_path / 'state.db'}"
        # no --yes needed: nothing is spent
        code, out, _ = run(capsys, "--config", str(table), "--store", store, "probe")
        assert code == 0
        (row,) = [cells for cells in table_rows(out) if cells[0]]
        assert row[0] == "openrouter:m:free" and row[1] == "rpd"
        assert row[2].startswith("50 (50 left, resets in ")
        assert row[4] == "ok: asked the key endpoint: no request spent"
        assert fake.stats("or").served == 0 and fake.stats("or").refused == 0
        with Router.from_config(table, store=store) as router:
            pool = router.quotas.scopes["openrouter:m:free"][1]
            assert pool.named["rpd"].limit == 50  # the account's real tier: 50 a day
            assert router.quotas.learned("openrouter:m:free") == {}  # learned for the pool


def test_an_api_that_speaks_only_the_standard_fields_is_understood(
    tmp_path: Path, keys: str
) -> None:
    endpoint = FakeEndpoint("s", rpm=4, rate_headers=False, standard_headers=True)
    with FakeProvider([endpoint]) as fake:
        table = tmp_path / "endpoints.md"
        table.write_text(
            "| name | provider | model | base_url | api_key_env | rpm |\n"
            "|---|---|---|---|---|---|\n"
            f"| s | someapi | m | {fake.base_url('s')} | FAKE_API_KEY | auto |\n"
        )
        with Router.from_csv(table, store="memory://") as router:
            result = router.probe("s")
            assert result.outcome == "ok"
            assert [(k.name, k.limit, k.origin) for k in result.known] == [("rpm", 4, "learned")]
