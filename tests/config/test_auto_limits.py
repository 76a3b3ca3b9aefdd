"""``auto`` in a limit cell (table and TOML), and comment lines in CSV tables."""

from __future__ import annotations

import pytest

from llamux._config.load import Limits, parse_table, parse_toml
from llamux._errors import ConfigError

TABLE = """\
| provider | model                   | rpm  | tpm  | rpd  | tpd | reset    |
| -------- | ----------------------- | ---- | ---- | ---- | --- | -------- |
| groq     | llama-3.3-70b-versatile | auto | AUTO | 1000 |     | rpd=UTC  |
| gemini   | gemini-3.5-flash        | auto |      | auto |     |          |
"""


def test_auto_cells_are_kept_apart_from_numbers_and_empty_cells() -> None:
    groq, gemini = parse_table(TABLE).endpoints
    assert groq.limits == Limits(rpd=1000, auto=frozenset({"rpm", "tpm"}))
    assert groq.limits.items() == (("rpd", 1000),)
    assert groq.limits.named() == ("rpm", "tpm", "rpd")
    assert gemini.limits.auto == frozenset({"rpm", "rpd"})
    # gemini's catalog resets rpd at midnight Pacific: an auto rpd takes it too
    assert gemini.reset_for("rpd") == "America/Los_Angeles"


def test_a_reset_may_name_an_auto_limit_but_not_an_empty_one() -> None:
    table = TABLE.replace("rpd=UTC ", "tpm=UTC ")
    groq = parse_table(table).endpoints[0]
    assert groq.reset_for("tpm") == "UTC"
    with pytest.raises(ConfigError, match="reset names tpd but no tpd limit is set"):
        parse_table(TABLE.replace("rpd=UTC ", "tpd=UTC "))


def test_a_misspelt_auto_is_a_clear_error_that_names_auto() -> None:
    with pytest.raises(ConfigError, match=r"'autp' is not a whole number.*auto for the provider"):
        parse_table(TABLE.replace("| auto | AUTO |", "| autp | AUTO |"))


def test_auto_in_toml_endpoints_and_not_in_pools() -> None:
    config = parse_toml('[[endpoints]]\nprovider = "groq"\nmodel = "m"\nrpm = "auto"\ntpd = 5\n')
    assert config.endpoints[0].limits == Limits(tpd=5, auto=frozenset({"rpm"}))
    with pytest.raises(ConfigError, match="a pool's limits cannot be auto"):
        parse_toml('[pools.p]\nrpm = "auto"\n[[endpoints]]\nprovider = "groq"\nmodel = "m"\n')


def test_limits_refuse_a_name_both_auto_and_numeric() -> None:
    with pytest.raises(ValueError, match="rpm"):
        Limits(rpm=3, auto=frozenset({"rpm"}))
    with pytest.raises(ValueError, match="rpx"):
        Limits(auto=frozenset({"rpx"}))


def test_csv_lines_that_start_with_a_hash_are_comments() -> None:
    text = (
        "# written by llamux init; catalog checked 2026-12-01\n"
        "provider,model,rpm\n"
        "# groq,commented-out,1\n"
        "groq,llama-3.3-70b-versatile,30\n"
    )
    (only,) = parse_table(text).endpoints
    assert (only.model, only.limits.rpm) == ("llama-3.3-70b-versatile", 30)
    with pytest.raises(ConfigError, match="empty"):
        parse_table("# nothing but a comment\n")
