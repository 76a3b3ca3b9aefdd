"""State size for ``query``-only users: bounded by the number of endpoints, not of requests.

``python bench/state_size.py [--requests N] [--full]``: ``Router.query`` N times (default
100,000; ``--full``: 1,000,000) on 3 endpoints, never settling, one query every simulated
millisecond (so the 10-minute settle deadline never passes for the first 600,000: only the
per-endpoint cap bounds the state), on the memory store and on one SQLite file. Prints
reservations held, buckets, the SQLite file's size and the process's resident memory at
checkpoints, and the queries' median cost early and late (no slower as the state ages).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from pathlib import Path

from llamux import Router
from llamux._config.load import parse_table
from llamux._policy.quota import SETTLE_DEADLINE, UNSETTLED_KEPT
from llamux._stores.memory import MemoryStore
from llamux._stores.sqlite import CAP_EVERY, SQLiteStore
from llamux.testing import FakeClock

from common import HELLO, KEY_VAR, print_table

TABLE = f"""\
| provider | model | base_url             | api_key_env | rpm      | tpm         | rpd        |
| -------- | ----- | -------------------- | ----------- | -------- | ----------- | ---------- |
| a        | m1    | http://127.0.0.1:9/v1 | {KEY_VAR}  | 10000000 | 10000000000 | 1000000000 |
| b        | m2    | http://127.0.0.1:9/v1 | {KEY_VAR}  | 10000000 | 10000000000 | 1000000000 |
| c        | m3    | http://127.0.0.1:9/v1 | {KEY_VAR}  | 10000000 | 10000000000 | 1000000000 |
"""
STEP = 0.001


def rss_mib() -> float:
    """The resident set size now (not the peak), from /proc."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def file_kib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 1024


def run(kind: str, total: int, rows: list[list[str]]) -> None:
    directory = Path(tempfile.mkdtemp())
    path = directory / "q.db"
    store = MemoryStore() if kind == "memory" else SQLiteStore(path)
    clock = FakeClock()
    os.environ.setdefault(KEY_VAR, "bench-key")
    router = Router(parse_table(TABLE), store=store, clock=clock, strategy="round_robin")
    checkpoints = sorted({10**3, 10**4, 10**5, total} | ({10**6} if total >= 10**6 else set()))
    gc.collect()
    base = rss_mib()
    early: list[float] = []
    late: list[float] = []
    for n in range(1, total + 1):
        clock.advance(STEP)
        start = time.perf_counter()
        router.query(HELLO)
        took = time.perf_counter() - start
        if n <= 2000:
            early.append(took)
        elif n > total - 2000:
            late.append(took)
        if n in checkpoints:
            stats = store.stats()
            size = f"{file_kib(path):,.0f}" if kind == "sqlite" else "-"
            rows.append(
                [
                    *(kind, f"{n:,}", f"{stats['reservations']:,}", f"{stats['buckets']:,}"),
                    *(size, f"{rss_mib() - base:+.1f}"),
                ]
            )
    speed = statistics.median(late) / statistics.median(early)
    rows.append([kind, "late/early query time", f"{speed:.2f}x", "", "", ""])
    router.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=10**5)
    parser.add_argument("--full", action="store_true", help="10^6 queries per store")
    parser.add_argument("--stores", default="memory,sqlite")
    args = parser.parse_args()
    total = 10**6 if args.full else args.requests
    rows: list[list[str]] = []
    for kind in args.stores.split(","):
        run(kind, total, rows)
    print(f"{total:,} unsettled Router.query calls per store, one per simulated millisecond")
    header = ["store", "queries", "reservations", "buckets", "file KiB", "RSS MiB (delta)"]
    print_table(header, rows)
    print(
        f"bound: at most {UNSETTLED_KEPT:,} unsettled per endpoint (SQLite: + {CAP_EVERY} per "
        f"process), none older than {SETTLE_DEADLINE:.0f} s; 3 endpoints here"
    )


if __name__ == "__main__":
    main()
