"""What a decision costs when most endpoints are spent. ``python bench/decisions.py [--quick]``.

``Router.query`` with N = 1, 3, 10, 30, 100 endpoints, in three situations: (a) the first
endpoint admits; (b) every endpoint but the last is out of quota (its daily request limit
used up); (c) every endpoint but the last is cooling down. Memory and SQLite stores. The
variants are measured in interleaved rounds (each round runs a chunk of every variant), so
a slow patch of the machine hits them alike; each row gives the median per decision over
all rounds and, per round, the ratio to N=1 of the same situation and store (median and
range over the rounds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

from llamux import Router
from llamux._config.load import parse_table

from common import HELLO, KEY_VAR, print_table

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
    for _ in range(20):  # warm up: connections, caches
        router.query(HELLO, max_tokens=10)
    return router


def chunk(router: Router, count: int) -> list[float]:
    times, clock = [], time.perf_counter
    for _ in range(count):
        start = clock()
        router.query(HELLO, max_tokens=10)
        times.append(clock() - start)
    return times


def run(stores: dict[str, str], rounds: int, per_chunk: int) -> list[list[str]]:
    variants = [(s, n, k) for s in stores for k in SITUATIONS for n in SIZES]
    routers = {v: prepared(v[1], v[2], stores[v[0]].format(n=v[1], k=v[2])) for v in variants}
    times: dict[tuple[str, int, str], list[float]] = {v: [] for v in variants}
    per_round: dict[tuple[str, int, str], list[float]] = {v: [] for v in variants}
    for _ in range(rounds):
        for v in variants:
            got = chunk(routers[v], per_chunk)
            times[v] += got
            per_round[v].append(statistics.median(got))
    for router in routers.values():
        router.close()
    rows = []
    for store, n, k in variants:
        ratios = [
            a / b for a, b in zip(per_round[(store, n, k)], per_round[(store, 1, k)], strict=True)
        ]
        median = statistics.median(times[(store, n, k)]) * 1e6
        rows.append(
            [
                store,
                f"({k}) {SITUATIONS[k]}",
                str(n),
                f"{median:.1f} µs",
                f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}..{max(ratios):.2f}]",
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    os.environ[KEY_VAR] = "bench-key"
    tmp = tempfile.mkdtemp()
    stores = {"memory": "memory://", "SQLite": f"sqlite:///{tmp}/d{{n}}{{k}}.db"}
    rounds, per_chunk = (3, 50) if args.quick else (7, 150)
    rows = run(stores, rounds, per_chunk)
    print_table(["store", "situation", "N", "median per decision", "vs N=1 (per round)"], rows)
    print(f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; {rounds} rounds")


if __name__ == "__main__":
    main()
