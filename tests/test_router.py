"""The router end to end: seed API, failover, waiting, errors, against the fake provider."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from openai.types.chat import ChatCompletion

from llamux import NoEndpointAvailable, RequestTooLarge, Router, served_by
from llamux._errors import ProviderStatusError
from llamux._policy.feedback import DISABLE_FOR, TRANSIENT_COOLDOWN
from llamux.testing import FakeClock, FakeEndpoint, FakeProvider

from conftest import KEY, SEED_TABLE, cooling_of, fake_router, fake_table, status_of, used

HELLO = [{"role": "user", "content": "Hello, how are you?"}]


def test_seed_query_prefers_cerebras_until_its_minute_quota_is_spent(seed: Router) -> None:
    for _ in range(30):
        provider, model, id_, props = seed.query(HELLO)
        assert (provider, model, id_) == ("cerebras", "llama3.3-70b", "cerebras:llama3.3-70b")
    assert props["remaining"]["rpm"] == 0
    provider, model, id_, props = seed.query(HELLO)
    assert (provider, model) == ("groq", "llama-3.3-70b-versatile")
    assert props["base_url"] == "https://api.groq.com/openai/v1"
    assert props["api_key_env"] == "GROQ_API_KEY"
    assert props["limits"] == {"rpm": 30, "tpm": 6000, "rph": 14400, "rpd": 14400}
    assert props["remaining"]["rpm"] == 29 and props["remaining"]["rph"] == 14399
    assert props["reservation"] and KEY not in repr(props)


def test_query_reserves_the_estimate_and_settle_corrects_it(seed: Router) -> None:
    _, _, id_, props = seed.query(HELLO, max_tokens=100)
    tpm = {u.rule.name: u for s in seed.status() if s.endpoint.id == id_ for u in s.usage}["tpm"]
    assert tpm.used == props["tokens"] > 100
    assert seed.settle(props["reservation"], {"total_tokens": 42})
    after = {u.rule.name: u.used for s in seed.status() if s.endpoint.id == id_ for u in s.usage}
    assert after["tpm"] == 42 and after["rpm"] == 1
    assert not seed.settle(props["reservation"], 42)


def test_seed_query_window_frees_after_a_minute(seed: Router) -> None:
    for _ in range(30):
        seed.query(HELLO)
    assert seed.query(HELLO)[0] == "groq"
    seed.clock.sleep(61)  # type: ignore[attr-defined]
    assert seed.query(HELLO)[0] == "cerebras"


@pytest.fixture
def fake_endpoints() -> list[FakeEndpoint]:
    return [
        FakeEndpoint("a", model="m-a", rpm=100, reply="from a"),
        FakeEndpoint("b", model="m-b", rpm=100, reply="from b"),
        FakeEndpoint("c", model="m-c", rpm=100, reply="from c"),
    ]


def test_completion_returns_the_sdk_object_and_settles_real_usage(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    with fake_router(fake, tmp_path, [("a", "10 | 10000 |"), ("b", "10 | 10000 |")]) as router:
        response = router.completion(HELLO, max_tokens=50)
        assert isinstance(response, ChatCompletion)
        assert response.choices[0].message.content == "from a"
        served = served_by(response)
        assert served is not None and served.endpoint == "a" and served.model == "m-a"
        assert served.tokens == fake.stats("a").total_tokens == response.usage.total_tokens  # type: ignore[union-attr]
        assert served.estimated_tokens >= served.tokens
        usage = used(router)
        assert usage == {"rpm": 1, "tpm": fake.stats("a").total_tokens}


def test_rotates_to_the_next_endpoint_when_the_quota_is_spent(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    with fake_router(fake, tmp_path, [("a", "3 | |"), ("b", "2 | |"), ("c", "| |")]) as router:
        served = [served_by(router.completion(HELLO)).endpoint for _ in range(7)]  # type: ignore[union-attr]
    assert served == ["a", "a", "a", "b", "b", "c", "c"]
    assert sum(fake.stats(n).refused for n in "abc") == 0


def test_a_500_fails_over_and_cools_the_endpoint_down(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    clock = FakeClock()
    fake.inject("a", 500)
    with fake_router(fake, tmp_path, [("a", "| |"), ("b", "| |")], clock=clock) as router:
        response = router.completion(HELLO)
        served = served_by(response)
        assert served is not None and served.endpoint == "b"
        assert [(a.endpoint, a.outcome, a.status) for a in served.attempts] == [
            ("a", "failed", 500),
            ("b", "served", None),
        ]
        cooling = cooling_of(router, "a")
        assert cooling.until == clock.now() + TRANSIENT_COOLDOWN and cooling.kind == "cooldown"
        assert served_by(router.completion(HELLO)).endpoint == "b"  # type: ignore[union-attr]
        clock.advance(TRANSIENT_COOLDOWN)
        assert served_by(router.completion(HELLO)).endpoint == "a"  # type: ignore[union-attr]


def test_a_429_cools_down_until_retry_after(fake: FakeProvider, tmp_path: Path, keys: str) -> None:
    clock = FakeClock()
    fake.inject("a", 429, headers={"retry-after": "17"})
    with fake_router(fake, tmp_path, [("a", "| |"), ("b", "| |")], clock=clock) as router:
        assert served_by(router.completion(HELLO)).endpoint == "b"  # type: ignore[union-attr]
        assert cooling_of(router, "a").until == clock.now() + 17
        usage = used(router)
        assert usage == {}  # no rules configured: nothing to show, but no crash


def test_a_stricter_provider_is_learned_from_its_headers_before_any_429(
    tmp_path: Path, keys: str
) -> None:
    clock = FakeClock()
    with FakeProvider([FakeEndpoint("a", rpm=2), FakeEndpoint("b")]) as fake:
        router = fake_router(fake, tmp_path, [("a", "10 | |"), ("b", "| |")], clock=clock)
        got = [served_by(router.completion(HELLO)).endpoint for _ in range(6)]  # type: ignore[union-attr]
        assert got == ["a", "a", "b", "b", "b", "b"]
        assert fake.stats("a").refused == 0  # its headers said 0 left: no request was wasted
        # the provider's count is now llamux's own: its rpm is full until the slots free
        rpm = next(u for u in status_of(router, "a").usage if u.rule.name == "rpm")
        assert rpm.remaining == 0 and rpm.next_free_at is not None
        assert clock.now() + 55 < rpm.next_free_at <= clock.now() + 61
        router.close()


def test_a_headerless_429_cools_down_and_nothing_more_is_sent(tmp_path: Path, keys: str) -> None:
    clock = FakeClock()
    with FakeProvider([FakeEndpoint("a"), FakeEndpoint("b")]) as fake:
        router = fake_router(fake, tmp_path, [("a", "10 | |"), ("b", "| |")], clock=clock)
        fake.inject("a", 429)
        got = [served_by(router.completion(HELLO)).endpoint for _ in range(4)]  # type: ignore[union-attr]
        assert got == ["b", "b", "b", "b"]
        assert fake.stats("a").failed == 1 and fake.stats("a").served == 0
        router.close()


def test_a_bad_key_disables_the_endpoint_with_a_warning(
    tmp_path: Path, keys: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    with FakeProvider([FakeEndpoint("a", api_key="other"), FakeEndpoint("b")]) as fake:
        router = fake_router(fake, tmp_path, [("a", "| |"), ("b", "| |")], clock=clock)
        with caplog.at_level(logging.WARNING, logger="llamux"):
            assert served_by(router.completion(HELLO)).endpoint == "b"  # type: ignore[union-attr]
        cooling = cooling_of(router, "a")
        assert cooling.kind == "disabled" and cooling.until == clock.now() + DISABLE_FOR
        assert "FAKE_API_KEY" in caplog.text and "llamux reset a" in caplog.text
        assert KEY not in caplog.text
        router.close()


def test_a_bad_request_is_raised_and_released(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    with fake_router(fake, tmp_path, [("a", "5 | |"), ("b", "| |")]) as router:
        fake.inject("a", 400)
        with pytest.raises(ProviderStatusError) as caught:
            router.completion(HELLO)
        assert caught.value.status == 400 and caught.value.endpoint == "a"
        assert KEY not in str(caught.value)
        assert used(router) == {"rpm": 0}
        assert fake.stats("b").served == 0  # another endpoint would fail the same


def test_connection_refused_is_released_and_fails_over(tmp_path: Path, keys: str) -> None:
    with FakeProvider([FakeEndpoint("a"), FakeEndpoint("b")]) as fake:
        path = tmp_path / "t.md"
        text = fake_table(fake, [("a", "5 | |"), ("b", "| |")])
        path.write_text(text.replace(fake.base_url("a"), "http://127.0.0.1:9/a/v1"))
        with Router.from_csv(path, store="memory://") as router:
            served = served_by(router.completion(HELLO))
            assert served is not None and served.endpoint == "b"
            assert served.attempts[0].outcome == "failed"
            assert used(router) == {"rpm": 0}


def exhaust(router: Router, **params: object) -> int:
    """Query until nothing admits; the number of queries admitted."""
    for count in range(10_000):
        try:
            router.query(HELLO, **params)
        except NoEndpointAvailable:
            return count
    raise AssertionError("never exhausted")


def test_no_endpoint_available_says_when_and_why(seed: Router) -> None:
    assert exhaust(seed, max_tokens=10) == 60
    with pytest.raises(NoEndpointAvailable) as caught:
        seed.query(HELLO)
    err = caught.value
    assert err.retry_after is not None and 59 < err.retry_after <= 61.1
    assert {r.endpoint for r in err.refusals} == {
        "cerebras:llama3.3-70b",
        "groq:llama-3.3-70b-versatile",
    }
    assert "rpm 30/30" in str(err) and "wait=" in str(err)


def test_wait_sleeps_until_capacity_returns(seed: Router) -> None:
    assert exhaust(seed, max_tokens=10) == 60
    start = seed.clock.now()
    assert seed.query(HELLO, wait=90, max_tokens=10)[0] == "cerebras"
    assert 59 < seed.clock.now() - start <= 61.1
    assert exhaust(seed, max_tokens=10) == 59  # the whole minute's quota came back at once
    before = seed.clock.now()
    with pytest.raises(NoEndpointAvailable):
        seed.query(HELLO, wait=0.5, max_tokens=10)  # capacity returns later than that
    assert seed.clock.now() == before


def test_request_too_large_for_every_endpoint(seed: Router) -> None:
    with pytest.raises(RequestTooLarge) as caught:
        seed.query([{"role": "user", "content": "hey" * 400_000}])
    assert caught.value.tokens > 60_000


def test_a_request_too_large_for_one_endpoint_skips_it(seed: Router) -> None:
    big = [{"role": "user", "content": "hey " * 8000}]  # ~8,000 tokens: over groq's 6,000 tpm
    assert seed.query(big)[0] == "cerebras"
    for _ in range(5):
        assert seed.query(big)[0] == "cerebras"  # tpm 60,000 holds six of ~9,040 tokens
    with pytest.raises(NoEndpointAvailable) as caught:
        seed.query(big)
    assert "too large" in str(caught.value)


def test_missing_key_skips_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("CEREBRAS_API_KEY", raising=False)
    monkeypatch.setenv("GROQ_API_KEY", KEY)
    path = tmp_path / "endpoints.csv"
    path.write_text(SEED_TABLE)
    router = Router.from_csv(path, store="memory://", clock=FakeClock())
    with caplog.at_level(logging.WARNING, logger="llamux"):
        assert router.query(HELLO)[0] == "groq"
        assert router.query(HELLO)[0] == "groq"
    warnings = [r for r in caplog.records if "CEREBRAS_API_KEY" in r.getMessage()]
    assert len(warnings) == 1
    assert [s.has_key for s in router.status()] == [False, True]


def test_model_selects_endpoints(seed: Router) -> None:
    assert seed.query(HELLO, model="llama-3.3-70b-versatile")[0] == "groq"
    assert seed.query(HELLO, model="cerebras:llama3.3-70b")[0] == "cerebras"
    assert seed.query(HELLO, model="auto")[0] == "cerebras"
    with pytest.raises(Exception, match="no endpoint or route serves model 'nope'"):
        seed.query(HELLO, model="nope")


def test_the_key_never_appears_in_reprs_or_errors(seed: Router) -> None:
    assert KEY not in repr(seed)
    exhaust(seed)
    with pytest.raises(NoEndpointAvailable) as caught:
        seed.query(HELLO)
    assert KEY not in str(caught.value) and KEY not in repr(caught.value.refusals)
    assert KEY not in repr(seed.status())


def test_priority_column_overrides_row_order(tmp_path: Path, keys: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "provider,model,rpm,priority\ncerebras,llama3.3-70b,30,2\ngroq,llama-3.3-70b-versatile,30,1\n"
    )
    router = Router.from_csv(path, store="memory://")
    assert router.query(HELLO)[0] == "groq"


def test_reset_forgets_usage(seed: Router) -> None:
    for _ in range(30):
        seed.query(HELLO)
    seed.reset("cerebras:llama3.3-70b")
    assert seed.query(HELLO)[0] == "cerebras"
    with pytest.raises(Exception, match="no endpoint is named"):
        seed.reset("nope")


def test_a_timeout_keeps_the_estimate_and_fails_over(tmp_path: Path, keys: str) -> None:
    with FakeProvider([FakeEndpoint("a", delay=2.0), FakeEndpoint("b")]) as fake:
        path = tmp_path / "t.md"
        path.write_text(fake_table(fake, [("a", "5 | 100000 |"), ("b", "| |")]))
        with Router.from_csv(path, store="memory://", timeout=0.3) as router:
            served = served_by(router.completion(HELLO, max_tokens=10))
            assert served is not None and served.endpoint == "b"
            assert served.attempts[0].outcome == "failed"
            assert "did not answer in time" in served.attempts[0].reason
            usage = used(router)
            # it may have been processed: the request and its estimate stay charged
            assert usage["rpm"] == 1 and usage["tpm"] == served.estimated_tokens
