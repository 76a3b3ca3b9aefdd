"""What a decision costs when most endpoints are spent. ``python bench/decisions.py [--quick]``.

``Router.query`` with N = 1, 3, 10, 30, 100 endpoints, in three situations: (a) the first
endpoint admits; (b) every endpoint but the last is out of quota (its daily request limit
used up); (c) every endpoint but the last is cooling down. Memory and SQLite stores. All 30
variants are warmed up, then measured in interleaved rounds (``rounds.compare``: each round
runs a batch of every variant, in a shuffled order), so a slow patch of the machine falls on
them alike. Each row gives the median per decision over all rounds with p10..p90 and, per
round, the ratio to N=1 of the same situation and store (median and range over the rounds):
the ratio is the claim, the absolute figure the record.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from llamux import Router
from llamux._config.load import parse_table

from common import HELLO, KEY_VAR, Load, print_table
from rounds import Measured, calls, compare

SIZES = (1, 3, 10, 30, 100)
SITUATIONS = {"a": "first admits", "b": "all but last exhausted", "c": "all but last cooling"}
BIG = "| 10000000 | 10000000000 | 10000000 | 10000000000 | 100000000 | 10000000000 |"
LIMITS = ("rpm", "tpm", "rph", "tph", "rpd", "tpd")
SPENT = "| 10000000 | 10000000000 | 10000000 | 10000000000 | 1 | 10000000000 |"


def table(n: int, situation: str) -> str:
    """N endpoints, six rules each; in (b) all but the last allow one request a day."""
    columns = ["name", "provider", "model", "base_url", "api_key_env", *LIMITS]
    head = f"| {' | '.join(columns)} |\n|{'---|' * len(columns)}\n"
    rows = []
    for i in range(n):
        limits = SPENT if situation == "b" and i < n - 1 else BIG
        rows.append(f"| e{i} | bench | m{i} | http://127.0.0.1:9/v1 | {KEY_VAR} {limits}")
    return head + "\n".join(rows) + "\n"


def prepared(n: int, situation: str, url: str) -> Router:
    router = Router(parse_table(table(n, situation)), store=url)
    rows = router.status()
    now = time.time()
    for row in rows[:-1]:
        if situation == "b":  # spend the day's one request
            router.query(HELLO, model=row.endpoint.id, max_tokens=10)
        elif situation == "c":
            router.store.cool_down(row.quota, now + 86_400, "bench", "cooldown", now)
    return router


def name(store: str, n: int, k: str) -> str:
    return f"{store} ({k}) N={n}"


def measure(stores: dict[str, str], rounds: int, per_round: int) -> dict[str, Measured]:
    keys = [(s, n, k) for s in stores for k in SITUATIONS for n in SIZES]
    routers = [prepared(n, k, stores[s].format(n=n, k=k)) for s, n, k in keys]
    variants = {
        name(*key): calls(lambda r=router: r.query(HELLO, max_tokens=10))
        for key, router in zip(keys, routers, strict=True)
    }
    baselines = {name(s, n, k): name(s, 1, k) for s, n, k in keys}
    try:
        return compare(variants, baselines, rounds=rounds, per_round=per_round, warmup=50)
    finally:
        for router in routers:
            router.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    os.environ[KEY_VAR] = "bench-key"
    tmp = tempfile.mkdtemp()
    stores = {"memory": "memory://", "SQLite": f"sqlite:///{tmp}/d{{n}}{{k}}.db"}
    rounds, per_round = (5, 40) if args.quick else (15, 100)
    load = Load()
    got = measure(stores, rounds, per_round)
    rows = [
        [s, f"({k}) {SITUATIONS[k]}", str(n), m.spread(), m.ratio()]
        for s in stores
        for k in SITUATIONS
        for n in SIZES
        for m in [got[name(s, n, k)]]
    ]
    print_table(
        ["store", "situation", "N", "per decision: median (p10, p90)", "vs N=1, per round"],
        rows,
        title=f"decisions: {rounds} interleaved rounds of {per_round} per variant, after warm-up",
    )
    print(load.line())


if __name__ == "__main__":
    main()
