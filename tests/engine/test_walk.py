"""A decision passes a prefix of endpoints it knows refused, all at once, and only while
nothing could let them admit sooner: usage given back, a reset, the moment one frees, a
smaller request, another process. On every store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llamux import Router
from llamux._config.load import parse_table
from llamux._engine.walk import Walk
from llamux._stores import QuotaStore
from llamux._stores.redis import RedisStore
from llamux._stores.sqlite import SQLiteStore
from llamux.testing import FakeClock

T0 = 1_767_225_600.0


def table(*rows: str) -> str:
    head = "| name | provider | model | base_url | api_key_env | rpm | tpm | rpd |\n"
    head += "|---|---|---|---|---|---|---|---|\n"
    return head + "".join(f"| {row} |\n" for row in rows)


def row(name: str, limits: str) -> str:
    return f"{name} | p | m-{name} | http://127.0.0.1:9/v1 | FAKE_API_KEY | {limits}"


def router_on(store: QuotaStore, *rows: str, clock: FakeClock | None = None) -> Router:
    return Router(parse_table(table(*rows)), store=store, clock=clock or FakeClock(T0))


def ask(router: Router, words: int = 2) -> str:
    return router.query([{"role": "user", "content": "word " * words}], max_tokens=5)[2]


def spent_two(store: QuotaStore, clock: FakeClock | None = None) -> tuple[Router, list[str]]:
    """Endpoints a and b with one request a day, both spent; c with room."""
    router = router_on(store, row("a", "| | 1"), row("b", "| | 1"), row("c", "| |"), clock=clock)
    ids = [router.query([{"role": "user", "content": "x"}], model=n, max_tokens=5) for n in "ab"]
    return router, [props["reservation"] for *_, props in ids]


def test_the_prefix_is_passed_and_the_attempts_stay_the_same(
    store: QuotaStore, keys: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    passed: list[int] = []
    begin = Walk.begin

    def counting(self: Walk, generation: int, now: float) -> Any:
        refusals = begin(self, generation, now)
        passed.append(len(refusals))
        return refusals

    monkeypatch.setattr(Walk, "begin", counting)
    router, _ = spent_two(store)
    assert [ask(router) for _ in range(3)] == ["c", "c", "c"]  # learned, then used
    if isinstance(store, RedisStore):  # one script per endpoint: no prefix, none learned
        assert passed == [] and router._prefixes == {}
    else:
        assert passed[-2:] == [2, 2]
    call = router.call([{"role": "user", "content": "word word"}], {"max_tokens": 5})
    got = call.admission.next()
    assert not isinstance(got, float) and got.endpoint.id == "c"
    assert [(a.endpoint, a.outcome) for a in call.attempts] == [
        ("a", "refused"),
        ("b", "refused"),
    ]
    assert "rpd 1/1 used" in call.attempts[0].reason


def test_usage_given_back_in_the_prefix_is_used_at_once(store: QuotaStore, keys: str) -> None:
    router, (held_a, _) = spent_two(store)
    assert [ask(router) for _ in range(2)] == ["c", "c"]
    assert router.release(held_a)
    assert ask(router) == "a"


def test_a_settle_in_the_prefix_is_seen_at_once(store: QuotaStore, keys: str) -> None:
    router = router_on(store, row("a", "| 100 |"), row("b", "| |"))
    _, _, first, props = router.query([{"role": "user", "content": "x"}], max_tokens=60)
    assert first == "a"
    assert [ask(router, 40) for _ in range(2)] == ["b", "b"]  # a: 60 + ~50 > 100
    assert router.settle(props["reservation"], 10)  # a's answer used 10 tokens
    assert ask(router, 40) == "a"


def test_the_prefix_ends_when_its_soonest_endpoint_frees(store: QuotaStore, keys: str) -> None:
    clock = FakeClock(T0)
    router = router_on(store, row("a", "1 | |"), row("b", "| |"), clock=clock)
    assert [ask(router) for _ in range(3)] == ["a", "b", "b"]
    clock.advance(61)
    assert ask(router) == "a"


def test_a_smaller_request_is_not_refused_by_a_larger_ones_prefix(
    store: QuotaStore, keys: str
) -> None:
    router = router_on(store, row("a", "| 100 |"), row("b", "| |"))
    router.query([{"role": "user", "content": "x"}], max_tokens=60)
    assert [ask(router, 80) for _ in range(2)] == ["b", "b"]
    assert ask(router, 1) == "a"  # ~10 tokens fit where ~90 did not


def test_a_reset_ends_the_prefix(store: QuotaStore, keys: str) -> None:
    router, _ = spent_two(store)
    assert [ask(router) for _ in range(2)] == ["c", "c"]
    router.reset("a")
    assert ask(router) == "a"


def test_another_process_giving_usage_back_ends_the_prefix(tmp_path: Path, keys: str) -> None:
    path = tmp_path / "shared.db"
    mine, other = SQLiteStore(path), SQLiteStore(path)
    router, (held_a, _) = spent_two(mine)
    assert [ask(router) for _ in range(2)] == ["c", "c"]
    assert other.release(held_a, T0 + 1)  # another process settles what it reserved
    assert ask(router) == "a"
    mine.close()
    other.close()


@pytest.mark.parametrize("strategy", ["cheapest", "round_robin"])
def test_strategies_whose_order_moves_learn_no_prefix(keys: str, strategy: str) -> None:
    router = Router(parse_table(table(row("a", "| | 1"), row("b", "| |"))), store="memory://")
    router.query([{"role": "user", "content": "x"}], model="a", max_tokens=5)
    router.query([{"role": "user", "content": "x"}], strategy=strategy, max_tokens=5)
    assert router._prefixes == {}
