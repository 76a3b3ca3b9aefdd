"""Month limits (``rpmo``, ``tpmo``): in tables, TOML and pools, their resets, their errors,
and their rows in ``llamux status``."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamux import Router
from llamux._config.endpoint import Limits
from llamux._config.load import parse_table, parse_toml
from llamux._errors import ConfigError
from llamux._status import status_data
from llamux.cli._screen import Screen
from llamux.cli._status_view import status_lines
from llamux.testing import FakeClock

from conftest import HI

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC


def test_a_table_takes_month_limits_with_suffixes_and_resets() -> None:
    config = parse_table(
        "provider,model,rpm,rpmo,tpmo,reset\ngroq,m,30,1000,1M,tpmo=America/Los_Angeles\n",
        "t.csv",
    )
    ep = config.endpoints[0]
    assert ep.limits == Limits(rpm=30, rpmo=1000, tpmo=1_000_000)
    assert ep.reset_for("tpmo") == "America/Los_Angeles" and ep.reset_for("rpmo") is None


def test_one_reset_timezone_makes_months_calendar_ones_too() -> None:
    ep = parse_table("provider,model,rpd,rpmo,reset\ngroq,m,5,100,UTC\n").endpoints[0]
    assert ep.resets == (("rpd", "UTC"), ("rpmo", "UTC"))


def test_toml_endpoints_and_pools_take_month_limits() -> None:
    config = parse_toml(
        """
        [pools.free]
        rpmo = 500
        reset = { rpmo = "UTC" }

        [[endpoints]]
        provider = "groq"
        model = "m"
        tpmo = "2M"
        pool = "free"
        """,
        "c.toml",
    )
    assert config.endpoints[0].limits == Limits(tpmo=2_000_000)
    pool = config.pools[0]
    assert pool.limits == Limits(rpmo=500) and pool.resets == (("rpmo", "UTC"),)


@pytest.mark.parametrize(
    ("columns", "row", "column", "phrase"),
    [
        (",rpmo", "groq,m,-1", "rpmo", "-1 is negative"),
        (",tpmo", "groq,m,lots", "tpmo", "is not a whole number"),
        (",tpmo", "groq,m,1.5", "tpmo", "is not a whole number"),
        (",rpd,reset", "groq,m,5,rpmo=UTC", "reset", "no rpmo limit is set"),
        (",rpmo,reset", "groq,m,5,rpmo=Mars/Olympus", "reset", "not a known IANA timezone"),
        (",rpmo,reset", "groq,m,5,monthly=UTC", "reset", "'monthly' is not a limit name"),
    ],
)
def test_bad_month_cells_name_file_line_and_column(
    columns: str, row: str, column: str, phrase: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_table(f"provider,model{columns}\n{row}\n", "t.csv")
    error = caught.value
    assert (error.file, error.line, error.column) == ("t.csv", 2, column)
    assert phrase in str(error) and ";" in str(error)


def test_status_shows_month_rules_with_their_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "k")
    path = tmp_path / "t.csv"
    path.write_text("provider,model,rpm,rpmo,tpmo,reset\ngroq,m,30,100,50000,rpmo=UTC\n")
    clock = FakeClock(T0 + 86400)
    router = Router.from_csv(path, store="memory://", clock=clock)
    router.query(HI, max_tokens=10)
    rules = {r["rule"]: r for r in status_data(router)["endpoints"][0]["rules"]}
    assert set(rules) == {"rpm", "rpmo", "tpmo"}
    assert (rules["rpmo"]["used"], rules["rpmo"]["limit"]) == (1, 100)
    assert rules["rpmo"]["window"] == "month@UTC" and rules["tpmo"]["window"] == "month"
    assert rules["tpmo"]["used"] > 10
    frees = rules["rpmo"]["frees_in"]
    assert frees is not None and frees == pytest.approx(30 * 86400, abs=1)  # February 1st
    text = "\n".join(status_lines(status_data(router), Screen(width=120, tty=False)))
    assert "rpmo" in text and "1/100" in text and "tpmo" in text
    router.close()
