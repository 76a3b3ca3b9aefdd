"""The ``concurrency`` column: tables, TOML endpoints and pools, its errors, its scopes."""

from __future__ import annotations

import pytest

from llamux._config.load import parse_table, parse_toml
from llamux._errors import ConfigError
from llamux._policy.scoping import limits_text, scopes_for

TABLE = "| provider | model | rpm | concurrency |\n|---|---|---|---|\n| groq | m | 30 | {} |\n"


def test_a_table_sets_concurrency() -> None:
    ep = parse_table(TABLE.format(2), "t.md").endpoints[0]
    assert ep.concurrency == 2
    scope = scopes_for([ep], {})[ep.id][0]
    assert scope.concurrency == 2
    assert limits_text(scope) == "rpm=30 concurrency=2"
    assert parse_table(TABLE.format(""), "t.md").endpoints[0].concurrency is None


@pytest.mark.parametrize(
    ("value", "phrase"),
    [("-1", "-1 is not positive"), ("0", "0 is not positive"), ("two", "not a whole number")],
)
def test_a_wrong_concurrency_names_file_line_and_column(value: str, phrase: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_table(TABLE.format(value), "t.md")
    error = caught.value
    assert (error.file, error.line, error.column) == ("t.md", 3, "concurrency")
    assert phrase in str(error) and "requests in flight" in str(error)


def test_toml_endpoints_and_pools_set_concurrency() -> None:
    config = parse_toml(
        """
[pools.shared]
concurrency = 5

[[endpoints]]
provider = "groq"
model = "m"
pool = "shared"
concurrency = 2
""",
        "c.toml",
    )
    ep = config.endpoints[0]
    scopes = scopes_for([ep], {pool.name: pool for pool in config.pools})[ep.id]
    assert [s.concurrency for s in scopes] == [2, 5]


def test_a_wrong_toml_concurrency_is_located() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_toml('[[endpoints]]\nprovider = "groq"\nmodel = "m"\nconcurrency = -3\n', "c.toml")
    assert (caught.value.line, caught.value.column) == (4, "endpoints[0].concurrency")
