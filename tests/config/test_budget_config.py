"""The ``usd_day`` / ``usd_month`` columns: tables, TOML endpoints and pools, their errors
(file, line, column), their reset, and the rules they make (micro-dollars)."""

from __future__ import annotations

import pytest

from llamux._config.load import parse_table, parse_toml
from llamux._errors import ConfigError
from llamux._policy.rules import USD
from llamux._policy.scoping import limits_text, scopes_for

TABLE = (
    "| provider | model | rpm | input_cost | output_cost | usd_day | usd_month | reset |\n"
    "|---|---|---|---|---|---|---|---|\n"
    "| groq | m | 30 | {} | {} | {} | {} | {} |\n"
)


def table(
    usd_day: str = "",
    usd_month: str = "",
    cost_in: str = "0.5",
    cost_out: str = "1.5",
    reset: str = "",
) -> str:
    return TABLE.format(cost_in, cost_out, usd_day, usd_month, reset)


def test_a_table_sets_day_and_month_budgets() -> None:
    ep = parse_table(table("1.50", "$20"), "t.md").endpoints[0]
    assert (ep.usd_day, ep.usd_month) == (1.5, 20.0)
    scope = scopes_for([ep], {})[ep.id][0]
    budgets = [(r.name, r.metric, r.window.unit, r.limit) for r in scope.rules if r.metric == USD]
    assert budgets == [("usd_day", USD, "day", 1_500_000), ("usd_month", USD, "month", 20_000_000)]
    assert scope.budgeted
    assert limits_text(scope) == "rpm=30 usd_day=1500000 usd_month=20000000"
    plain = parse_table(table(), "t.md").endpoints[0]
    assert (plain.usd_day, plain.usd_month) == (None, None)
    assert not scopes_for([plain], {})[plain.id][0].budgeted


def test_a_budget_follows_the_reset_column() -> None:
    ep = parse_table(table("1", "10", reset="UTC"), "t.md").endpoints[0]
    assert dict(ep.resets) == {"rpm": "UTC", "usd_day": "UTC", "usd_month": "UTC"}
    scope = scopes_for([ep], {})[ep.id][0]
    assert scope.named["usd_day"].window.tz == "UTC"
    only = parse_table(table("1", "10", reset="usd_month=UTC"), "t.md").endpoints[0]
    assert dict(only.resets) == {"usd_month": "UTC"}


def test_one_price_is_enough() -> None:
    ep = parse_table(table("1", cost_in="", cost_out="2"), "t.md").endpoints[0]
    assert ep.usd_day == 1.0 and ep.input_cost is None


@pytest.mark.parametrize(
    ("day", "month", "column", "phrase"),
    [
        ("-1", "", "usd_day", "'-1' is negative"),
        ("", "lots", "usd_month", "'lots' is not a number"),
        ("nan", "", "usd_day", "not a number"),
    ],
)
def test_a_wrong_budget_names_file_line_and_column(
    day: str, month: str, column: str, phrase: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_table(table(day, month), "t.md")
    error = caught.value
    assert (error.file, error.line, error.column) == ("t.md", 3, column)
    assert phrase in str(error) and "dollars to spend" in str(error)


def test_a_budget_without_prices_is_an_error_at_its_cell() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_table(table("", "5", cost_in="", cost_out=""), "t.md")
    error = caught.value
    assert (error.file, error.line, error.column) == ("t.md", 3, "usd_month")
    assert "no prices" in str(error) and "input_cost" in str(error)


def test_toml_endpoints_and_pools_set_budgets() -> None:
    config = parse_toml(
        """
[pools.shared]
usd_month = 50
reset = { usd_month = "UTC" }

[[endpoints]]
provider = "groq"
model = "m"
pool = "shared"
input_cost = 0.59
output_cost = 0.79
usd_day = 2.5
""",
        "c.toml",
    )
    ep = config.endpoints[0]
    assert ep.usd_day == 2.5
    scopes = scopes_for([ep], {pool.name: pool for pool in config.pools})[ep.id]
    assert [r.name for s in scopes for r in s.rules] == ["usd_day", "usd_month"]
    assert scopes[1].named["usd_month"].limit == 50_000_000
    assert scopes[1].named["usd_month"].window.tz == "UTC"


def test_a_toml_budget_without_prices_is_located() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_toml('[[endpoints]]\nprovider = "groq"\nmodel = "m"\nusd_day = 3\n', "c.toml")
    assert (caught.value.file, caught.value.line) == ("c.toml", 4)
    assert caught.value.column == "endpoints[0].usd_day"


def test_a_wrong_toml_budget_is_located() -> None:
    text = '[[endpoints]]\nprovider = "groq"\nmodel = "m"\ninput_cost = 1\nusd_month = -3\n'
    with pytest.raises(ConfigError) as caught:
        parse_toml(text, "c.toml")
    assert (caught.value.line, caught.value.column) == (5, "endpoints[0].usd_month")


def test_an_unpriced_endpoint_cannot_draw_on_a_budgeted_pool() -> None:
    text = (
        '[pools.shared]\nusd_day = 5\n\n[[endpoints]]\nprovider = "groq"\nmodel = "m"\n'
        'pool = "shared"\n'
    )
    with pytest.raises(ConfigError) as caught:
        parse_toml(text, "c.toml")
    assert (caught.value.line, caught.value.column) == (7, "endpoints[0].pool")
    assert "dollar budget" in str(caught.value)
