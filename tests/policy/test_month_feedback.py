"""Monthly limits a provider states (Mistral's ``x-ratelimit-*-tokens-month``) feed ``tpmo``."""

from __future__ import annotations

from llamux._policy.feedback import debits, rule_name
from llamux._policy.ratelimits import parse_headers

NOW = 1_767_225_600.0

MISTRAL = {
    "x-ratelimit-limit-tokens-month": "1000000000",
    "x-ratelimit-remaining-tokens-month": "999000000",
    "x-ratelimit-limit-tokens-minute": "500000",
    "x-ratelimit-remaining-tokens-minute": "499000",
}


def test_mistral_month_headers_name_the_tpmo_rule() -> None:
    hints = parse_headers("mistral", MISTRAL, NOW)
    month = [h for h in hints if h.window == "month"]
    assert month and {rule_name(h) for h in month} == {"tpmo"}
    assert month[0].limit == 1_000_000_000


def test_a_provider_reporting_less_left_this_month_tightens_tpmo() -> None:
    hints = parse_headers("mistral", MISTRAL, NOW)
    assert ("tpmo", 1_000_000) in debits(hints, {"tpmo": 1_000_000_000, "tpm": 499_000})
    assert all(name != "tpmo" for name, _ in debits(hints, {"tpmo": 999_000_000}))
