"""``Quotas``: each endpoint's scopes with the limits known now, and what check and status
say about them."""

from __future__ import annotations

from datetime import date

from llamux._config.catalog import ModelLimits
from llamux._config.load import Endpoint, Limits, Pool
from llamux._engine.quotas import REFRESH, Quotas
from llamux._limit_notes import limit_warnings
from llamux._policy.ratelimits import Hint
from llamux._stores.memory import MemoryStore

T0 = 1_796_083_200.0  # 2026-12-01
AUTO = Limits(auto=frozenset({"rpm", "rpd"}))


def endpoint(name: str, limits: Limits = AUTO, pool: str | None = None) -> Endpoint:
    return Endpoint(name, "p", f"m-{name}", f"http://127.0.0.1:9/{name}/v1", "K", limits, pool=pool)


def entry(checked: str, **limits: int) -> ModelLimits:
    return ModelLimits("p", "m", Limits(**limits), checked, "a test", confirmed=True)


def test_an_old_catalog_entry_in_use_is_a_warning_and_unknown_endpoints_are_said() -> None:
    old, none = endpoint("old"), endpoint("none")
    catalog = {"old": entry("2026-01-15", rpm=30)}
    quotas = Quotas([old, none], {}, MemoryStore(), T0, lambda ep: catalog.get(ep.id))
    assert [rule.limit for rule in quotas.scopes["old"][0].rules][:1] == [30]
    lines = limit_warnings(quotas, date(2026, 12, 1))
    assert any(
        "limits for p m-old were checked on 2026-01-15, over 90 days ago" in x for x in lines
    )
    assert any("endpoint none: none of its auto limits is known yet" in x for x in lines)
    assert quotas.gated == frozenset({"none"})
    fresh = {"old": entry("2026-11-20", rpm=30)}
    quotas = Quotas([old], {}, MemoryStore(), T0, lambda ep: fresh.get(ep.id))
    assert limit_warnings(quotas, date(2026, 12, 1)) == []


def test_what_another_process_learned_is_read_within_refresh() -> None:
    store = MemoryStore()
    ep = endpoint("a")
    mine = Quotas([ep], {}, store, T0, lambda _: None)
    other = Quotas([ep], {}, store, T0, lambda _: None)
    other.learn(ep, [Hint("requests", "minute", 30, 29, None)], T0, "headers")
    assert {k.name: k.limit for k in other.known["a"]} == {"rpm": 30, "rpd": None}
    version = mine.version
    mine.refresh(T0 + REFRESH / 2)
    assert mine.version == version and "a" in mine.gated  # not read yet
    mine.refresh(T0 + REFRESH)
    assert mine.version > version and "a" not in mine.gated
    assert mine.scopes["a"][0].named["rpm"].limit == 30


def test_the_same_statement_again_writes_nothing() -> None:
    writes: list[str] = []

    class Counting(MemoryStore):
        def learn(self, scope: str, limits: object, now: float, source: str) -> None:
            writes.append(scope)
            super().learn(scope, limits, now, source)  # type: ignore[arg-type]

    ep = endpoint("a")
    quotas = Quotas([ep], {}, Counting(), T0, lambda _: None)
    hint = Hint("requests", "minute", 30, 29, None)
    for _ in range(5):
        quotas.learn(ep, [hint], T0, "headers")
    assert writes == [quotas.own["a"]]


def test_a_limit_learned_for_a_pool_lowers_the_pools_rule() -> None:
    pool = Pool("free", Limits(rpm=20, rpd=1000))
    ep = endpoint("a", Limits(rpm=100), pool="free")
    quotas = Quotas([ep], {"free": pool}, MemoryStore(), T0, lambda _: None)
    assert quotas.scopes["a"][1].named["rpd"].limit == 1000
    quotas.learn(ep, [Hint("requests", "day", 50, 40, None, 10)], T0, "key endpoint", pool=True)
    assert quotas.scopes["a"][1].named["rpd"].limit == 50
    assert quotas.scopes["a"][0].named["rpm"].limit == 100  # the endpoint's own: untouched
    assert quotas.declared()["pool:free"] == "rpm=20 rpd=1000"  # what the config says


def test_an_endpoint_whose_provider_states_no_headers_is_told_to_write_numbers() -> None:
    ep = Endpoint("g", "gemini", "m", "http://127.0.0.1:9/v1", "K", AUTO, dialect="gemini")
    quotas = Quotas([ep], {}, MemoryStore(), T0, lambda _: None)
    (line,) = limit_warnings(quotas, date(2026, 12, 1))
    assert "gemini states its limits only in 429 answers: write them in the table" in line
