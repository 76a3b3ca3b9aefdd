"""The charge time, seen from outside: a strict provider counts each request when it arrives
(up to the moment llamux learns the outcome); llamux must never let any of its exact
windows be crossed, and must use the rolled window's capacity again (no starvation)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import openai
import pytest

from llamux import Reservation, Router, served_by
from llamux._providers.transport import OpenAITransport
from llamux._stores.memory import MemoryStore
from llamux.proxy import ProxyThread, create_app
from llamux.testing import FakeClock, FakeEndpoint, FakeProvider, hold_on_clock

from conftest import HI, RedisServer, fake_router, fake_table, run_workers


class Spy:
    """Records the order of what happens to one request: client readied, charge, send."""

    def __init__(self) -> None:
        self.events: list[str] = []


class SpyStore(MemoryStore):
    def __init__(self, spy: Spy) -> None:
        super().__init__()
        self.spy = spy

    def reserve_first(self, *args: Any, **kw: Any) -> Any:
        self.spy.events.append("reserve")
        return super().reserve_first(*args, **kw)

    def _reserve(self, *args: Any) -> Any:
        outcome = super()._reserve(*args)
        self.spy.events.append("charge" if isinstance(outcome, Reservation) else "refused")
        return outcome


class SpyTransport(OpenAITransport):
    def __init__(self, spy: Spy) -> None:
        super().__init__()
        self.spy = spy

    def prepare(self, endpoint: Any, api_key: str, mode: str = "sync", loop: Any = None) -> None:
        self.spy.events.append(f"prepare {mode}")
        super().prepare(endpoint, api_key, mode, loop)

    def _client(self, endpoint: Any, api_key: str) -> Any:
        self.spy.events.append("client")
        return super()._client(endpoint, api_key)

    def complete(self, *args: Any) -> Any:
        self.spy.events.append("send")
        return super().complete(*args)

    async def acomplete(self, *args: Any, **kw: Any) -> Any:
        self.spy.events.append("send")
        return await super().acomplete(*args, **kw)


def test_the_client_is_ready_before_the_charge_and_nothing_sits_between_charge_and_send(
    tmp_path: Path, keys: str
) -> None:
    spy = Spy()
    with FakeProvider([FakeEndpoint("a")]) as fake:
        path = tmp_path / "t.md"
        path.write_text(fake_table(fake, [("a", "| |")]))
        router = Router.from_csv(path, store=SpyStore(spy), transport=SpyTransport(spy))
        router.completion(HI)
        assert spy.events == ["prepare sync", "client", "reserve", "charge", "send", "client"]

        async def main() -> None:
            spy.events.clear()
            await router.acompletion(HI)
            assert spy.events == ["prepare async", "reserve", "charge", "send"]
            await router.aclose()

        asyncio.run(main())
        spy.events.clear()
        router.query(HI)  # the caller sends: nothing to ready
        assert spy.events == ["reserve", "charge"]


def test_an_endpoint_past_the_first_is_readied_inside_the_step_before_its_charge(
    tmp_path: Path, keys: str
) -> None:
    spy = Spy()
    with FakeProvider([FakeEndpoint("a"), FakeEndpoint("b")]) as fake:
        path = tmp_path / "t.md"
        path.write_text(fake_table(fake, [("a", "1 | |"), ("b", "| |")]))
        router = Router.from_csv(path, store=SpyStore(spy), transport=SpyTransport(spy))
        router.completion(HI)
        spy.events.clear()
        assert served_by(router.completion(HI)).endpoint.endswith("b")  # a's rpm is spent
        assert spy.events == [
            *("prepare sync", "client", "reserve", "refused"),  # a: readied, refused
            *("prepare sync", "client", "charge", "send", "client"),  # b: readied, charged, sent
        ]


# -- 400 ms ingress latency across a window rollover, on a clock shared with the fake --------

RPM = 10
MINUTE = 1_767_225_600.0  # a whole minute: the burst starts 0.1 s before a bucket edge


def _send(router: Router, path: str, url: str | None, n: int) -> None:
    """``n`` requests by ``path``, one after another, each read to its end, each waiting for
    capacity when there is none."""
    if path in ("async", "async-stream"):
        stream = path == "async-stream"

        async def main() -> None:
            for _ in range(n):
                answer = await router.acompletion(HI, max_tokens=5, stream=stream, wait=300)
                if stream:
                    _ = [chunk async for chunk in answer]
            await router.aclose()

        asyncio.run(main())
        return
    if path.startswith("proxy"):
        assert url is not None
        stream = path == "proxy-stream"
        with openai.OpenAI(base_url=url, api_key="unused", max_retries=0) as sdk:
            for _ in range(n):
                answer = sdk.chat.completions.create(
                    model="auto",
                    messages=HI,  # type: ignore[arg-type]
                    max_tokens=5,
                    stream=stream,
                    extra_body={"llamux": {"wait": 300}},
                )
                if stream:
                    list(answer)  # type: ignore[arg-type]
        return
    for _ in range(n):
        answer = router.completion(HI, max_tokens=5, stream=path == "stream", wait=300)
        if path == "stream":
            list(answer)


@pytest.mark.parametrize(
    "path", ["sync", "stream", "async", "async-stream", "proxy", "proxy-stream"]
)
def test_requests_that_arrive_late_never_cross_the_providers_window(
    tmp_path: Path, keys: str, path: str
) -> None:
    clock = FakeClock(MINUTE + 59.9)
    with FakeProvider(
        [FakeEndpoint("a", rpm=RPM)], clock=clock.now, hold=hold_on_clock(clock)
    ) as fake:
        fake.set_ingress("a", 0.4, first=RPM)  # the first window's requests arrive 0.4 s late
        router = fake_router(fake, tmp_path, [("a", f"{RPM} | |")], clock=clock)
        with contextlib.ExitStack() as stack:
            url = None
            if path.startswith("proxy"):
                running = stack.enter_context(ProxyThread(create_app(router)))
                url = running.url + "/v1"
            _send(router, path, url, 2 * RPM)  # two windows' worth, back to back
        rows = fake.trace("a")
        assert [r.status for r in rows if not r.admitted] == []  # the fake refused nothing
        assert len(rows) == 2 * RPM
        first, second = rows[:RPM], rows[RPM:]
        # the rolled window's capacity is used again as soon as the provider frees it
        assert second[0].at - first[0].at < 60 + 1 + 0.1
        assert second[-1].at - first[-1].at < 60 + 1 + 0.1


# -- real processes across a real minute's rollover (one minute of real time in all) --------


@pytest.mark.slow
def test_processes_on_one_store_never_cross_a_real_window_and_use_the_next(
    tmp_path: Path, keys: str, redis_server: RedisServer
) -> None:
    """Cold processes (the SDK imported on the first call), 6 processes x 4 threads on one
    SQLite file, 3 x 4 on one Redis: two windows' worth each, the first window's requests
    arriving 0.9 s late. The fake counts at arrival in exact windows."""
    groups = {  # endpoint: (rpm, store, processes, threads, requests each)
        "cold": (3, f"sqlite://{tmp_path / 'cold.db'}", 3, 1, 2),
        "sqlite": (12, f"sqlite://{tmp_path / 'shared.db'}", 6, 4, 1),
        "redis": (12, f"{redis_server.url}?namespace=rollover-{uuid.uuid4().hex[:8]}", 3, 4, 2),
    }
    # no rate-limit headers: llamux cannot learn from them what it failed to count
    endpoints = [FakeEndpoint(n, rpm=rpm, rate_headers=False) for n, (rpm, *_) in groups.items()]
    with FakeProvider(endpoints) as fake:
        for name in ("sqlite", "redis"):
            fake.set_ingress(name, 0.9, first=groups[name][0])
        results: dict[str, Counter[str]] = {}
        # all begin at .45 of a second: a charge stamped when reserved lands in a bucket
        # that frees up to 0.9 s before the provider frees the request arriving 0.9 s later
        start = math.ceil(time.time() + 6) + 0.45

        def run(name: str) -> None:
            rpm, store, processes, threads, requests = groups[name]
            config = tmp_path / f"{name}.md"
            config.write_text(fake_table(fake, [(name, f"{rpm} | |")]))
            begin = None if name == "cold" else start  # cold processes begin at once
            results[name] = run_workers(
                config, store, processes, threads, requests, wait=100, start=begin
            )

        pool = [threading.Thread(target=run, args=(name,)) for name in groups]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        for name, (rpm, *_) in groups.items():
            assert results[name] == {name: 2 * rpm}, name  # every request served
            rows = fake.trace(name)
            assert [r for r in rows if not r.admitted] == [], name  # none refused
            first, second = rows[:rpm], rows[rpm:]
            assert len(second) == rpm
            # the rolled window is used again one window after llamux learned the first
            # outcome (plus a bucket): a few seconds at most on 2 busy cores, never a second
            # window of idling
            assert second[0].at - first[0].at < 60 + 5, name
