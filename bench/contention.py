"""SQLite under contention: decisions per second with 1, 2, 4 and 8 processes on one file,
and the number of over-admissions (must be 0). ``python bench/contention.py [--quick]``.

Each process reserves against the same endpoint as fast as it can for a fixed time; the
endpoint's limit is set so that it runs out during the run. Afterwards the number of
admitted reservations is compared with the limit: any excess is an over-admission.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from llamux._policy.quota import Cost, Reservation, Scope, rules_from_limits
from llamux._stores.sqlite import SQLiteStore

LIMIT = 1_000_000_000  # requests per day: the throughput runs never hit it
SCARCE = 500  # the over-admission runs: far fewer than the processes try


def worker(path: str, seconds: float, limit: int, start: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    store = SQLiteStore(path)
    scope = Scope("ep", rules_from_limits([("rpd", limit), ("tpm", 10**12)], {}))
    while time.time() < start:
        time.sleep(0.001)
    admitted = decided = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        outcome = store.reserve("ep", [scope], Cost(10), time.time())
        decided += 1
        admitted += isinstance(outcome, Reservation)
    store.close()
    out.put((decided, admitted))


def run(processes: int, seconds: float, limit: int) -> tuple[float, int]:
    """(decisions per second in total, admitted) for ``processes`` on a fresh file."""
    path = str(Path(tempfile.mkdtemp()) / "q.db")
    SQLiteStore(path).close()  # create and migrate once
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    start = time.time() + 1.5  # every process imported and connected
    procs = [
        ctx.Process(target=worker, args=(path, seconds, limit, start, out))
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=seconds + 60) for _ in procs]
    for proc in procs:
        proc.join()
    decided = sum(r[0] for r in results)
    return decided / seconds, sum(r[1] for r in results)


def table(quick: bool) -> list[tuple[str, str]]:
    seconds = 1.0 if quick else 3.0
    rows = []
    base = None
    for n in (1, 2, 4, 8):
        rates = [run(n, seconds, LIMIT)[0] for _ in range(1 if quick else 3)]
        rate = statistics.median(rates)
        base = base or rate
        rows.append(
            (
                f"sqlite reserve, {n} process{'es' if n > 1 else ''}",
                f"{rate:,.0f} decisions/s ({rate / base:.2f}x one process)",
            )
        )
    for n in (4, 8):
        _, admitted = run(n, seconds, SCARCE)
        rows.append(
            (
                f"over-admissions, {n} processes, limit {SCARCE}",
                f"{max(0, admitted - SCARCE)} (admitted {admitted})",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rows = table(args.quick)
    width = max(len(n) for n, _ in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
