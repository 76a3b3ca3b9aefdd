"""What llamux adds to a call, per store. ``python bench/calls.py [--quick]``.

``completion``, ``acompletion`` and streams (sync and async) through a Router on the memory
and the SQLite store, each beside a bare ``openai`` SDK call to the same fake provider (in
its own process, as a real provider would be). The variants run in interleaved rounds (a
chunk of each per round, the order reversed every other round), so a slow patch of the
machine hits them alike; each row gives the median over all rounds and the overhead over
its bare call, with its range over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import openai

from llamux import Router
from llamux._config.load import parse_table

from common import HELLO, KEY_VAR, fake_provider, print_table

LIMITS = "| 10000000 | 10000000000 | 10000000 | 10000000000 | 100000000 | 10000000000 |"
USAGE = {"include_usage": True}  # what llamux asks for in a stream


def table(base_url: str) -> str:
    head = (
        "| name | provider | model | base_url | api_key_env | rpm | tpm | rph | tph | rpd | tpd |"
    )
    return f"{head}\n|{'---|' * 11}\n| a | bench | m | {base_url} | {KEY_VAR} {LIMITS}\n"


def timed(fn: Callable[[], object], n: int) -> list[float]:
    out, clock = [], time.perf_counter
    for _ in range(n):
        start = clock()
        fn()
        out.append(clock() - start)
    return out


async def atimed(fn: Callable[[], Awaitable[object]], n: int) -> list[float]:
    out, clock = [], time.perf_counter
    for _ in range(n):
        start = clock()
        await fn()
        out.append(clock() - start)
    return out


def variants(url: str, tmp: str) -> tuple[dict[str, Any], dict[str, Any], list[Router]]:
    """The sync and the async callables by row name (bare SDK first in each group)."""
    client = openai.OpenAI(base_url=url, api_key="k", max_retries=0)
    aclient = openai.AsyncOpenAI(base_url=url, api_key="k", max_retries=0)
    stores = {"memory": "memory://", "SQLite": f"sqlite:///{tmp}/calls-{{}}.db"}
    routers: list[Router] = []

    def router(store: str, kind: str) -> Router:
        made = Router(parse_table(table(url)), store=stores[store].format(kind))
        routers.append(made)
        return made

    def drain(stream: Any) -> None:
        for _ in stream:
            pass

    async def adrain(stream: Any) -> None:
        async for _ in await stream:
            pass

    sync: dict[str, Any] = {
        "bare SDK, sync": lambda: client.chat.completions.create(model="m", messages=HELLO),
        "bare SDK, sync stream": lambda: drain(
            client.chat.completions.create(
                model="m", messages=HELLO, stream=True, stream_options=USAGE
            )
        ),
    }
    asynchronous: dict[str, Any] = {
        "bare SDK, async": lambda: aclient.chat.completions.create(model="m", messages=HELLO),
        "bare SDK, async stream": lambda: adrain(
            aclient.chat.completions.create(
                model="m", messages=HELLO, stream=True, stream_options=USAGE
            )
        ),
    }
    for store in stores:
        c, s = router(store, "c"), router(store, "s")
        a, t = router(store, "a"), router(store, "t")
        sync[f"completion, {store}"] = lambda r=c: r.completion(HELLO)
        sync[f"sync stream, {store}"] = lambda r=s: drain(r.completion(HELLO, stream=True))
        asynchronous[f"acompletion, {store}"] = lambda r=a: r.acompletion(HELLO)
        asynchronous[f"async stream, {store}"] = lambda r=t: adrain(
            r.acompletion(HELLO, stream=True)
        )
    return sync, asynchronous, routers


BARE = {
    "completion": "bare SDK, sync",
    "sync stream": "bare SDK, sync stream",
    "acompletion": "bare SDK, async",
    "async stream": "bare SDK, async stream",
}


def run(rounds: int, per_chunk: int) -> list[list[str]]:
    tmp = tempfile.mkdtemp()
    with fake_provider() as url, asyncio.Runner() as runner:
        sync, asynchronous, routers = variants(url, tmp)
        samples: dict[str, list[list[float]]] = {k: [] for k in (*sync, *asynchronous)}

        async def chunk(names: list[str], n: int, keep: bool) -> None:
            for name in names:
                got = await atimed(asynchronous[name], n)
                if keep:
                    samples[name].append(got)

        for name in sync:  # warm up: connections, clients, caches
            timed(sync[name], 30)
        runner.run(chunk(list(asynchronous), 30, keep=False))
        for r in range(rounds):
            flip = -1 if r % 2 else 1
            for name in list(sync)[::flip]:
                samples[name].append(timed(sync[name], per_chunk))
            runner.run(chunk(list(asynchronous)[::flip], per_chunk, keep=True))
        for router in routers:
            router.close()
    rows = []
    for name, chunks in samples.items():
        median = statistics.median([t for c in chunks for t in c]) * 1e3
        kind = name.split(",")[0]
        over = ""
        if kind in BARE:
            pairs = zip(chunks, samples[BARE[kind]], strict=True)
            deltas = [(statistics.median(a) - statistics.median(b)) * 1e6 for a, b in pairs]
            over = f"+{statistics.median(deltas):.0f} µs [{min(deltas):+.0f}..{max(deltas):+.0f}]"
        rows.append([name, f"{median:.3f} ms", over])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    os.environ[KEY_VAR] = "bench-key"
    rounds, per_chunk = (4, 15) if args.quick else (10, 30)
    rows = run(rounds, per_chunk)
    print_table(["row", "median per call", "over the bare SDK call (per round)"], rows)
    print(f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; {rounds} rounds")


if __name__ == "__main__":
    main()
