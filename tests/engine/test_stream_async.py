"""Streaming and async: same semantics as completion, usage settled from the stream."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llamux import NoEndpointAvailable, served_by
from llamux._errors import ProviderError
from llamux.testing import CUT, FakeClock, FakeEndpoint, FakeProvider

from conftest import EIGHT_WORDS, TELL_ME, fake_router, used


@pytest.fixture
def fake_endpoints() -> list[FakeEndpoint]:
    return [FakeEndpoint(n, reply=f"{n}: {EIGHT_WORDS}") for n in ("a", "b", "c")]


def test_stream_yields_sdk_chunks_and_settles_with_stream_usage(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    with fake_router(fake, tmp_path, [("a", "10 | 10000 |")]) as router:
        stream = router.completion(TELL_ME, stream=True, max_tokens=100)
        text = ""
        for chunk in stream:
            assert chunk.object == "chat.completion.chunk"
            assert chunk.choices, "the usage-only chunk is hidden unless asked for"
            text += chunk.choices[0].delta.content or ""
        assert text == f"a: {EIGHT_WORDS}"
        assert used(router) == {"rpm": 1, "tpm": fake.stats("a").total_tokens}
        served = served_by(stream)
        assert served is not None and served.endpoint == "a"


def test_stream_passes_the_usage_chunk_when_asked(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    with fake_router(fake, tmp_path, [("a", "10 | 10000 |")]) as router:
        chunks = list(
            router.completion(TELL_ME, stream=True, stream_options={"include_usage": True})
        )
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert chunks[-1].usage.total_tokens == fake.stats("a").total_tokens


def test_stream_fails_over_before_the_first_chunk(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    fake.inject("a", 503)
    with fake_router(fake, tmp_path, [("a", "10 | |"), ("b", "10 | |")]) as router:
        stream = router.completion(TELL_ME, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream).startswith("b:")


def test_a_stream_cut_mid_way_raises_and_is_not_sent_again(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    fake.inject("a", CUT)
    with fake_router(fake, tmp_path, [("a", "10 | 10000 |"), ("b", "10 | |")]) as router:
        stream = router.completion(TELL_ME, stream=True, max_tokens=50)
        got = []
        with pytest.raises(ProviderError) as caught:
            for chunk in stream:
                got.append(chunk)
        assert got, "some chunks arrived before the cut"
        assert caught.value.endpoint == "a"
        # raised outside the SDK's except: its error, whose request holds the key, is not kept
        assert caught.value.__context__ is None and caught.value.__cause__ is None
        assert fake.stats("b").served == 0  # never sent elsewhere: no double billing
        estimate = served_by(stream).estimated_tokens  # type: ignore[union-attr]
        assert used(router) == {"rpm": 1, "tpm": estimate}  # the estimate stays charged


def test_acompletion_matches_completion(fake: FakeProvider, tmp_path: Path, keys: str) -> None:
    async def main() -> None:
        async with fake_router(fake, tmp_path, [("a", "2 | |"), ("b", "| |")]) as router:
            got = [await router.acompletion(TELL_ME) for _ in range(3)]
            assert [served_by(r).endpoint for r in got] == ["a", "a", "b"]  # type: ignore[union-attr]
            assert got[0].choices[0].message.content == f"a: {EIGHT_WORDS}"

    asyncio.run(main())


def test_async_stream_and_wait(fake: FakeProvider, tmp_path: Path, keys: str) -> None:
    clock = FakeClock()

    async def main() -> None:
        async with fake_router(fake, tmp_path, [("a", "1 | |")], clock=clock) as router:
            stream = await router.acompletion(TELL_ME, stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream])
            assert text == f"a: {EIGHT_WORDS}"
            with pytest.raises(NoEndpointAvailable):
                await router.acompletion(TELL_ME)
            start = clock.now()
            await router.acompletion(TELL_ME, wait=120)  # sleeps on the fake clock
            assert 60 <= clock.now() - start <= 61.1

    asyncio.run(main())


def test_hundreds_of_concurrent_async_streams_never_over_admit(tmp_path: Path, keys: str) -> None:
    limits = {"a": 150, "b": 200, "c": 150}
    endpoints = [FakeEndpoint(n, rpm=r, reply=EIGHT_WORDS) for n, r in limits.items()]
    with FakeProvider(endpoints) as fake:
        rows = [(n, f"{r} | |") for n, r in limits.items()]

        async def main() -> list[str]:
            async with fake_router(fake, tmp_path, rows) as router:

                async def one() -> str:
                    stream = await router.acompletion(TELL_ME, stream=True, max_tokens=20)
                    async for _ in stream:
                        pass
                    return served_by(stream).endpoint  # type: ignore[union-attr]

                return await asyncio.gather(*(one() for _ in range(500)))

        served = asyncio.run(main())
        assert {n: served.count(n) for n in limits} == limits
        assert sum(fake.stats(n).refused for n in limits) == 0
