"""The fake OpenAI-compatible provider, driven through the real openai SDK."""

from __future__ import annotations

import dataclasses
import http.client
import json
import math
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llamux._policy.key_info import key_hints
from llamux._policy.rate_limited import classify_429, stated_limits
from llamux._policy.ratelimits import Hint
from llamux.testing import (
    CUT,
    DIALECTS,
    DROP,
    INGRESS_HEADER,
    FakeChat,
    FakeClock,
    FakeEndpoint,
    FakeEndpointState,
    FakeHold,
    FakeProvider,
    FakeStats,
    count_prompt_tokens,
    count_text_tokens,
    go_duration,
    hold_on_clock,
)

from conftest import HI

REPLY = "Hello from the fake provider."  # 29 bytes -> 8 tokens


class Clock:
    """A hand-driven time function."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def client_for(fp: FakeProvider, name: str = "a", **kw: Any) -> openai.OpenAI:
    kw.setdefault("api_key", "test")
    return openai.OpenAI(base_url=fp.base_url(name), max_retries=0, **kw)


def ask(client: openai.OpenAI, model: str = "m", **kw: Any) -> Any:
    return client.chat.completions.create(model=model, messages=kw.pop("messages", HI), **kw)


def raw(fp: FakeProvider, method: str, path: str, body: bytes = b"", **headers: str) -> Any:
    port = urlsplit(fp.url).port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


@pytest.fixture
def provider(clock: Clock) -> Iterator[FakeProvider]:
    endpoints = [
        FakeEndpoint("a", model="m", rpm=30),
        FakeEndpoint("t", tpm=100),
        FakeEndpoint("d", rpd=2),
        FakeEndpoint("o", rpm=30, tpm=1000, rpd=5),
        FakeEndpoint("g", rpm=30, tpm=6000, rpd=1000, dialect="groq"),
        FakeEndpoint("k", api_key="secret", completion_tokens=50),
    ]
    with FakeProvider(endpoints, clock=clock) as fp:
        yield fp


@pytest.fixture
def client(provider: FakeProvider) -> Iterator[openai.OpenAI]:
    with client_for(provider) as c:
        yield c


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (90, "1m30s"),
        (360, "6m0s"),
        (0.012, "12ms"),
        (2.5, "2.5s"),
        (0, "0s"),
        (-3, "0s"),
        (0.0001, "1ms"),
        (60, "1m0s"),
        (179.56, "2m59.56s"),
        (3723, "1h2m3s"),
        (86400, "24h0m0s"),
    ],
)
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_token_formula() -> None:
    messages = [
        {"role": "system", "content": "You are terse."},  # 14 bytes -> 4 + 4
        {"role": "user", "content": "héllo wörld"},  # 13 bytes -> 4 + 4
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "abc"},
                {"type": "image_url", "image_url": {"url": "data:,x"}},
                {"type": "text", "text": "defgh"},
            ],
        },  # "abcdefgh" -> 4 + 2
        {"role": "assistant", "content": None},  # 4 + 0
    ]
    assert count_prompt_tokens(messages) == 8 + 8 + 6 + 4
    assert count_text_tokens(REPLY) == 8


def test_success_and_usage(client: openai.OpenAI, provider: FakeProvider) -> None:
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hé"}]
    result = ask(client, messages=messages)
    assert isinstance(result, openai.types.chat.ChatCompletion)
    assert result.id.startswith("chatcmpl-")
    assert result.model == "m"
    assert result.created == 1000
    assert result.choices[0].message.content == REPLY
    assert result.choices[0].finish_reason == "stop"
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (8 + 5, 8)
    assert result.usage.total_tokens == 21
    assert provider.stats("a") == FakeStats(1, 0, 0, 13, 8, 21)


def test_max_tokens_caps_the_completion(client: openai.OpenAI) -> None:
    result = ask(client, max_tokens=4)
    assert result.choices[0].finish_reason == "length"
    assert result.usage.completion_tokens == 4
    assert result.choices[0].message.content == REPLY[: len(REPLY) * 4 // 8]
    result = ask(client, max_completion_tokens=100)
    assert (result.choices[0].finish_reason, result.usage.completion_tokens) == ("stop", 8)


def test_fixed_completion_tokens(provider: FakeProvider) -> None:
    with client_for(provider, "k", api_key="secret") as c:
        assert ask(c).usage.completion_tokens == 50
        capped = ask(c, max_tokens=10)
    assert capped.usage.completion_tokens == 10
    assert capped.choices[0].message.content == REPLY[: len(REPLY) * 10 // 50]


def test_rpm_is_exact(client: openai.OpenAI, provider: FakeProvider, clock: Clock) -> None:
    for i in range(30):
        clock.now = 1000.0 + i
        ask(client)
    clock.now = 1029.5
    with pytest.raises(openai.RateLimitError) as info:
        ask(client)
    err = info.value
    assert err.status_code == 429
    assert err.response.headers["retry-after"] == "31"  # the 1000.0 request leaves at 1060
    assert err.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert err.response.headers["x-ratelimit-reset-requests"] == "59.5s"  # newest at 1029
    assert err.body == {
        "message": "Rate limit reached for model `m` on requests per minute (RPM): Limit 30, "
        "Used 30, Requested 1. Please try again in 30.5s.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    clock.now = 1059.999
    with pytest.raises(openai.RateLimitError):
        ask(client)
    clock.now = 1060.0  # events at t <= now - 60 have left the window
    ask(client)
    assert provider.stats("a") == FakeStats(31, 2, 0, 31 * 5, 31 * 8, 31 * 13)


def test_rpm_fixed_time_retry_after(client: openai.OpenAI, clock: Clock) -> None:
    for _ in range(30):
        ask(client)
    with pytest.raises(openai.RateLimitError) as info:
        ask(client)
    assert info.value.response.headers["retry-after"] == "60"
    assert "Please try again in 1m0s." in info.value.message
    clock.now += 60.001
    ask(client)


def test_tpm_charges_max_tokens_up_front(provider: FakeProvider, clock: Clock) -> None:
    with client_for(provider, "t") as c:
        ask(c, max_tokens=95)  # charge 5 + 95 = 100 <= 100; records 5 + 8 = 13
        with pytest.raises(openai.RateLimitError) as info:
            ask(c, max_tokens=90)  # 13 + 95 > 100
        body: Any = info.value.body
        assert body["type"] == "tokens"
        assert body["message"] == (
            "Rate limit reached for model `m` on tokens per minute (TPM): Limit 100, Used 13, "
            "Requested 95. Please try again in 1m0s."
        )
        headers = info.value.response.headers
        assert headers["x-ratelimit-remaining-tokens"] == "87"
        assert headers["retry-after"] == "60"
        response = c.chat.completions.with_raw_response.create(model="m", messages=HI)
        assert response.headers["x-ratelimit-remaining-tokens"] == str(100 - 26)
        with pytest.raises(openai.RateLimitError) as info:
            ask(c, max_tokens=200)  # could never fit: no retry-after
        assert "Request too large" in info.value.message
        assert "retry-after" not in info.value.response.headers
        clock.now += 60
        ask(c, max_tokens=95)
    assert provider.stats("t") == FakeStats(3, 2, 0, 15, 24, 39)


def test_rpd(provider: FakeProvider, clock: Clock) -> None:
    with client_for(provider, "d") as c:
        ask(c)
        clock.now += 3600
        ask(c)
        clock.now += 60
        with pytest.raises(openai.RateLimitError) as info:
            ask(c)
        assert "requests per day (RPD): Limit 2, Used 2" in info.value.message
        assert info.value.response.headers["retry-after"] == str(86400 - 3660)
        clock.now = 1000.0 + 86400
        ask(c)


def test_openai_dialect_headers(provider: FakeProvider, clock: Clock) -> None:
    with client_for(provider, "o") as c:
        first = c.chat.completions.with_raw_response.create(model="x", messages=HI)
        clock.now += 15
        second = c.chat.completions.with_raw_response.create(model="x", messages=HI)
    assert first.http_response.status_code == 200
    assert first.headers["x-request-id"].startswith("req_")
    expected = {
        "x-ratelimit-limit-requests": "30",
        "x-ratelimit-remaining-requests": "28",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": str(1000 - 26),
        "x-ratelimit-reset-tokens": "1m0s",
    }
    assert {k: second.headers[k] for k in expected} == expected


def test_groq_dialect_headers(provider: FakeProvider, clock: Clock) -> None:
    with client_for(provider, "g") as c:
        c.chat.completions.create(model="x", messages=HI)
        clock.now += 30
        response = c.chat.completions.with_raw_response.create(model="x", messages=HI)
    expected = {
        "x-ratelimit-limit-requests": "1000",  # the per-day limit
        "x-ratelimit-remaining-requests": "998",
        "x-ratelimit-reset-requests": "24h0m0s",
        "x-ratelimit-limit-tokens": "6000",
        "x-ratelimit-remaining-tokens": str(6000 - 26),
        "x-ratelimit-reset-tokens": "1m0s",
    }
    assert {k: response.headers[k] for k in expected} == expected


def test_only_configured_limits_have_headers(client: openai.OpenAI) -> None:
    response = client.chat.completions.with_raw_response.create(model="m", messages=HI)
    assert response.headers["x-ratelimit-limit-requests"] == "30"
    assert "x-ratelimit-limit-tokens" not in response.headers


def test_reset_reflects_newest_event(client: openai.OpenAI, clock: Clock) -> None:
    for _ in range(30):
        ask(client)
    clock.now += 15
    with pytest.raises(openai.RateLimitError) as info:
        ask(client)
    assert info.value.response.headers["x-ratelimit-reset-requests"] == "45s"
    assert info.value.response.headers["retry-after"] == "45"


def test_streaming_with_usage(client: openai.OpenAI, provider: FakeProvider) -> None:
    stream = ask(client, stream=True, stream_options={"include_usage": True}, max_tokens=100)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len(chunks) > 4
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 8)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert provider.stats("a") == FakeStats(1, 0, 0, 5, 8, 13)


def test_streaming_without_usage_and_capped(client: openai.OpenAI) -> None:
    chunks = list(ask(client, stream=True, max_tokens=2))
    assert all(c.usage is None and c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "length"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == REPLY[: 29 * 2 // 8]


def test_streaming_is_rate_limited(client: openai.OpenAI) -> None:
    for _ in range(30):
        list(ask(client, stream=True))
    with pytest.raises(openai.RateLimitError):
        ask(client, stream=True)


def test_injected_status_then_success(client: openai.OpenAI, provider: FakeProvider) -> None:
    provider.inject("a", 500, count=2)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as info:
            ask(client)
        assert info.value.status_code == 500
    assert ask(client).choices[0].message.content == REPLY
    body = '{"error": {"message": "custom", "type": "x", "param": null, "code": "c"}}'
    provider.inject("a", 503, body=body, headers={"retry-after": "7"})
    with pytest.raises(openai.APIStatusError) as status_info:
        ask(client)
    assert status_info.value.body == {"message": "custom", "type": "x", "param": None, "code": "c"}
    assert status_info.value.response.headers["retry-after"] == "7"
    assert provider.stats("a") == FakeStats(1, 0, 3, 5, 8, 13)


def test_dropped_connection(client: openai.OpenAI, provider: FakeProvider) -> None:
    provider.inject("a", 0)
    with pytest.raises(openai.APIConnectionError):
        ask(client)
    ask(client)
    assert provider.stats("a") == FakeStats(1, 0, 1, 5, 8, 13)


def test_cut_stream(client: openai.OpenAI, provider: FakeProvider) -> None:
    provider.inject("a", -1)
    stream = ask(client, stream=True)
    seen = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            seen.append(chunk)
    assert 1 <= len(seen) <= 2
    assert provider.stats("a") == FakeStats(0, 0, 1, 5, 8, 13)  # failed, yet charged
    assert len(list(ask(client, stream=True))) > 2


def test_cut_plain_response(client: openai.OpenAI, provider: FakeProvider) -> None:
    provider.inject("a", -1)
    with pytest.raises(openai.APIConnectionError):
        ask(client)
    assert provider.stats("a").failed == 1


def test_cut_waits_for_an_admitted_request(client: openai.OpenAI, provider: FakeProvider) -> None:
    for _ in range(30):
        ask(client)
    provider.inject("a", -1)
    with pytest.raises(openai.RateLimitError):
        ask(client)
    assert provider.stats("a").failed == 0


def test_auth(provider: FakeProvider) -> None:
    status, body = raw(provider, "POST", "/a/v1/chat/completions", b"{}")
    assert status == 401
    assert body["error"]["code"] == "invalid_api_key"
    with client_for(provider, "k", api_key="wrong") as c, pytest.raises(openai.AuthenticationError):
        ask(c)
    with client_for(provider, "k", api_key="secret") as c:
        ask(c)


def test_not_found(provider: FakeProvider, client: openai.OpenAI) -> None:
    with openai.OpenAI(base_url=f"{provider.url}/zzz/v1", api_key="k", max_retries=0) as c:
        with pytest.raises(openai.NotFoundError) as info:
            ask(c)
        body: Any = info.value.body
        assert set(body) == {"message", "type", "param", "code"}
    with pytest.raises(openai.NotFoundError) as info:
        ask(client, model="other")
    assert info.value.code == "model_not_found"
    status, _ = raw(provider, "GET", "/a/v1/nope", Authorization="Bearer k")
    assert status == 404


def test_bad_requests(provider: FakeProvider, client: openai.OpenAI) -> None:
    status, body = raw(
        provider, "POST", "/a/v1/chat/completions", b"{not json", Authorization="Bearer k"
    )
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError):
        ask(client, max_tokens=0)
    with pytest.raises(openai.BadRequestError):
        ask(client, messages=[])


def test_models(provider: FakeProvider) -> None:
    with client_for(provider) as c:
        assert [m.id for m in c.models.list()] == ["m"]


def test_stats_and_reset(provider: FakeProvider, client: openai.OpenAI) -> None:
    ask(client)
    provider.inject("a", 502)
    with pytest.raises(openai.APIStatusError):
        ask(client)
    assert provider.stats("a") == FakeStats(1, 0, 1, 5, 8, 13)
    assert provider.stats("t") == FakeStats()
    provider.reset_stats()
    assert provider.stats("a") == FakeStats()
    with pytest.raises(KeyError):
        provider.stats("nope")


def test_concurrent_admission_is_exact(provider: FakeProvider, client: openai.OpenAI) -> None:
    def one(_: int) -> bool:
        try:
            ask(client)
        except openai.RateLimitError:
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(40)))
    assert results.count(True) == 30
    assert provider.stats("a") == FakeStats(30, 10, 0, 150, 240, 390)


def test_delay_and_stop_while_sleeping() -> None:
    with FakeProvider([FakeEndpoint("a")]) as fp, client_for(fp, timeout=5) as c:
        fp.set_delay("a", 0.05)
        started = time.monotonic()
        ask(c)
        assert time.monotonic() - started >= 0.05
        fp.set_delay("a", 30)
        with client_for(fp, timeout=0.1) as quick, pytest.raises(openai.APITimeoutError):
            ask(quick)
        started = time.monotonic()
        fp.stop()
        assert time.monotonic() - started < 2


def test_validation() -> None:
    with pytest.raises(ValueError, match="'openai', 'groq', 'cerebras'"):
        FakeEndpoint("a", dialect="azure")
    with pytest.raises(ValueError, match="timezone"):
        FakeEndpoint("a", day_reset="Mars/Olympus_Mons")
    with pytest.raises(ValueError):
        FakeEndpoint("a/b")
    with pytest.raises(ValueError):
        FakeProvider([FakeEndpoint("a"), FakeEndpoint("a")])
    fp = FakeProvider([FakeEndpoint("a")])
    with pytest.raises(RuntimeError):
        _ = fp.url
    with pytest.raises(ValueError):
        fp.inject("a", 42)
    fp.start()
    try:
        assert fp.base_url("a") == f"{fp.url}/a/v1"
        assert fp.url.startswith("http://127.0.0.1:")
    finally:
        fp.stop()
    fp.stop()  # idempotent


def _reference(
    events: list[tuple[float, int]], now: float, ep: FakeEndpoint, charge: int
) -> float | None:
    """The earliest time >= now at which the spec admits the request (None: never)."""

    def admits(at: float) -> bool:
        def window(w: float) -> list[int]:
            return [n for t, n in events if t > at - w]

        checks = [
            (ep.rpm, len(window(60)) + 1),
            (ep.rpd, len(window(86400)) + 1),
            (ep.tpm, sum(window(60)) + charge),
        ]
        return all(limit is None or need <= limit for limit, need in checks)

    candidates = sorted({now} | {t + w for t, _ in events for w in (60.0, 86400.0) if t + w > now})
    return next((at for at in candidates if admits(at)), None)


@settings(max_examples=150, deadline=None)
@given(
    limits=st.tuples(
        st.none() | st.integers(1, 5),
        st.none() | st.integers(40, 120),
        st.none() | st.integers(2, 9),
    ),
    steps=st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.5, 1.0, 7.0, 30.0, 59.5, 60.0, 61.0, 3600.0, 86400.0]),
            st.integers(1, 40),
            st.none() | st.integers(1, 60),
            st.integers(1, 30),
        ),
        max_size=25,
    ),
)
def test_limiter_matches_the_spec(
    limits: tuple[int | None, int | None, int | None],
    steps: list[tuple[float, int, int | None, int]],
) -> None:
    rpm, tpm, rpd = limits
    ep = FakeEndpoint("p", rpm=rpm, tpm=tpm, rpd=rpd)
    state = FakeEndpointState(ep)
    events: list[tuple[float, int]] = []
    now = 1000.0
    for dt, prompt, cap, completion in steps:
        now += dt
        chat = FakeChat("m", prompt, cap, False, False)
        charge = prompt + (cap if cap is not None else completion)
        expected = _reference(events, now, ep, charge)
        verdict = state.admit(Clock(now), chat, completion)
        assert (verdict.refusal is None) == (expected == now)
        if verdict.refusal is None:
            events.append((now, prompt + completion))
        elif expected is None:
            assert "retry-after" not in verdict.headers
        else:
            assert verdict.headers["retry-after"] == str(max(1, math.ceil(expected - now)))


# -- ingress holds: a request is counted when it arrives ---------------------------------------


@pytest.fixture
def fclock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def held(fclock: FakeClock) -> Iterator[FakeProvider]:
    """Endpoints whose ingress holds pass on ``fclock`` instead of real time."""
    endpoints = [
        FakeEndpoint("a", rpm=1),
        FakeEndpoint("b", ingress=0.25),
        FakeEndpoint("t", tpm=30),
    ]
    with FakeProvider(endpoints, clock=fclock.now, hold=hold_on_clock(fclock)) as fp:
        yield fp


def held_for(fp: FakeProvider, name: str) -> list[float]:
    return [row.held for row in fp.trace(name)]


def test_a_held_request_counts_from_its_arrival(held: FakeProvider, fclock: FakeClock) -> None:
    held.set_ingress("a", 0.4, first=1)
    with client_for(held) as c:
        ask(c)  # sent at 1000.0, arrives and is counted at 1000.4
        (first,) = held.trace("a")
        assert (first.entered, first.held, first.status) == (1000.0, 0.4, 200)
        assert first.at == pytest.approx(1000.4)
        assert fclock.now() == pytest.approx(1000.4)
        fclock.set(1060.0)  # 60 s after the first was sent, 59.6 s after it arrived
        with pytest.raises(openai.RateLimitError) as refused:
            ask(c)
        assert refused.value.response.headers["retry-after"] == "1"
        fclock.set(1060.399)
        with pytest.raises(openai.RateLimitError):
            ask(c)
        fclock.set(1060.4)  # 60 s after the first arrived: it has left the window
        ask(c)
    rows = held.trace("a")
    assert [(r.status, r.limit, r.held) for r in rows] == [
        (200, None, 0.4),
        (429, "rpm", 0.0),
        (429, "rpm", 0.0),
        (200, None, 0.0),
    ]
    assert rows[1].retry_in == pytest.approx(0.4)
    assert rows[2].retry_in == pytest.approx(0.001)
    assert [r.at for r in rows[1:]] == [1060.0, 1060.399, 1060.4]
    assert held.stats("a") == FakeStats(2, 2, 0, 10, 16, 26)


def test_set_ingress_for_the_next_k_then_the_endpoints_own(held: FakeProvider) -> None:
    with client_for(held, "b") as c:
        ask(c)
        held.set_ingress("b", 1.0, first=2)
        for _ in range(3):
            ask(c)
        held.set_ingress("b", 0.5)  # every request from now on
        ask(c)
        held.set_ingress("b", 0.0)
        ask(c)
    assert held_for(held, "b") == [0.25, 1.0, 1.0, 0.25, 0.5, 0.0]
    assert all(r.at == pytest.approx(r.entered + r.held) for r in held.trace("b"))


def test_ingress_of_one_request_by_header_or_metadata(held: FakeProvider) -> None:
    with client_for(held, "b") as c:
        ask(c, extra_headers={INGRESS_HEADER: "400"})
        ask(c, metadata={"fake_ingress_ms": "150"})
        ask(c, metadata={"fake_ingress_ms": "150"}, extra_headers={INGRESS_HEADER: "0"})
        held.set_ingress("b", 2.0, first=1)
        ask(c, extra_headers={INGRESS_HEADER: "10"})  # takes the first-K hold's place
        ask(c)
        for bad in ("soon", "-1", "nan", "inf"):
            with pytest.raises(openai.BadRequestError, match="milliseconds >= 0"):
                ask(c, extra_headers={INGRESS_HEADER: bad})
        with pytest.raises(openai.BadRequestError, match=r"metadata\.fake_ingress_ms"):
            ask(c, extra_body={"metadata": {"fake_ingress_ms": True}})
    assert held_for(held, "b") == [0.4, 0.15, 0.0, 0.01, 0.25]


def test_a_held_request_is_not_counted_before_it_arrives() -> None:
    """While one request is held, a later one arrives first and takes the only slot."""
    entered, release = threading.Event(), threading.Event()

    def hold(h: FakeHold) -> None:
        entered.set()
        assert release.wait(5)

    with FakeProvider([FakeEndpoint("a", rpm=1)], hold=hold) as fp:
        fp.set_ingress("a", 0.3, first=1)
        with client_for(fp, timeout=5) as c, ThreadPoolExecutor(1) as pool:
            slow = pool.submit(ask, c)
            assert entered.wait(5)
            ask(c)  # sent after the held one, counted before it
            release.set()
            with pytest.raises(openai.RateLimitError):
                slow.result(timeout=5)
    assert [(r.held, r.status) for r in fp.trace("a")] == [(0.0, 200), (0.3, 429)]


def test_ingress_really_waits_and_stop_cuts_it_short() -> None:
    with FakeProvider([FakeEndpoint("a", ingress=0.2)]) as fp, client_for(fp, timeout=5) as c:
        started = time.monotonic()
        ask(c)
        assert time.monotonic() - started >= 0.2
        (row,) = fp.trace("a")
        assert row.held == 0.2 and row.at - row.entered >= 0.19  # the real clock moved
        fp.set_ingress("a", 30)
        with client_for(fp, timeout=0.2) as quick, pytest.raises(openai.APITimeoutError):
            ask(quick)
        started = time.monotonic()
        fp.stop()
        assert time.monotonic() - started < 2
    assert len(fp.trace("a")) == 1  # the request stopped in its hold was never counted
    assert fp.stats("a") == FakeStats(1, 0, 0, 5, 8, 13)


def test_hold_on_clock_moves_to_the_arrival_never_back() -> None:
    clock = FakeClock(1000.0)
    hold = hold_on_clock(clock)
    hold(FakeHold("a", 0.4, 1000.0))
    assert clock.now() == pytest.approx(1000.4)
    hold(FakeHold("a", 0.4, 1000.0))  # held at the same time as the first: arrives with it
    assert clock.now() == pytest.approx(1000.4)
    hold(FakeHold("a", 0.1, 1000.0))
    assert clock.now() == pytest.approx(1000.4)
    hold(FakeHold("a", 0.5, 1000.4))
    assert clock.now() == pytest.approx(1000.9)


def test_hold_on_clock_with_concurrent_requests(held: FakeProvider, fclock: FakeClock) -> None:
    held.set_ingress("b", 0.4)
    with client_for(held, "b") as c, ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: ask(c), range(8)))
    rows = held.trace("b")
    assert len(rows) == 8 and all(r.status == 200 for r in rows)
    assert all(r.at >= r.entered + 0.4 - 1e-9 for r in rows)
    assert 1000.4 - 1e-9 <= fclock.now() <= 1000.0 + 8 * 0.4 + 1e-9


def test_ingress_validation() -> None:
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match="ingress must be a finite number"):
            FakeEndpoint("a", ingress=bad)
    fp = FakeProvider([FakeEndpoint("a")])
    with pytest.raises(ValueError, match="seconds must be"):
        fp.set_ingress("a", -1)
    with pytest.raises(ValueError, match="first must be"):
        fp.set_ingress("a", 1, first=-1)
    with pytest.raises(KeyError):
        fp.set_ingress("nope", 1)


# -- the trace -----------------------------------------------------------------------------------


def test_trace_of_admitted_refused_and_failed(held: FakeProvider, fclock: FakeClock) -> None:
    with client_for(held, "t") as c:
        ask(c)  # 5 + 8 = 13 tokens
        fclock.advance(1)
        with pytest.raises(openai.RateLimitError):
            ask(c, max_tokens=20)  # asks for 5 + 20 = 25: 13 + 25 > 30
        held.inject("t", 503)
        with pytest.raises(openai.InternalServerError):
            ask(c)
        held.inject("t", DROP)
        with pytest.raises(openai.APIConnectionError):
            ask(c)
        held.inject("t", CUT)
        with pytest.raises(openai.APIError):
            ask(c, max_tokens=4)
        with pytest.raises(openai.RateLimitError):
            ask(c, max_tokens=50)  # can never fit tpm=30
    rows = held.trace("t")
    assert [(r.status, r.admitted, r.limit, r.tokens, r.cut) for r in rows] == [
        (200, True, None, 13, False),
        (429, False, "tpm", 25, False),
        (503, False, None, 0, False),
        (DROP, False, None, 0, False),
        (200, True, None, 9, True),
        (429, False, "tpm", 55, False),
    ]
    assert rows[0].at == 1000.0 and rows[1].at == 1001.0
    assert rows[1].retry_in == pytest.approx(59.0)
    assert rows[-1].retry_in is None
    assert all(r.request_id.startswith("req_") for r in rows)
    assert len({r.request_id for r in rows}) == len(rows)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rows[0].status = 500  # type: ignore[misc]


def test_trace_of_every_endpoint_reset_and_bounded(fclock: FakeClock) -> None:
    endpoints = [FakeEndpoint("x"), FakeEndpoint("y")]
    with FakeProvider(endpoints, clock=fclock.now, trace_limit=3) as fp:
        for step, name in enumerate("xyxyxx"):
            fclock.set(1000.0 + step)
            with client_for(fp, name) as c:
                ask(c)
        assert [r.at for r in fp.trace("x")] == [1002.0, 1004.0, 1005.0]  # the last 3
        assert [(r.endpoint, r.at) for r in fp.trace()] == [
            ("y", 1001.0),
            ("x", 1002.0),
            ("y", 1003.0),
            ("x", 1004.0),
            ("x", 1005.0),
        ]
        fp.reset_stats()
        assert fp.trace() == () and fp.stats("x") == FakeStats()
        with pytest.raises(KeyError):
            fp.trace("nope")


def test_the_trace_response_id_is_the_answers_request_id(provider: FakeProvider) -> None:
    with client_for(provider) as c:
        answer = c.chat.completions.with_raw_response.create(model="m", messages=HI)
    (row,) = provider.trace("a")
    assert answer.headers["x-request-id"] == row.request_id


# -- 429s as the strictest real providers send them ------------------------------------------


def test_429_without_retry_after_keeps_the_body_hint(fclock: FakeClock) -> None:
    ep = FakeEndpoint("g", rpm=30, rpd=1, dialect="groq", retry_after=False)
    with FakeProvider([ep], clock=fclock.now) as fp, client_for(fp, "g") as c:
        ask(c)
        fclock.advance(3.5)
        with pytest.raises(openai.RateLimitError) as info:
            ask(c)
    headers = info.value.response.headers
    assert "retry-after" not in headers
    assert headers["x-ratelimit-remaining-requests"] == "0"  # the other headers stay
    assert "Please try again in 23h59m56.5s." in info.value.message
    verdict = classify_429("groq", dict(headers), info.value.body, fclock.now())
    assert verdict.window == "day"
    assert verdict.retry_at == pytest.approx(1000.0 + 86_400, abs=0.01)


def test_groq_states_its_daily_token_limit_only_in_the_429_body(fclock: FakeClock) -> None:
    ep = FakeEndpoint("g", rpd=1000, tpm=8000, tpd=200, dialect="groq", retry_after=False)
    with FakeProvider([ep], clock=fclock.now) as fp, client_for(fp, "g") as c:
        ok = c.chat.completions.with_raw_response.create(model="m", messages=HI, max_tokens=190)
        assert "200" not in ok.headers.values()  # no header names the daily token limit
        fclock.advance(60)  # the minute is whole again: every header says tokens remain
        with pytest.raises(openai.RateLimitError) as info:
            ask(c, max_tokens=190)
    headers = info.value.response.headers
    assert headers["x-ratelimit-remaining-tokens"] == "8000"
    assert headers["x-ratelimit-limit-tokens"] == "8000"
    assert "retry-after" not in headers
    assert "200" not in headers.values()
    message = info.value.message
    assert "in organization `org_01fake` service tier `on_demand`" in message
    assert "on tokens per day (TPD): Limit 200, Used 13, Requested 195." in message
    assert "Please try again in 23h59m0s." in message
    assert message.endswith("https://console.groq.com/settings/billing")
    verdict = classify_429("groq", dict(headers), info.value.body, fclock.now())
    assert verdict.window == "day"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_limits_only_in_429_bodies(fclock: FakeClock, dialect: str) -> None:
    ep = FakeEndpoint("e", rpm=1, tpm=100, rpd=10, dialect=dialect, rate_headers=False)
    with FakeProvider([ep], clock=fclock.now) as fp, client_for(fp, "e") as c:
        ok = c.chat.completions.with_raw_response.create(model="m", messages=HI)
        assert not [k for k in ok.headers if "ratelimit" in k.lower()]
        with pytest.raises(openai.RateLimitError) as info:
            ask(c)
    headers = info.value.response.headers
    assert not [k for k in headers if "ratelimit" in k.lower()]
    has_retry_after = dialect in {"openai", "groq", "anthropic", "cerebras", "mistral"}
    assert ("retry-after" in headers) == has_retry_after
    if dialect in {"openai", "groq"}:
        assert "Limit 1, Used 1, Requested 1." in info.value.message


NOON = 1_767_268_800.0  # 2026-01-01T12:00:00Z: OpenRouter's epoch-ms resets need a real date
BODY_LIMITS = {  # what stated_limits reads in the fake's 429 bodies (rpm=1, used 1)
    "openai": [Hint("requests", "minute", 1, 0, NOON + 60, 1)],
    "groq": [Hint("requests", "minute", 1, 0, NOON + 60, 1)],
    "sambanova": [Hint("requests", "minute", 1, 0, None, 1)],
    "gemini": [Hint("requests", "minute", 1, None, None)],
    "anthropic": [Hint("requests", "minute", 1, None, None)],
    "openrouter": [Hint("requests", "minute", 1, 0, NOON + 60)],  # its body copies its headers
    "cerebras": [],  # "Requests per minute limit exceeded": no number
    "mistral": [],
}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_fakes_429_bodies_state_their_limits(dialect: str) -> None:
    clock = FakeClock(NOON)
    ep = FakeEndpoint("e", rpm=1, dialect=dialect, rate_headers=False)
    with FakeProvider([ep], clock=clock.now) as fp, client_for(fp, "e") as c:
        ask(c)
        with pytest.raises(openai.RateLimitError) as info:
            ask(c)
    headers, body = dict(info.value.response.headers), info.value.body
    assert list(stated_limits(dialect, headers, body, clock.now())) == BODY_LIMITS[dialect]


def test_the_fakes_groq_tpd_429_states_limit_and_usage(fclock: FakeClock) -> None:
    ep = FakeEndpoint("g", tpd=200, dialect="groq", rate_headers=False)
    with FakeProvider([ep], clock=fclock.now) as fp, client_for(fp, "g") as c:
        ask(c, max_tokens=190)
        fclock.advance(60)
        with pytest.raises(openai.RateLimitError) as info:
            ask(c, max_tokens=190)
    got = stated_limits("groq", dict(info.value.response.headers), info.value.body, fclock.now())
    assert got == (Hint("tokens", "day", 200, 187, 1000.0 + 86400, 13),)


# -- OpenRouter's key endpoint ---------------------------------------------------------------

OR_KEY = "sk-or-v1-0123456789abcdef"


def key_path(fp: FakeProvider, name: str) -> str:
    """Where a client finds the key endpoint: beside its base URL, as OpenRouter's."""
    return urlsplit(fp.base_url(name)).path + "/key"


@pytest.fixture
def openrouter(fclock: FakeClock) -> Iterator[FakeProvider]:
    endpoints = [
        FakeEndpoint("or", dialect="openrouter", rpm=20, rpd=50, day_reset="UTC", api_key=OR_KEY),
        FakeEndpoint("rich", dialect="openrouter", rpm=20, rpd=1000),
        FakeEndpoint("minute", dialect="openrouter", rpm=20),
        FakeEndpoint("plain", rpd=50),
    ]
    with FakeProvider(endpoints, clock=fclock.now) as fp:
        yield fp


def test_openrouter_key_endpoint_has_the_real_shape(openrouter: FakeProvider) -> None:
    status, body = raw(openrouter, "GET", "/or/v1/key", Authorization=f"Bearer {OR_KEY}")
    assert status == 200
    assert body == {
        "data": {
            "label": "sk-or-v1-012...def",
            "limit": None,
            "limit_remaining": None,
            "limit_reset": None,
            "include_byok_in_limit": False,
            "usage": 0,
            "usage_daily": 0,
            "usage_weekly": 0,
            "usage_monthly": 0,
            "byok_usage": 0,
            "byok_usage_daily": 0,
            "byok_usage_weekly": 0,
            "byok_usage_monthly": 0,
            "is_free_tier": True,
            "is_management_key": False,
            "is_provisioning_key": False,
            "creator_user_id": None,
            "expires_at": None,
            "free_model_daily_requests": {"limit": 50, "remaining": 50, "used": 0},
            "rate_limit": {
                "requests": -1,
                "interval": "10s",
                "note": "This field is deprecated and safe to ignore.",
            },
        }
    }
    assert key_path(openrouter, "or") == "/or/v1/key"


def test_openrouter_key_endpoint_counts_from_the_fakes_own_counters(
    openrouter: FakeProvider, fclock: FakeClock
) -> None:
    auth = {"Authorization": f"Bearer {OR_KEY}"}
    with client_for(openrouter, "or", api_key=OR_KEY) as c:
        ask(c)
        ask(c)
    daily = raw(openrouter, "GET", "/or/v1/key", **auth)[1]["data"]["free_model_daily_requests"]
    assert daily == {"limit": 50, "remaining": 48, "used": 2}
    fclock.set(86400.0 * math.ceil(fclock.now() / 86400))  # the next UTC midnight
    daily = raw(openrouter, "GET", "/or/v1/key", **auth)[1]["data"]["free_model_daily_requests"]
    assert daily == {"limit": 50, "remaining": 50, "used": 0}


def test_openrouter_key_endpoint_reads_as_llamux_reads_the_real_one(
    openrouter: FakeProvider, fclock: FakeClock
) -> None:
    with client_for(openrouter, "or", api_key=OR_KEY) as c:
        ask(c)
    body = raw(openrouter, "GET", "/or/v1/key", Authorization=f"Bearer {OR_KEY}")[1]
    assert key_hints(body, fclock.now()) == (Hint("requests", "day", 50, 49, 86400.0, 1),)


def test_openrouter_key_endpoint_is_not_a_request(openrouter: FakeProvider) -> None:
    openrouter.inject("or", 500)
    for _ in range(25):  # more than its rpm
        assert raw(openrouter, "GET", "/or/v1/key", Authorization=f"Bearer {OR_KEY}")[0] == 200
    assert openrouter.stats("or") == FakeStats()
    assert openrouter.trace("or") == ()
    with client_for(openrouter, "or", api_key=OR_KEY) as c:
        with pytest.raises(openai.InternalServerError):
            ask(c)  # the injected fault was left for a chat request
        ask(c)
    assert openrouter.stats("or").served == 1


def test_openrouter_key_endpoint_is_authenticated(openrouter: FakeProvider) -> None:
    assert raw(openrouter, "GET", "/or/v1/key")[0] == 401
    status, body = raw(openrouter, "GET", "/or/v1/key", Authorization="Bearer wrong")
    assert (status, body["error"]["code"]) == (401, "invalid_api_key")
    assert raw(openrouter, "GET", "/rich/v1/key", Authorization="Bearer any")[0] == 200


def test_openrouter_key_endpoint_tiers_and_no_daily_limit(openrouter: FakeProvider) -> None:
    rich = raw(openrouter, "GET", "/rich/v1/key", Authorization="Bearer k")[1]["data"]
    assert rich["is_free_tier"] is False
    assert rich["free_model_daily_requests"] == {"limit": 1000, "remaining": 1000, "used": 0}
    assert rich["label"] == "..."  # a short key is not shown, even in part
    minute = raw(openrouter, "GET", "/minute/v1/key", Authorization="Bearer k")[1]["data"]
    assert (minute["free_model_daily_requests"], minute["is_free_tier"]) == (None, False)


def test_only_openrouter_has_a_key_endpoint(openrouter: FakeProvider) -> None:
    status, body = raw(openrouter, "GET", "/plain/v1/key", Authorization="Bearer k")
    assert (status, body["error"]["code"]) == (404, "unknown_url")
    assert raw(openrouter, "POST", "/or/v1/key", Authorization=f"Bearer {OR_KEY}")[0] == 404


# -- exact rolling windows, counted at arrival ----------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    rpm=st.integers(1, 3),
    steps=st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.1, 0.4, 1.0, 29.6, 59.6, 59.9, 60.0]),  # before sending
            st.sampled_from([0, 100, 400, 700]),  # ingress hold, milliseconds
        ),
        max_size=10,
    ),
)
def test_held_requests_meet_an_exact_window_at_arrival(
    rpm: int, steps: list[tuple[float, int]]
) -> None:
    clock = FakeClock(1000.0)
    arrivals: list[float] = []
    endpoint = FakeEndpoint("e", rpm=rpm)
    with (
        FakeProvider([endpoint], clock=clock.now, hold=hold_on_clock(clock)) as fp,
        client_for(fp, "e") as c,
    ):
        for gap, hold_ms in steps:
            clock.advance(gap)
            sent = clock.now()
            arrival = sent + hold_ms / 1000
            fits = len([t for t in arrivals if t > arrival - 60]) < rpm
            try:
                ask(c, extra_headers={INGRESS_HEADER: str(hold_ms)})
            except openai.RateLimitError:
                assert not fits
            else:
                assert fits
                arrivals.append(arrival)
            assert fp.trace("e")[-1].at == pytest.approx(arrival)


def test_answers_without_usage(fclock: FakeClock) -> None:
    with (
        FakeProvider([FakeEndpoint("n", tpm=100, usage=False)], clock=fclock.now) as fp,
        client_for(fp, "n") as c,
    ):
        answer = c.chat.completions.with_raw_response.create(model="m", messages=HI)
        assert "usage" not in json.loads(answer.http_response.text)
        assert answer.parse().usage is None
        asked = {"include_usage": True}
        chunks = list(ask(c, stream=True, stream_options=asked))
        assert chunks and all(chunk.usage is None and chunk.choices for chunk in chunks)
        assert answer.headers["x-ratelimit-remaining-tokens"] == "87"  # still charged
    assert fp.stats("n") == FakeStats(2, 0, 0, 10, 16, 26)
    assert [row.tokens for row in fp.trace("n")] == [13, 13]


def test_chunk_delay_spaces_a_streams_events() -> None:
    with (
        FakeProvider([FakeEndpoint("s", reply="one two three", chunk_delay=0.05)]) as fp,
        client_for(fp, "s", timeout=5) as c,
    ):
        started = time.monotonic()
        stream = ask(c, stream=True)
        arrivals = [time.monotonic() - started for _ in stream]
        assert len(arrivals) == 5  # role, three pieces, finish
        # from the request, not the first chunk: the SDK's first parse of a chunk may take
        # longer than the next ones, which would make the gap look shorter than it was
        assert arrivals[-1] >= 4 * 0.05
        with pytest.raises(ValueError, match="chunk_delay"):
            FakeEndpoint("s", chunk_delay=-1)
