"""Router.batch / abatch: every item served, waiting for capacity on the router's clock,
failing over within max_attempts, invalid requests returned as errors; the fake provider on
the same FakeClock (no sleeping for windows)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from llamux import BatchItem, InvalidRequest, LlamuxError, ProviderError, Router, served_by
from llamux.testing import FakeClock, FakeEndpoint, FakeProvider

from conftest import HI, fake_router


def chat(n: int) -> list[BatchItem]:
    return [
        BatchItem("chat", {"messages": [{"role": "user", "content": f"q{i}"}]}) for i in range(n)
    ]


def test_every_item_is_served_and_yielded_once_with_its_index(tmp_path: Path, keys: str) -> None:
    with FakeProvider([FakeEndpoint("a"), FakeEndpoint("b")]) as fake:
        router = fake_router(fake, tmp_path, [("a", "100 | |"), ("b", "100 | |")])
        got = dict(router.batch(chat(30), concurrency=4))
        assert sorted(got) == list(range(30))
        assert all(not isinstance(r, Exception) for r in got.values())
        assert {served_by(r).endpoint for r in got.values()} <= {"a", "b"}  # type: ignore[union-attr]
        assert fake.stats("a").served + fake.stats("b").served == 30
        router.close()


def test_items_wait_across_a_window_rollover_on_the_fake_clock(tmp_path: Path, keys: str) -> None:
    clock = FakeClock()
    with FakeProvider([FakeEndpoint("a", rpm=3)], clock=clock.now) as fake:
        router = fake_router(fake, tmp_path, [("a", "3 | |")], clock=clock)
        start = clock.now()
        got = list(router.batch(chat(7), concurrency=1))
        assert [i for i, _ in got] == list(range(7))  # one at a time: in order
        assert not any(isinstance(r, Exception) for _, r in got)
        assert fake.stats("a").refused == 0 and fake.stats("a").served == 7
        assert clock.now() - start >= 120  # three minutes' windows: two rollovers waited
        router.close()


def test_a_400_is_the_items_error_and_is_not_retried(tmp_path: Path, keys: str) -> None:
    with FakeProvider([FakeEndpoint("a"), FakeEndpoint("b")]) as fake:
        fake.inject("a", 400)
        router = fake_router(fake, tmp_path, [("a", "100 | |"), ("b", "100 | |")])
        got = dict(router.batch(chat(1), concurrency=1))
        assert isinstance(got[0], ProviderError) and got[0].status == 400
        assert fake.stats("a").failed == 1 and fake.stats("b").served == 0
        router.close()


def test_5xx_fail_over_within_max_attempts(tmp_path: Path, keys: str) -> None:
    clock = FakeClock()
    with FakeProvider([FakeEndpoint("a"), FakeEndpoint("b")], clock=clock.now) as fake:
        fake.inject("a", 503, count=10)
        fake.inject("b", 503, count=10)
        router = fake_router(fake, tmp_path, [("a", "100 | |"), ("b", "100 | |")], clock=clock)
        got = dict(router.batch(chat(1), concurrency=1, max_attempts=3))
        assert isinstance(got[0], LlamuxError)
        assert fake.stats("a").failed + fake.stats("b").failed == 3
        got = dict(router.batch(chat(1), concurrency=1, max_attempts=20))
        assert served_by(got[0]) is not None  # the faults ran out: served on a later try
        assert fake.stats("a").failed + fake.stats("b").failed == 20
        router.close()


def test_chat_and_embeddings_in_one_batch_and_bad_items(tmp_path: Path, keys: str) -> None:
    with FakeProvider(
        [FakeEndpoint("a"), FakeEndpoint("e", serves=frozenset({"embeddings"}))]
    ) as f:
        path = tmp_path / "endpoints.md"
        path.write_text(
            "| name | provider | model | base_url | rpm | serves |\n|---|---|---|---|---|---|\n"
            f"| a | fake | m-a | {f.base_url('a')} | 100 | chat |\n"
            f"| e | fake | m-e | {f.base_url('e')} | 100 | embeddings |\n"
        )
        router = Router.from_csv(path, store="memory://")
        items: list[Any] = [
            {"url": "/v1/chat/completions", "body": {"messages": HI}},
            {"url": "/v1/embeddings", "body": {"input": "hello"}},
            BatchItem("chat", {"messages": HI, "max_tokens": 3}),
            {"url": "/v1/nope", "body": {}},
            {"body": {"messages": HI, "stream": True}},
        ]
        got = dict(router.batch(items, concurrency=2))
        assert served_by(got[0]).endpoint == "a"  # type: ignore[union-attr]
        assert served_by(got[1]).endpoint == "e" and got[1].data[0].embedding  # type: ignore[union-attr]
        assert served_by(got[2]) is not None
        assert isinstance(got[3], InvalidRequest) and "unknown url" in str(got[3])
        assert isinstance(got[4], InvalidRequest) and "stream" in str(got[4])
        router.close()


def test_abatch_yields_every_item_and_stop_ends_it(tmp_path: Path, keys: str) -> None:
    async def main() -> None:
        clock = FakeClock()
        with FakeProvider([FakeEndpoint("a", rpm=2)], clock=clock.now) as fake:
            router = fake_router(fake, tmp_path, [("a", "2 | |")], clock=clock)
            seen = [i async for i, r in router.abatch(chat(5), concurrency=2) if served_by(r)]
            assert sorted(seen) == list(range(5))
            run = router.abatch(chat(5), concurrency=2)
            first = [await anext(run)]
            run.stop()
            rest = [i async for i, _ in run]
            assert len(first) + len(rest) <= 3  # waiting items dropped, none sent twice
            assert fake.stats("a").served == 5 + len(first) + len(rest)
            await router.aclose()

    asyncio.run(main())


def test_stop_drops_waiting_items_and_finishes_the_ones_being_sent(
    tmp_path: Path, keys: str
) -> None:
    clock = FakeClock()
    with FakeProvider([FakeEndpoint("a", rpm=2)], clock=clock.now) as fake:
        router = fake_router(fake, tmp_path, [("a", "2 | |")], clock=clock)
        run = router.batch(chat(10), concurrency=3)
        done = [next(run)]
        run.stop()
        done += list(run)
        assert 1 <= len(done) <= 3 and fake.stats("a").served == len(done)
        router.close()


def test_bad_arguments_are_clear() -> None:
    with pytest.raises(InvalidRequest, match="unknown kind"):
        BatchItem("images", {})
    with pytest.raises(InvalidRequest, match="needs 'input'"):
        BatchItem("embeddings", {"model": "m"})
