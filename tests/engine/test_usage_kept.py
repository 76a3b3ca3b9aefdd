"""An answer whose real usage llamux never learns keeps its token estimate charged.

A stream the caller closes early may still be billed whole by the provider, and an answer
or stream without ``usage`` says nothing of what it cost: in both cases the reservation keeps
its estimate (prompt plus ``max_tokens``), never 0, on every path: sync and async, JSON and
stream, the library and the proxy. Each test checks the tokens of the tpm rule, not only rpm.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import pytest

from llamux import Router, served_by
from llamux._policy.tokens import estimate
from llamux._stores.memory import MemoryStore
from llamux.proxy import ProxyThread, create_app
from llamux.testing import FakeEndpoint, FakeProvider

from conftest import EIGHT_WORDS, TELL_ME, fake_router, fake_table, used

MAX_TOKENS = 40
ROWS = [("a", "10 | 10000 |")]  # rpm 10, tpm 10000


@pytest.fixture
def fake_endpoints() -> list[FakeEndpoint]:
    return [
        FakeEndpoint("a", reply=EIGHT_WORDS),  # sends usage when asked
        FakeEndpoint("n", reply=EIGHT_WORDS, usage=False),  # never sends usage
        FakeEndpoint("slow", reply=EIGHT_WORDS, chunk_delay=0.2),  # a stream of ~2 s
    ]


def expected_estimate(**params: Any) -> int:
    """The estimate llamux charges for TELL_ME with ``max_tokens`` given (no default involved)."""
    return estimate(TELL_ME, {"max_tokens": MAX_TOKENS, **params}, 0)


def assert_estimate_kept(router: Router, response: Any, fake: FakeProvider, name: str) -> None:
    served = served_by(response)
    assert served is not None and served.endpoint == name
    assert served.estimated_tokens == expected_estimate() > 0
    assert used(router) == {"rpm": 1, "tpm": served.estimated_tokens}
    # The estimate is not what the provider billed, so keeping it is told apart from
    # settling with the real usage (it is larger: max_tokens is reserved whole).
    assert fake.stats(name).total_tokens < served.estimated_tokens


# ------------------------------------------------------------------ the library, sync


def test_sync_completion_without_usage(fake: FakeProvider, tmp_path: Path, keys: str) -> None:
    with fake_router(fake, tmp_path, [("n", "10 | 10000 |")]) as router:
        answer = router.completion(TELL_ME, max_tokens=MAX_TOKENS)
        assert answer.usage is None
        assert answer.choices[0].message.content == EIGHT_WORDS
        assert_estimate_kept(router, answer, fake, "n")


@pytest.mark.parametrize("how", ["close", "with"])
def test_sync_stream_closed_early(fake: FakeProvider, tmp_path: Path, keys: str, how: str) -> None:
    with fake_router(fake, tmp_path, ROWS) as router:
        stream = router.completion(TELL_ME, stream=True, max_tokens=MAX_TOKENS)
        if how == "close":
            next(stream)
            stream.close()
        else:
            with stream:
                next(stream)
        assert fake.stats("a").served == 1  # the provider answered (and may bill) it whole
        assert_estimate_kept(router, stream, fake, "a")


@pytest.mark.parametrize("asked", [False, True])
def test_sync_stream_without_usage(
    fake: FakeProvider, tmp_path: Path, keys: str, asked: bool
) -> None:
    options = {"stream_options": {"include_usage": True}} if asked else {}
    with fake_router(fake, tmp_path, [("n", "10 | 10000 |")]) as router:
        stream = router.completion(TELL_ME, stream=True, max_tokens=MAX_TOKENS, **options)
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == EIGHT_WORDS
        assert all(c.usage is None for c in chunks)
        assert_estimate_kept(router, stream, fake, "n")


# ------------------------------------------------------------------ the library, async


def test_async_completion_without_usage(fake: FakeProvider, tmp_path: Path, keys: str) -> None:
    async def main() -> None:
        async with fake_router(fake, tmp_path, [("n", "10 | 10000 |")]) as router:
            answer = await router.acompletion(TELL_ME, max_tokens=MAX_TOKENS)
            assert answer.usage is None
            assert_estimate_kept(router, answer, fake, "n")

    asyncio.run(main())


@pytest.mark.parametrize("how", ["aclose", "async with"])
def test_async_stream_closed_early(fake: FakeProvider, tmp_path: Path, keys: str, how: str) -> None:
    async def main() -> None:
        async with fake_router(fake, tmp_path, ROWS) as router:
            stream = await router.acompletion(TELL_ME, stream=True, max_tokens=MAX_TOKENS)
            if how == "aclose":
                await stream.__anext__()
                await stream.aclose()
            else:
                async with stream:
                    await stream.__anext__()
            assert_estimate_kept(router, stream, fake, "a")

    asyncio.run(main())


def test_async_stream_without_usage(fake: FakeProvider, tmp_path: Path, keys: str) -> None:
    async def main() -> None:
        async with fake_router(fake, tmp_path, [("n", "10 | 10000 |")]) as router:
            stream = await router.acompletion(TELL_ME, stream=True, max_tokens=MAX_TOKENS)
            text = "".join([c.choices[0].delta.content or "" async for c in stream])
            assert text == EIGHT_WORDS
            assert_estimate_kept(router, stream, fake, "n")

    asyncio.run(main())


def test_query_without_settle_keeps_the_estimate(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    with fake_router(fake, tmp_path, ROWS) as router:
        *_, props = router.query(TELL_ME, max_tokens=MAX_TOKENS)
        assert props["reservation"]
        assert used(router) == {"rpm": 1, "tpm": expected_estimate()}


# ------------------------------------------------------------------ through the proxy


@contextlib.contextmanager
def proxy(fake: FakeProvider, tmp_path: Path, name: str) -> Iterator[tuple[str, Router]]:
    """A proxy in front of a router for the one fake endpoint ``name``; yields (url, router)."""
    path = tmp_path / "endpoints.md"
    path.write_text(fake_table(fake, [(name, "10 | 10000 |")]))
    router = Router.from_csv(path, store=MemoryStore())
    with ProxyThread(create_app(router)) as running:
        yield running.url, router


def wait_for(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def settled(url: str, name: str) -> Callable[[], bool]:
    """True once the proxy has recorded (so settled) one request served by ``name``."""

    def check() -> bool:
        metrics = httpx.get(f"{url}/metrics").text
        return f'llamux_requests_total{{endpoint="{name}"}} 1' in metrics

    return check


def sdk(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=10)


def test_proxy_json_without_usage(fake: FakeProvider, tmp_path: Path, keys: str) -> None:
    with proxy(fake, tmp_path, "n") as (url, router), sdk(url) as client:
        answer = client.chat.completions.create(
            model="auto", messages=TELL_ME, max_tokens=MAX_TOKENS
        )
        assert answer.usage is None and answer.choices[0].message.content == EIGHT_WORDS
        wait_for(settled(url, "n"))
        assert used(router) == {"rpm": 1, "tpm": expected_estimate()}


@pytest.mark.parametrize("asked", [False, True])
def test_proxy_stream_without_usage(
    fake: FakeProvider, tmp_path: Path, keys: str, asked: bool
) -> None:
    options: dict[str, Any] = {"stream_options": {"include_usage": True}} if asked else {}
    with proxy(fake, tmp_path, "n") as (url, router), sdk(url) as client:
        stream: Any = client.chat.completions.create(
            model="auto", messages=TELL_ME, max_tokens=MAX_TOKENS, stream=True, **options
        )
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == EIGHT_WORDS
        wait_for(settled(url, "n"))
        assert used(router) == {"rpm": 1, "tpm": expected_estimate()}


def test_proxy_stream_closed_early_by_the_client(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    with proxy(fake, tmp_path, "slow") as (url, router):
        body = {"model": "auto", "messages": TELL_ME, "max_tokens": MAX_TOKENS, "stream": True}
        started = time.monotonic()
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body) as answer:
            assert answer.status_code == 200
            assert next(answer.iter_bytes()).startswith(b"data: ")
        wait_for(settled(url, "slow"))
        assert time.monotonic() - started < 1.8, "settled when the client left, not at the end"
        assert used(router) == {"rpm": 1, "tpm": expected_estimate()}
