"""Inputs llamux cannot send or count with never cost quota, never cool an endpoint down,
and never reach the provider: an ``InvalidRequest`` (the library) or a 400 (the proxy)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from llamux import InvalidRequest, Router
from llamux._providers.transport import OpenAITransport
from llamux._stores.memory import MemoryStore
from llamux.proxy import create_app
from llamux.testing import FakeProvider

from conftest import HI, fake_table

NAN = float("nan")
INF = float("inf")


def nested(depth: int) -> Any:
    """``depth`` lists inside each other (built without recursion)."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def make_router(fake: FakeProvider, tmp_path: Path, limits: str, store: Any = None) -> Router:
    path = tmp_path / "endpoints.md"
    path.write_text(fake_table(fake, [("a", limits), ("b", limits)]))
    return Router.from_csv(path, store=store or MemoryStore())


@pytest.fixture
def router(fake: FakeProvider, tmp_path: Path, keys: str) -> Iterator[Router]:
    with make_router(fake, tmp_path, "10 | 100000 |") as made:
        yield made


def untouched(router: Router, fake: FakeProvider) -> None:
    """Nothing charged, nothing cooling down, nothing sent."""
    for row in router.status():
        assert all(u.used == 0 for u in row.usage), (row.endpoint.id, row.usage)
        assert row.cooldown is None, row.cooldown
    assert fake.stats("a").served == 0 and fake.stats("b").served == 0


UNENCODABLE: list[tuple[dict[str, Any], str]] = [
    ({"temperature": NAN}, "temperature is nan"),
    ({"temperature": INF}, "temperature is inf"),
    ({"top_p": -INF}, "top_p is -inf"),
    ({"logit_bias": {"50256": NAN}}, r"logit_bias\.50256 is nan"),
    (
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"x": [INF]}}}]},
        r"tools\[0\]\.function\.parameters\.x\[0\] is inf",
    ),
    ({"stop": ["ok", "\ud800"]}, r"stop\[1\] holds a lone surrogate"),
    ({"seed": 2**64}, "seed is an integer of 65 bits; integers must be from -2\\^63"),
    ({"metadata": {"deep": nested(200)}}, "more than 128 levels deep"),
    ({"metadata": {"deep": nested(100_000)}}, "more than 128 levels deep"),
]


@pytest.mark.parametrize(("params", "phrase"), UNENCODABLE)
def test_a_parameter_json_cannot_encode_is_refused_before_any_reservation(
    router: Router, fake: FakeProvider, params: dict[str, Any], phrase: str
) -> None:
    with pytest.raises(InvalidRequest, match=phrase):
        router.query(HI, **params)  # query only reserves: a refusal here came first
    with pytest.raises(InvalidRequest, match=phrase):
        router.completion(HI, **params)
    untouched(router, fake)


def test_nan_in_the_messages_releases_and_cools_nothing_down(
    router: Router, fake: FakeProvider
) -> None:
    bad = [{"role": "user", "content": [{"type": "text", "text": "hi", "weight": NAN}]}]
    refused = r"weight is nan, which JSON cannot encode|cannot be sent as JSON"
    for _ in range(3):
        with pytest.raises(InvalidRequest, match=refused):
            router.completion(bad)
    with pytest.raises(InvalidRequest, match=refused):
        asyncio.run(router.acompletion(bad, stream=True))
    untouched(router, fake)
    assert router.completion(HI).choices[0].message.content  # the quota is intact


@pytest.mark.parametrize("path", ["sync", "async", "raw"])
def test_the_transport_calls_a_body_it_cannot_encode_invalid_not_a_provider_error(
    fake: FakeProvider, tmp_path: Path, keys: str, path: str
) -> None:
    """The last line of defence, whoever calls the transport: nothing is sent, and the
    error is the caller's (``InvalidRequest``), so no failover verdict blames the provider."""
    with make_router(fake, tmp_path, "10 | |") as router:
        endpoint = router.endpoints[0]
        transport = OpenAITransport()
        call = {"model": endpoint.model, "messages": [{"role": "user", "content": NAN}]}
        with pytest.raises(InvalidRequest, match="cannot be sent as JSON") as caught:
            if path == "sync":
                transport.complete(endpoint, keys, call)
            else:

                async def send() -> None:
                    try:
                        send = transport.araw if path == "raw" else transport.acomplete
                        await send(endpoint, keys, call)
                    finally:
                        await transport.aclose()

                asyncio.run(send())
        transport.close()
        assert caught.value.__context__ is None and caught.value.__cause__ is None
        assert fake.stats("a").served == 0


COUNTS: list[tuple[dict[str, Any], str]] = [
    ({"max_tokens": 10**20}, r"max_tokens must be a whole number >= 1 and <= 2,147,483,647"),
    ({"max_tokens": 10**5000}, r"not an integer of about 5,001 digits"),
    ({"max_completion_tokens": 2**63}, r"max_completion_tokens must be .* <= 2,147,483,647"),
    ({"n": 10**30}, r"n must be a whole number >= 1 and <= 2,147,483,647"),
    (
        {"n": 2**20, "max_tokens": 2**30},
        r"n x max_tokens is 1,125,899,906,842,624 output tokens, more than the "
        r"1,099,511,627,776 llamux can count for one request; lower n or max_tokens",
    ),
    ({"n": 2**31 - 1, "max_completion_tokens": 2**31 - 1}, "n x max_completion_tokens"),
    ({"wait": 10**400}, r"wait must be a number of seconds >= 0 and <= 31,622,400"),
    ({"wait": INF}, r"wait must be a number of seconds >= 0 and <= 31,622,400"),
    ({"stream": "yes"}, "stream must be true or false"),
]


@pytest.mark.parametrize(("params", "phrase"), COUNTS)
@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_an_integer_llamux_cannot_count_is_invalid_and_says_the_range(
    fake: FakeProvider,
    tmp_path: Path,
    keys: str,
    kind: str,
    params: dict[str, Any],
    phrase: str,
) -> None:
    store = MemoryStore() if kind == "memory" else f"sqlite:///{tmp_path}/q.db"
    with make_router(fake, tmp_path, "10 | |", store) as router:  # no token limit at all
        with pytest.raises(InvalidRequest, match=phrase):
            router.query(HI, **params)
        with pytest.raises(InvalidRequest, match=phrase):
            asyncio.run(router.acompletion(HI, **params))
        untouched(router, fake)


def test_counts_at_the_edge_of_the_range_are_still_served(router: Router) -> None:
    _, _, _, props = router.query(HI, max_tokens=50_000, n=1, wait=31_622_400)
    assert props["tokens"] > 50_000
    assert router.release(props["reservation"])


# ------------------------------------------------------------------ the proxy

DEEP = b"[" * 100_000 + b"]" * 100_000
MESSAGE = '{"role": "user", "content": "hi"}'


def body(extra: str = "", messages: str = f"[{MESSAGE}]") -> bytes:
    return f'{{"model": "auto", "messages": {messages}{extra}}}'.encode()


MALFORMED: list[tuple[str, bytes]] = [
    ("empty body", b""),
    ("only spaces", b"  \n "),
    ("not JSON", b"{not json"),
    ("a JSON array", b"[1, 2]"),
    ("a JSON string", b'"hello"'),
    ("JSON null", b"null"),
    ("messages a string", body(messages='"hi"')),
    ("messages empty", body(messages="[]")),
    ("a message not an object", body(messages="[1]")),
    ("a message without a role", body(messages='[{"content": "hi"}]')),
    ("model a number", body(', "model": 5')),
    ("model an object", body(', "model": {"a": 1}')),
    ("stream a string", body(', "stream": "yes"')),
    ("stream_options a string", body(', "stream": true, "stream_options": "yes"')),
    ("NaN literal", body(', "temperature": NaN')),
    ("Infinity literal", body(', "temperature": Infinity')),
    ("-Infinity in a message", body(messages='[{"role": "user", "content": -Infinity}]')),
    ("a float that overflows", body(', "top_p": 1e999')),
    ("huge max_tokens", body(f', "max_tokens": {10**20}')),
    ("5000-digit max_tokens", body(f', "max_tokens": {"9" * 5000}')),
    ("n x max_tokens past 2^63", body(f', "n": {2**32}, "max_tokens": {2**32}')),
    ("a huge seed", body(f', "seed": {10**30}')),
    ("100,000 nested arrays", DEEP),
    (
        "100,000 nested arrays in a message",
        body(messages=f'[{{"role": "user", "content": {DEEP.decode()}}}]'),
    ),
    ("200 nested arrays", body(f', "metadata": {"[" * 200 + "]" * 200}')),
    ("invalid UTF-8", b'{"messages": [{"role": "user", "content": "\xff\xfe\xfd"}]}'),
    ("a lone surrogate", body(messages='[{"role": "user", "content": "\\ud800"}]')),
    ("llamux not an object", body(', "llamux": "fast"')),
    ("llamux.wait negative", body(', "llamux": {"wait": -1}')),
]


@contextlib.contextmanager
def proxied(fake: FakeProvider, tmp_path: Path) -> Iterator[tuple[TestClient, Router]]:
    router = make_router(fake, tmp_path, "10 | 100000 |")
    with router, TestClient(create_app(router)) as http:
        yield http, router


def is_openai_error(answer: Any) -> bool:
    error = answer.json()["error"]
    return (
        set(error) >= {"message", "type", "param", "code"}
        and isinstance(error["message"], str)
        and len(error["message"]) > 20
        and answer.headers["content-type"].startswith("application/json")
    )


def test_malformed_bodies_get_a_4xx_openai_error_and_cost_nothing(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    with proxied(fake, tmp_path) as (http, router):
        for name, raw in MALFORMED:
            answer = http.post(
                "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
            )
            assert 400 <= answer.status_code < 500, (name, answer.status_code, answer.text[:300])
            assert is_openai_error(answer), (name, answer.text[:300])
        untouched(router, fake)
        served = http.post("/v1/chat/completions", json={"messages": HI})
        assert served.status_code == 200  # and the proxy still serves


def test_the_proxy_names_what_is_wrong(fake: FakeProvider, tmp_path: Path, keys: str) -> None:
    as_json = {"content-type": "application/json"}
    with proxied(fake, tmp_path) as (http, _):

        def error(raw: bytes) -> dict[str, Any]:
            answer = http.post("/v1/chat/completions", content=raw, headers=as_json)
            assert answer.status_code == 400
            return dict(answer.json()["error"])

        assert "holds NaN, which is not JSON" in error(body(', "temperature": NaN'))["message"]
        assert "nests more than 128 levels deep" in error(DEEP)["message"]
        assert "not valid UTF-8" in error(b'{"messages": "\xff"}')["message"]
        assert "must be a JSON object, not a JSON array" in error(b"[]")["message"]
        big = error(body(f', "max_tokens": {10**20}'))
        assert big["param"] == "max_tokens" and "<= 2,147,483,647" in big["message"]
        inf = error(body(', "top_p": 1e999'))
        assert inf["param"] == "top_p" and "top_p is inf" in inf["message"]


def test_a_huge_llamux_wait_is_capped_not_a_500(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    with proxied(fake, tmp_path) as (http, _):
        for wait in (str(10**400), "1e999"):
            raw = body(f', "llamux": {{"wait": {wait}}}')
            answer = http.post(
                "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
            )
            assert answer.status_code == 200, answer.text
            assert json.loads(answer.text)["choices"]
