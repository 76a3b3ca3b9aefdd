"""What llamux adds to a call, per store. ``python bench/calls.py [--quick]``.

``completion``, ``acompletion`` and streams (sync and async) through a Router on the memory
and the SQLite store, each beside a bare ``openai`` SDK call of the same kind to the same
fake provider (in its own process, as a real provider would be). All twelve variants are
warmed up, then measured in interleaved rounds (``rounds.compare``: each round runs a batch
of every variant, in a shuffled order), so a slow patch of the machine falls on them alike.
Each row gives the median per call with p10..p90 and, round by round against its bare call,
the ratio and the overhead (median and range over the rounds): the paired figures are the
claim, the absolute ones the record.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from typing import Any

import openai

from llamux import Router
from llamux._config.load import parse_table

from common import HELLO, KEY_VAR, Load, fake_provider, print_table
from rounds import Batch, Measured, acalls, calls, compare

LIMITS = "| 10000000 | 10000000000 | 10000000 | 10000000000 | 100000000 | 10000000000 |"
USAGE = {"include_usage": True}  # what llamux asks for in a stream
KINDS = {  # row kind: its bare SDK twin
    "completion": "bare SDK, sync",
    "sync stream": "bare SDK, sync stream",
    "acompletion": "bare SDK, async",
    "async stream": "bare SDK, async stream",
}
STORES = ("memory", "SQLite")


def table(base_url: str) -> str:
    head = (
        "| name | provider | model | base_url | api_key_env | rpm | tpm | rph | tph | rpd | tpd |"
    )
    return f"{head}\n|{'---|' * 11}\n| a | bench | m | {base_url} | {KEY_VAR} {LIMITS}\n"


def drain(stream: Any) -> None:
    for _ in stream:
        pass


async def adrain(stream: Any) -> None:
    async for _ in await stream:
        pass


def variants(url: str, tmp: str, runner: asyncio.Runner, closing: list[Any]) -> dict[str, Batch]:
    """Every variant by row name: the four bare SDK calls, then each kind on each store (one
    router per row, so no row warms another's store)."""
    client = openai.OpenAI(base_url=url, api_key="k", max_retries=0)
    aclient = openai.AsyncOpenAI(base_url=url, api_key="k", max_retries=0)
    closing.append(client)
    stores = {"memory": "memory://", "SQLite": f"sqlite:///{tmp}/calls-{{}}.db"}

    def router(store: str, kind: str) -> Router:
        made = Router(parse_table(table(url)), store=stores[store].format(kind))
        closing.append(made)
        return made

    def create(**extra: Any) -> Any:
        return client.chat.completions.create(model="m", messages=HELLO, **extra)

    def acreate(**extra: Any) -> Any:
        return aclient.chat.completions.create(model="m", messages=HELLO, **extra)

    out: dict[str, Batch] = {
        "bare SDK, sync": calls(create),
        "bare SDK, sync stream": calls(lambda: drain(create(stream=True, stream_options=USAGE))),
        "bare SDK, async": acalls(acreate, runner),
        "bare SDK, async stream": acalls(
            lambda: adrain(acreate(stream=True, stream_options=USAGE)), runner
        ),
    }
    for store in STORES:
        c, s = router(store, "c"), router(store, "s")
        a, t = router(store, "a"), router(store, "t")
        out[f"completion, {store}"] = calls(lambda r=c: r.completion(HELLO))
        out[f"sync stream, {store}"] = calls(lambda r=s: drain(r.completion(HELLO, stream=True)))
        out[f"acompletion, {store}"] = acalls(lambda r=a: r.acompletion(HELLO), runner)
        out[f"async stream, {store}"] = acalls(
            lambda r=t: adrain(r.acompletion(HELLO, stream=True)), runner
        )
    return out


def measure(rounds: int, per_round: int) -> dict[str, Measured]:
    tmp = tempfile.mkdtemp()
    closing: list[Any] = []
    with fake_provider() as url, asyncio.Runner() as runner:
        batches = variants(url, tmp, runner, closing)
        baselines = {name: KINDS.get(name.split(",")[0], name) for name in batches}
        try:
            return compare(batches, baselines, rounds=rounds, per_round=per_round, warmup=30)
        finally:
            for thing in closing:
                thing.close()


def rows(got: dict[str, Measured]) -> list[list[str]]:
    """Each kind's bare call, then that kind on each store."""
    order = [
        name for kind, bare in KINDS.items() for name in (bare, *(f"{kind}, {s}" for s in STORES))
    ]
    return [[n, got[n].spread(), got[n].ratio(), got[n].delta()] for n in order]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    os.environ[KEY_VAR] = "bench-key"
    rounds, per_round = (5, 10) if args.quick else (12, 25)
    load = Load()
    got = measure(rounds, per_round)
    print_table(
        ["row", "per call: median (p10, p90)", "vs bare, per round", "overhead, per round"],
        rows(got),
        title=f"calls: {rounds} interleaved rounds of {per_round} per variant, after warm-up",
    )
    print(load.line())


if __name__ == "__main__":
    main()
