"""Strategies as pure functions of their inputs, then against the fake provider."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from llamux import (
    ConfigError,
    Endpoint,
    Limits,
    NoEndpointAvailable,
    RequestTooLarge,
    Router,
    served_by,
)
from llamux._policy.performance import Performance
from llamux._policy.strategies import (
    Balanced,
    Cheapest,
    Facts,
    Fastest,
    Preference,
    Request,
    RoundRobin,
    Weighted,
    price,
    strategy_from,
)
from llamux.testing import FakeClock, FakeEndpoint, FakeProvider

from conftest import HI, fake_router


def ep(name: str, **kw: object) -> Endpoint:
    return Endpoint(name, "p", name, "http://x/v1", "P_API_KEY", **kw)  # type: ignore[arg-type]


def ids(endpoints: Sequence[Endpoint]) -> list[str]:
    return [e.id for e in endpoints]


REQ = Request(HI, {}, prompt_tokens=1000, output_tokens=500)


def test_preference_uses_priority_then_row_order() -> None:
    eps = [ep("a"), ep("b", priority=2), ep("c", priority=1), ep("d")]
    assert ids(Preference().order(eps, REQ, Facts())) == ["c", "b", "a", "d"]


def test_cheapest_by_estimated_price_unpriced_last() -> None:
    eps = [
        ep("free-ish", input_cost=0.0, output_cost=0.0),
        ep("pricey", input_cost=3.0, output_cost=15.0),
        ep("unknown"),
        ep("cheap-out", input_cost=1.0, output_cost=1.0),
        ep("cheap-in", input_cost=0.1, output_cost=4.0),
    ]
    assert price(eps[1], REQ) == pytest.approx((3.0 * 1000 + 15.0 * 500) / 1e6)
    # cheap-out: 1000+500 = 1500e-6; cheap-in: 100+2000 = 2100e-6
    assert ids(Cheapest().order(eps, REQ, Facts())) == [
        "free-ish",
        "cheap-out",
        "cheap-in",
        "pricey",
        "unknown",
    ]
    long_answer = Request(HI, {}, prompt_tokens=1000, output_tokens=100)
    assert ids(Cheapest().order(eps[3:], long_answer, Facts())) == ["cheap-in", "cheap-out"]


def test_fastest_explores_untried_first_then_lowest_latency() -> None:
    eps = [ep("slow"), ep("new"), ep("fast"), ep("fast-but-fewer-tokens")]
    perf = {
        "slow": Performance(latency=2.0, samples=5),
        "fast": Performance(latency=0.5, tokens_per_second=200, samples=3),
        "fast-but-fewer-tokens": Performance(latency=0.5, tokens_per_second=50, samples=3),
    }
    order = Fastest().order(eps, REQ, Facts(performance=perf))
    assert ids(order) == ["new", "fast", "fast-but-fewer-tokens", "slow"]


def test_fastest_uses_time_to_first_token_for_streams() -> None:
    eps = [ep("a"), ep("b")]
    perf = {
        "a": Performance(latency=1.0, ttft=0.9, samples=2),
        "b": Performance(latency=3.0, ttft=0.2, samples=2),
    }
    assert ids(Fastest().order(eps, REQ, Facts(performance=perf))) == ["a", "b"]
    stream = Request(HI, {"stream": True}, 10, 10)
    assert ids(Fastest().order(eps, stream, Facts(performance=perf))) == ["b", "a"]


def test_balanced_by_headroom() -> None:
    eps = [ep("a"), ep("b"), ep("c")]
    facts = Facts(headroom={"a": 0.2, "b": 0.9, "c": 0.5})
    assert ids(Balanced().order(eps, REQ, facts)) == ["b", "c", "a"]


def test_round_robin_rotates_by_turn() -> None:
    eps = [ep("a"), ep("b"), ep("c")]
    got = [ids(RoundRobin().order(eps, REQ, Facts(turn=t)))[0] for t in range(1, 7)]
    assert got == ["a", "b", "c", "a", "b", "c"]


def test_weighted_leads_in_proportion_to_weight() -> None:
    eps = [ep("a", weight=1.0), ep("b", weight=3.0), ep("zero", weight=0.0)]
    strategy = Weighted(random.Random(7))
    leads = Counter(ids(strategy.order(eps, REQ, Facts()))[0] for _ in range(4000))
    assert leads["zero"] == 0
    assert 0.70 < leads["b"] / 4000 < 0.80  # 3 / (1 + 3) = 0.75
    assert ids(strategy.order(eps, REQ, Facts()))[-1] == "zero"


def test_strategy_from_names_objects_and_callables() -> None:
    assert isinstance(strategy_from("cheapest"), Cheapest)
    assert isinstance(strategy_from("round-robin"), RoundRobin)
    custom = strategy_from(lambda endpoints, request: list(reversed(endpoints)))
    assert ids(custom.order([ep("a"), ep("b")], REQ, Facts())) == ["b", "a"]
    with pytest.raises(ConfigError, match="unknown strategy 'fasted'"):
        strategy_from("fasted")


# -- against the fake provider ----------------------------------------------------------


def test_fastest_converges_and_moves_when_quota_is_spent(tmp_path: Path, keys: str) -> None:
    endpoints = [
        FakeEndpoint("slow", delay=0.06),
        FakeEndpoint("quick", delay=0.0),
        FakeEndpoint("medium", delay=0.03),
    ]
    with FakeProvider(endpoints) as fake:
        rows = [("slow", "20 | |"), ("quick", "8 | |"), ("medium", "20 | |")]
        with fake_router(fake, tmp_path, rows, strategy="fastest") as router:
            served = [served_by(router.completion(HI)).endpoint for _ in range(14)]  # type: ignore[union-attr]
    assert served[:3] == ["slow", "quick", "medium"]  # each untried endpoint measured once
    assert served[3:10] == ["quick"] * 7  # then the fastest, until its 8 rpm are spent
    assert served[10:] == ["medium"] * 4  # then the next fastest


def test_cheapest_falls_back_in_price_order(tmp_path: Path, keys: str) -> None:
    with FakeProvider([FakeEndpoint(n) for n in ("dear", "cheap", "mid")]) as fake:
        path = tmp_path / "t.csv"
        path.write_text(
            "name,provider,model,base_url,api_key_env,rpm,input_cost,output_cost\n"
            f"dear,fake,m,{fake.base_url('dear')},FAKE_API_KEY,5,5,15\n"
            f"cheap,fake,m,{fake.base_url('cheap')},FAKE_API_KEY,2,0.1,0.1\n"
            f"mid,fake,m,{fake.base_url('mid')},FAKE_API_KEY,2,1,2\n"
        )
        with Router.from_csv(path, store="memory://") as router:
            served = [
                served_by(router.completion(HI, strategy="cheapest")).endpoint  # type: ignore[union-attr]
                for _ in range(6)
            ]
            assert served == ["cheap", "cheap", "mid", "mid", "dear", "dear"]
            assert router.query(HI)[2] == "dear"  # the default stays preference


def test_round_robin_shares_its_counter_through_the_store(tmp_path: Path, keys: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "name,provider,model,base_url,api_key_env\n"
        + "".join(f"{n},fake,m,http://127.0.0.1:9/v1,FAKE_API_KEY\n" for n in "abc")
    )
    store = f"sqlite:///{tmp_path}/q.db"
    one = Router.from_csv(path, store=store, strategy="round_robin")
    two = Router.from_csv(path, store=store, strategy="round_robin")
    got = [(one if i % 2 else two).query(HI)[2] for i in range(6)]
    assert got == ["a", "b", "c", "a", "b", "c"]
    one.close()
    two.close()


TOML = """
[[endpoints]]
name = "groq-70b"
provider = "groq"
model = "llama-3.3-70b"
rpm = 2
context = 8000

[[endpoints]]
name = "cerebras-70b"
provider = "cerebras"
model = "llama-3.3-70b"
context = 100000
capabilities = "tools json"

[[endpoints]]
name = "gemini"
provider = "gemini"
model = "gemini-2.5-flash"
capabilities = "tools vision json"

[routes.smart]
endpoints = ["gemini", "groq-70b"]
strategy = "preference"
"""

IMAGE = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:x"}}]}]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
BIG = [{"role": "user", "content": "word " * 12000}]  # about 12,000 tokens


@pytest.fixture
def routed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Router:
    for var in ("GROQ_API_KEY", "CEREBRAS_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(var, "k")
    path = tmp_path / "llamux.toml"
    path.write_text(TOML)
    return Router.from_config(path, store="memory://", clock=FakeClock())


@pytest.mark.parametrize(
    ("messages", "params", "expected"),
    [
        (HI, {}, "groq-70b"),
        (HI, {"model": "auto"}, "groq-70b"),
        (HI, {"model": "gemini"}, "gemini"),  # an endpoint id
        (HI, {"model": "smart"}, "gemini"),  # a route, in its order
        (HI, {"model": "llama-3.3-70b"}, "groq-70b"),  # a model several providers serve
        (BIG, {"model": "llama-3.3-70b"}, "cerebras-70b"),  # over groq's context
        (IMAGE, {"model": "llama-3.3-70b"}, "groq-70b"),  # cerebras declares no vision
        (HI, {"tools": TOOLS}, "groq-70b"),  # groq declares nothing: not ruled out
        (HI, {"tools": TOOLS, "model": "cerebras-70b"}, "cerebras-70b"),
        (IMAGE, {"model": "smart"}, "gemini"),
    ],
)
def test_routes_and_fit(
    routed: Router, messages: list[dict[str, object]], params: dict[str, object], expected: str
) -> None:
    assert routed.query(messages, **params)[2] == expected


def test_fit_reasons_are_recorded(routed: Router) -> None:
    with pytest.raises(NoEndpointAvailable) as caught:
        routed.query(IMAGE, model="cerebras-70b")
    assert "lacks vision" in str(caught.value)
    with pytest.raises(RequestTooLarge):
        routed.query(BIG, model="groq-70b")
    with pytest.raises(RequestTooLarge):
        routed.query([{"role": "user", "content": "word " * 200_000}], model="llama-3.3-70b")


def test_route_order_then_fallback_within_the_route(routed: Router) -> None:
    assert [routed.query(HI, model="smart", max_tokens=5)[2] for _ in range(2)] == [
        "gemini",
        "gemini",
    ]


def test_endpoints_in_code_with_limits() -> None:
    router = Router(
        [Endpoint("x", "p", "m", "http://x/v1", "HOME", limits=Limits(rpm=1))], store="memory://"
    )
    assert router.query(HI)[2] == "x"
    with pytest.raises(NoEndpointAvailable):
        router.query(HI)


def test_cli_query_takes_strategy_and_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from llamux.cli import main

    monkeypatch.setenv("P_API_KEY", "k")
    path = tmp_path / "t.csv"
    path.write_text(
        "name,provider,model,base_url,api_key_env,input_cost,output_cost\n"
        "dear,p,m,http://x/v1,P_API_KEY,9,9\n"
        "cheap,p,m,http://x/v1,P_API_KEY,1,1\n"
    )
    base = ["--config", str(path), "--store", "memory://", "query", "hi", "--json"]
    assert main(base) == 0
    assert '"dear"' in capsys.readouterr().out
    assert main([*base, "--strategy", "cheapest"]) == 0
    assert '"cheap"' in capsys.readouterr().out
    assert main([*base, "--model", "dear", "--strategy", "cheapest"]) == 0
    assert '"dear"' in capsys.readouterr().out
