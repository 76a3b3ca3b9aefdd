"""Every kind of request the fake provider serves goes through the same machinery as chat:
exact limits counted at arrival, the dialects' headers and 429s, faults, holds, the trace,
the stats, the key; and an endpoint refuses the kinds it does not serve."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

from llamux.testing import (
    CUT,
    DIALECTS,
    DROP,
    INGRESS_HEADER,
    KINDS,
    FakeClock,
    FakeEndpoint,
    FakeProvider,
    FakeStats,
    hold_on_clock,
)

from conftest import HI


def _chat(c: openai.OpenAI, model: str = "m", **kw: Any) -> Any:
    return c.chat.completions.create(model=model, messages=kw.pop("messages", HI), **kw)


def _embeddings(c: openai.OpenAI, model: str = "m", **kw: Any) -> Any:
    kw.pop("stream", None)  # embeddings never stream
    return c.embeddings.create(model=model, input=kw.pop("input", "hi"), **kw)


def _responses(c: openai.OpenAI, model: str = "m", **kw: Any) -> Any:
    return c.responses.create(model=model, input=kw.pop("input", "hi"), **kw)


def _completions(c: openai.OpenAI, model: str = "m", **kw: Any) -> Any:
    return c.completions.create(model=model, prompt=kw.pop("prompt", "hi"), **kw)


CALLS: dict[str, Callable[..., Any]] = {
    "chat": _chat,
    "embeddings": _embeddings,
    "responses": _responses,
    "completions": _completions,
}
"""A request of each kind with "hi" as its text."""
COSTS = {"chat": (5, 8), "embeddings": (1, 0), "responses": (5, 8), "completions": (1, 8)}
"""(prompt, output) tokens of each kind's request in ``CALLS`` at the fake."""
STREAMS = ["chat", "responses", "completions"]
PATHS = {"chat": "chat/completions", "embeddings": "embeddings"}
PATHS |= {"responses": "responses", "completions": "completions"}


def stats(kind: str, n: int = 1, *, charged: int | None = None, **fields: int) -> FakeStats:
    """``n`` served requests of ``kind`` (with ``CALLS``' defaults), the tokens of
    ``charged`` (default ``n``) such requests, and other counters."""
    prompt, output = COSTS[kind]
    k = n if charged is None else charged
    return FakeStats(n, prompt_tokens=k * prompt, completion_tokens=k * output,
                     total_tokens=k * (prompt + output), **fields)  # fmt: skip


@pytest.fixture
def fclock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def make(fclock: FakeClock) -> Iterator[Callable[..., tuple[FakeProvider, openai.OpenAI]]]:
    """``make(**endpoint_fields)``: a provider of one endpoint "e" and a client for it."""
    opened: list[tuple[FakeProvider, openai.OpenAI]] = []

    def build(**endpoint: Any) -> tuple[FakeProvider, openai.OpenAI]:
        fp = FakeProvider(
            [FakeEndpoint("e", **endpoint)], clock=fclock.now, hold=hold_on_clock(fclock)
        ).start()
        client = openai.OpenAI(base_url=fp.base_url("e"), api_key="k", max_retries=0)
        opened.append((fp, client))
        return fp, client

    yield build
    for fp, client in opened:
        client.close()
        fp.stop()


def limit_headers(headers: Any) -> dict[str, str]:
    pairs = ((k.lower(), v) for k, v in headers.items())
    return {k: v for k, v in pairs if "ratelimit" in k or k == "retry-after"}


# -- limits -------------------------------------------------------------------------------------


def at_once(call: Callable[[], Any], count: int) -> list[openai.RateLimitError | None]:
    """Make ``count`` calls from 8 threads: the 429 of each, None when it was served."""

    def one(_: int) -> openai.RateLimitError | None:
        try:
            call()
        except openai.RateLimitError as exc:
            return exc
        return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(count)))


@pytest.mark.parametrize("kind", KINDS)
def test_requests_per_minute_are_exact_under_concurrency(make: Any, kind: str) -> None:
    fp, client = make(rpm=5)
    assert at_once(lambda: CALLS[kind](client), 16).count(None) == 5
    assert fp.stats("e") == fp.stats("e", kind) == stats(kind, 5, refused=11)
    rows = fp.trace("e")
    assert {r.kind for r in rows} == {kind}
    assert sorted(r.status for r in rows) == [200] * 5 + [429] * 11
    assert {r.limit for r in rows if r.status == 429} == {"rpm"}


@pytest.mark.parametrize("kind", KINDS)
def test_tokens_per_minute_are_exact_under_concurrency(make: Any, kind: str) -> None:
    charge = sum(COSTS[kind])
    fp, client = make(tpm=3 * charge + charge // 2)  # room for exactly 3
    results = at_once(lambda: CALLS[kind](client), 12)
    assert results.count(None) == 3
    refusals = [json.loads(r.response.text)["error"] for r in results if r is not None]
    assert {e["type"] for e in refusals} == {"tokens"}
    assert fp.stats("e", kind) == stats(kind, 3, refused=9)
    assert [r.tokens for r in fp.trace("e") if r.admitted] == [charge] * 3


def test_every_kind_shares_the_endpoints_limits(make: Any, fclock: FakeClock) -> None:
    fp, client = make(rpm=4)
    for kind in KINDS:
        CALLS[kind](client)
        fclock.advance(1)
    for kind in KINDS:
        with pytest.raises(openai.RateLimitError):
            CALLS[kind](client)
    assert [(r.kind, r.status) for r in fp.trace("e")] == [
        *[(kind, 200) for kind in KINDS],
        *[(kind, 429) for kind in KINDS],
    ]
    fclock.set(1060.0)  # the first request, of chat, leaves the window
    CALLS["embeddings"](client)
    assert fp.stats("e") == FakeStats(5, 4, 0, 13, 24, 37)
    assert fp.stats("e", "embeddings") == FakeStats(2, 1, 0, 2, 0, 2)


def test_responses_charge_max_output_tokens_up_front_then_record_the_total(make: Any) -> None:
    fp, client = make(tpm=100)
    CALLS["responses"](client, max_output_tokens=95)  # charge 5 + 95 = 100; records 13
    with pytest.raises(openai.RateLimitError) as info:
        CALLS["responses"](client, max_output_tokens=83)  # 13 + 88 > 100
    assert "Used 13, Requested 88" in info.value.message
    CALLS["responses"](client, max_output_tokens=82)  # 13 + 87 = 100
    assert [(r.status, r.tokens) for r in fp.trace("e")] == [(200, 13), (429, 88), (200, 13)]


def test_text_completions_charge_max_tokens_once_per_prompt(make: Any) -> None:
    fp, client = make(tpm=50)
    CALLS["completions"](client, prompt=["a", "b"], max_tokens=24)  # 2 + 48 = 50; records 18
    with pytest.raises(openai.RateLimitError) as info:
        CALLS["completions"](client, prompt=["a", "b"], max_tokens=16)  # 18 + 34 > 50
    assert "Used 18, Requested 34" in info.value.message
    assert fp.stats("e") == FakeStats(1, 1, 0, 2, 16, 18)


def test_embeddings_charge_their_inputs_only(make: Any) -> None:
    fp, client = make(tpm=10, tpd=8)
    CALLS["embeddings"](client, input=["hello world!", "sixteen bytes!!!"])  # 3 + 4 tokens
    with pytest.raises(openai.RateLimitError) as info:
        CALLS["embeddings"](client, input="hello")  # 7 + 2 fits the minute, not the day
    assert "tokens per day (TPD): Limit 8, Used 7, Requested 2" in info.value.message
    CALLS["embeddings"](client, input="a")  # 7 + 1 = 8
    assert [(r.status, r.tokens) for r in fp.trace("e")] == [(200, 7), (429, 2), (200, 1)]
    assert fp.stats("e") == FakeStats(2, 1, 0, 8, 0, 8)


# -- headers and 429s, per dialect ----------------------------------------------------------------

FOUR = {  # a request of each kind that costs 4 tokens at an endpoint of completion_tokens=0
    "chat": {"messages": [{"role": "user", "content": ""}]},
    "embeddings": {"input": "sixteen bytes!!!"},
    "responses": {"input": ""},
    "completions": {"prompt": "sixteen bytes!!!"},
}
LIMITS = {"rpm": 1, "tpm": 6000, "rpd": 1000, "tph": 50_000}


def raw_call(client: openai.OpenAI, kind: str, **kw: Any) -> Any:
    """The raw answer (with headers) to a request of ``kind`` costing 4 tokens."""
    resource = {
        "chat": client.chat.completions,
        "embeddings": client.embeddings,
        "responses": client.responses,
        "completions": client.completions,
    }[kind]
    return resource.with_raw_response.create(model="m", **FOUR[kind], **kw)


def headers_by_kind(make: Any, **endpoint: Any) -> dict[str, tuple[Any, ...]]:
    """Per kind, at a fresh endpoint: the limit headers of a first answer, those of the 429
    of a second request (``rpm`` is 1) and that 429's body."""
    seen = {}
    for kind in KINDS:
        fp, client = make(**LIMITS, completion_tokens=0, **endpoint)
        answer = raw_call(client, kind)
        assert answer.http_response.status_code == 200
        with pytest.raises(openai.RateLimitError) as info:
            raw_call(client, kind)
        refused = info.value.response
        seen[kind] = (limit_headers(answer.headers), limit_headers(refused.headers), refused.text)
        assert answer.headers["x-request-id"] == fp.trace("e")[0].request_id
    return seen


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_kind_has_chats_headers_and_429s_in_every_dialect(make: Any, dialect: str) -> None:
    seen = headers_by_kind(make, dialect=dialect, standard_headers=True)
    assert seen["chat"][0]  # every dialect states something (gemini: the IETF fields)
    for kind in KINDS:
        assert seen[kind] == seen["chat"], kind


@pytest.mark.parametrize(
    "options", [{"retry_after": False}, {"rate_headers": False}, {"dialect": "groq"}]
)
def test_every_kind_follows_the_header_switches(make: Any, options: dict[str, bool]) -> None:
    seen = headers_by_kind(make, **options)
    for kind in KINDS:
        assert seen[kind] == seen["chat"], kind
    _, refused, body = seen["chat"]
    assert ("retry-after" in refused) == options.get("retry_after", True)
    assert any("ratelimit" in name for name in refused) == options.get("rate_headers", True)
    assert "Limit 1, Used 1, Requested 1" in body


# -- kinds an endpoint does not serve -------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_kind_not_served_is_a_404_that_charges_nothing(make: Any, kind: str) -> None:
    others = [k for k in KINDS if k != kind]
    fp, client = make(rpm=1, serves=frozenset(others))
    fp.inject("e", 500)  # not taken by the refused request
    with pytest.raises(openai.NotFoundError) as info:
        CALLS[kind](client)
    what = {"chat": "chat completions", "embeddings": "embeddings"}
    what |= {"responses": "the Responses API", "completions": "text completions"}
    assert info.value.body == {
        "message": f"The model `m` does not support {what[kind]}: it is not supported in the "
        f"v1/{PATHS[kind]} endpoint.",
        "type": "invalid_request_error",
        "param": "model",
        "code": None,
    }
    assert info.value.response.headers["x-request-id"] == fp.trace("e")[0].request_id
    with pytest.raises(openai.InternalServerError):
        CALLS[others[0]](client)
    CALLS[others[0]](client)  # the rpm of 1 is still whole
    assert fp.stats("e", kind) == FakeStats(unsupported=1)
    assert fp.stats("e") == stats(others[0], failed=1, unsupported=1)
    first = fp.trace("e")[0]
    assert (first.kind, first.status, first.tokens, first.limit, first.admitted) == (
        kind,
        404,
        0,
        None,
        False,
    )


def test_an_embedding_model_serves_embeddings_only(make: Any) -> None:
    fp, client = make(serves={"embeddings"}, rpm=3)
    for kind in ("chat", "responses", "completions"):
        with pytest.raises(openai.NotFoundError):
            CALLS[kind](client, stream=True)
    CALLS["embeddings"](client)
    assert fp.stats("e") == stats("embeddings", unsupported=3)


# -- faults, cuts, holds, delays, usage, the key ---------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_injected_faults_of_every_kind(make: Any, kind: str) -> None:
    fp, client = make()
    fp.inject("e", 503)
    with pytest.raises(openai.InternalServerError):
        CALLS[kind](client)
    fp.inject("e", DROP)
    with pytest.raises(openai.APIConnectionError):
        CALLS[kind](client)
    fp.inject("e", CUT)
    with pytest.raises(openai.APIConnectionError):
        CALLS[kind](client)  # half a JSON body
    CALLS[kind](client)
    prompt, output = COSTS[kind]
    cost = prompt + output
    assert fp.stats("e") == FakeStats(1, 0, 3, 2 * prompt, 2 * output, 2 * cost)
    assert [(r.kind, r.status, r.cut) for r in fp.trace("e")] == [
        (kind, 503, False),
        (kind, DROP, False),
        (kind, 200, True),
        (kind, 200, False),
    ]


def test_a_fault_aimed_at_one_kind_lets_the_others_pass(make: Any) -> None:
    fp, client = make()
    fp.inject("e", 429, kind="embeddings")
    fp.inject("e", CUT, kind="responses")
    CALLS["chat"](client)
    CALLS["completions"](client)
    with pytest.raises(openai.RateLimitError):
        CALLS["embeddings"](client)
    CALLS["embeddings"](client)
    with pytest.raises(openai.APIConnectionError):
        CALLS["responses"](client)
    CALLS["chat"](client)
    assert [(r.kind, r.status, r.cut) for r in fp.trace("e")] == [
        ("chat", 200, False),
        ("completions", 200, False),
        ("embeddings", 429, False),
        ("embeddings", 200, False),
        ("responses", 200, True),
        ("chat", 200, False),
    ]
    assert fp.stats("e", "embeddings") == stats("embeddings", failed=1)


def test_a_cut_response_stream_ends_after_its_first_delta(make: Any) -> None:
    fp, client = make()
    fp.inject("e", CUT)
    seen = []
    with pytest.raises(openai.APIConnectionError):
        for event in CALLS["responses"](client, stream=True):
            seen.append(event.type)
    assert seen == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert fp.stats("e") == stats("responses", 0, charged=1, failed=1)  # failed, yet charged
    assert len(list(CALLS["responses"](client, stream=True))) == 13


def test_a_cut_text_completion_stream_ends_after_its_first_chunk(make: Any) -> None:
    fp, client = make()
    fp.inject("e", CUT)
    seen = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in CALLS["completions"](client, stream=True):
            seen.append(chunk.choices[0].text)
    assert seen == ["Hello "]
    assert fp.stats("e") == stats("completions", 0, charged=1, failed=1)


@pytest.mark.parametrize("kind", STREAMS)
def test_streams_of_every_kind_are_rate_limited_and_cut_only_when_admitted(
    make: Any, kind: str
) -> None:
    fp, client = make(rpm=1)
    list(CALLS[kind](client, stream=True))
    fp.inject("e", CUT)
    with pytest.raises(openai.RateLimitError):
        CALLS[kind](client, stream=True)
    assert fp.stats("e") == stats(kind, refused=1)  # the cut still waits


@pytest.mark.parametrize("kind", KINDS)
def test_a_held_request_of_every_kind_counts_from_its_arrival(
    make: Any, fclock: FakeClock, kind: str
) -> None:
    fp, client = make(rpm=1)
    CALLS[kind](client, extra_headers={INGRESS_HEADER: "400"})
    fclock.set(1059.7)
    with pytest.raises(openai.RateLimitError):  # counted at 1000.4: still in the window
        CALLS[kind](client)
    fclock.set(1060.4)
    CALLS[kind](client, extra_body={"metadata": {"fake_ingress_ms": "250"}})
    rows = fp.trace("e")
    assert [(r.entered, r.held, r.at, r.status) for r in rows] == [
        (1000.0, 0.4, 1000.4, 200),
        (1059.7, 0.0, 1059.7, 429),
        (1060.4, 0.25, 1060.65, 200),
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_delay_and_the_key_for_every_kind(fclock: FakeClock, kind: str) -> None:
    endpoints = [FakeEndpoint("e", api_key="secret", delay=30)]
    with FakeProvider(endpoints, clock=fclock.now) as fp:
        url = fp.base_url("e")
        bad = openai.OpenAI(base_url=url, api_key="wrong", max_retries=0)
        with bad, pytest.raises(openai.AuthenticationError):
            CALLS[kind](bad)
        c = openai.OpenAI(base_url=url, api_key="secret", max_retries=0, timeout=0.2)
        with c, pytest.raises(openai.APITimeoutError):
            CALLS[kind](c)
        assert fp.stats("e").served == 1  # admitted, then slept past the client's patience


@pytest.mark.parametrize("kind", KINDS)
def test_without_usage_every_kind_is_still_charged(make: Any, kind: str) -> None:
    fp, client = make(usage=False)
    answer = CALLS[kind](client)
    assert answer.usage is None
    if kind != "embeddings":
        options = {"stream_options": {"include_usage": True}} if kind != "responses" else {}
        assert all(
            getattr(e, "usage", None) is None for e in CALLS[kind](client, stream=True, **options)
        )
        assert fp.stats("e") == stats(kind, 2)
    else:
        assert fp.stats("e") == stats(kind)


def test_the_model_is_checked_for_every_kind(make: Any) -> None:
    fp, client = make(model="m")
    for kind in KINDS:
        with pytest.raises(openai.NotFoundError) as info:
            CALLS[kind](client, model="other")
        assert info.value.code == "model_not_found"
        CALLS[kind](client)
    assert fp.stats("e").served == 4 and len(fp.trace("e")) == 4  # 404s before the count


def test_validation_of_kinds() -> None:
    assert FakeEndpoint("e").serves == frozenset(KINDS)
    assert FakeEndpoint("e", serves={"chat"}).serves == frozenset({"chat"})  # type: ignore[arg-type]
    for serves in ({"chat", "images"}, "chat"):
        with pytest.raises(ValueError, match="serves must be a set of"):
            FakeEndpoint("e", serves=serves)  # type: ignore[arg-type]
    for most in (0, -1, True, 2.5):
        with pytest.raises(ValueError, match="max_inputs"):
            FakeEndpoint("e", max_inputs=most)  # type: ignore[arg-type]
    with FakeProvider([FakeEndpoint("e")]) as fp:
        with pytest.raises(ValueError, match="kind must be one of"):
            fp.stats("e", "images")
        with pytest.raises(ValueError, match="kind must be one of"):
            fp.inject("e", 500, kind="images")
        assert fp.stats("e", "responses") == FakeStats()


def test_reset_stats_forgets_every_kind(make: Any) -> None:
    fp, client = make()
    for kind in KINDS:
        CALLS[kind](client)
    fp.reset_stats()
    assert all(fp.stats("e", kind) == FakeStats() for kind in KINDS)
    assert fp.stats("e") == FakeStats() and fp.trace("e") == ()


@pytest.mark.parametrize("kind", STREAMS)
def test_chunk_delay_spaces_the_events_of_every_stream(make: Any, kind: str) -> None:
    _, client = make(chunk_delay=0.01)
    started = time.monotonic()
    events = list(CALLS[kind](client, stream=True))
    assert time.monotonic() - started >= 0.01 * (len(events) - 1)
