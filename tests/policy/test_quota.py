"""The pure arithmetic of rules and decisions (windows and buckets: test_window.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from llamux._policy.quota import Cooldown, Cost, charges, decide, never_fits, remaining_after
from llamux._policy.rules import Rule, Scope, rules_from_limits
from llamux._policy.window import Window

from conftest import LA, la

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a whole number of days


def test_rule_names_and_from_limits() -> None:
    rules = rules_from_limits([("rpm", 30), ("tpd", 1000)], {"tpd": "UTC"})
    assert [r.name for r in rules] == ["rpm", "tpd"]
    assert rules[1].window == Window("day", "UTC")
    assert rules[0].window.tz is None


def _scope(*rules: Rule) -> Scope:
    return Scope("ep", rules)


def test_decide_admits_until_limit_and_reports_retry() -> None:
    rpm = Rule("requests", Window("minute"), 2)
    scope = _scope(rpm)
    snap = {("ep", "minute"): {int(T0): (1, 10, 0), int(T0) + 5: (1, 10, 0)}}
    refusal = decide("ep", [scope], snap, {}, Cost(5), T0 + 6)
    assert refusal is not None
    assert refusal.rule == "rpm" and refusal.used == 2 and refusal.limit == 2
    assert refusal.retry_at == T0 + 61  # the oldest bucket frees first
    assert decide("ep", [scope], snap, {}, Cost(5), T0 + 61) is None


def test_decide_reports_the_rule_that_frees_last() -> None:
    rpm = Rule("requests", Window("minute"), 1)
    rpd = Rule("requests", Window("day"), 1)
    scope = _scope(rpm, rpd)
    snap = {("ep", "minute"): {int(T0): (1, 0, 0)}, ("ep", "day"): {int(T0): (1, 0, 0)}}
    refusal = decide("ep", [scope], snap, {}, Cost(0), T0 + 1)
    assert refusal is not None and refusal.rule == "rpd"


def test_tokens_rule_and_never_fits() -> None:
    tpm = Rule("tokens", Window("minute"), 100)
    scope = _scope(tpm)
    assert decide("ep", [scope], {}, {}, Cost(100), T0) is None
    refusal = decide("ep", [scope], {}, {}, Cost(101), T0)
    assert refusal is not None and refusal.retry_at is None
    assert never_fits("ep", [scope], Cost(101)) is not None
    assert never_fits("ep", [scope], Cost(100)) is None


def test_cooldown_refuses_until_deadline() -> None:
    scope = _scope()
    cd = {"ep": Cooldown("ep", T0 + 30, "429 from provider", "cooldown")}
    refusal = decide("ep", [scope], {}, cd, Cost(1), T0)
    assert refusal is not None and refusal.retry_at == T0 + 30 and refusal.rule is None
    assert decide("ep", [scope], {}, cd, Cost(1), T0 + 30) is None


def test_charges_one_per_scope_and_window() -> None:
    rules = rules_from_limits([("rpm", 1), ("tpm", 1), ("rpd", 1)], {})
    pool = Scope("pool:p", rules_from_limits([("rpm", 5)], {}))
    got = charges([Scope("ep", rules), pool], T0 + 3.5)
    assert [(c.scope, c.window, c.bucket) for c in got] == [
        ("ep", "minute", T0 + 3),
        ("ep", "day", T0),
        ("pool:p", "minute", T0 + 3),
    ]


def test_calendar_rule_resets_at_midnight() -> None:
    rpd = Rule("requests", Window("day", LA), 1)
    scope = _scope(rpd)
    now = la(2026, 6, 15, 23, 59)
    snap = {("ep", rpd.window.key): {rpd.window.charge_bucket(now): (1, 0, 0)}}
    refusal = decide("ep", [scope], snap, {}, Cost(0), now)
    assert refusal is not None and refusal.retry_at == la(2026, 6, 16)
    assert decide("ep", [scope], snap, {}, Cost(0), la(2026, 6, 16)) is None


@given(
    st.lists(st.tuples(st.integers(-200, 200), st.integers(0, 3), st.integers(0, 900)), max_size=8),
    st.integers(1, 600),
    st.integers(0, 120),
)
def test_an_admitting_decision_says_what_remaining_after_says(
    usage: list[tuple[int, int, int]], tokens: int, later_by: int
) -> None:
    """``decide``'s ``remaining`` (one pass over the sums) is ``remaining_after``'s (a second
    pass) whenever it admits, over windows of every length and both metrics."""
    rules = rules_from_limits([("rpm", 3), ("tpm", 1000), ("rph", 6), ("tpd", 2000)], {})
    scopes = [Scope("ep", rules), Scope("pool:p", rules_from_limits([("rpm", 4)], {}))]
    snapshot: dict[tuple[str, str], dict[int, tuple[int, int, int]]] = {}
    now = T0 + later_by
    for offset, requests, used in usage:
        for scope in scopes:
            for window in scope.windows:
                bucket = window.charge_bucket(T0 + offset)
                held = snapshot.setdefault((scope.key, window.key), {})
                old = held.get(bucket, (0, 0, 0))
                held[bucket] = (old[0] + requests, old[1] + used, 0)
    remaining: list[tuple[str, str, int]] = []
    refusal = decide("ep", scopes, snapshot, {}, Cost(tokens), now, None, remaining)
    if refusal is None:
        assert tuple(remaining) == remaining_after(scopes, snapshot, Cost(tokens), now)
