"""SQLite under contention: decisions per second with 1, 2, 4 and 8 processes on one file,
and the number of over-admissions (must be 0). ``python bench/contention.py [--quick]``.

Each process reserves against the same endpoint as fast as it can for a fixed time, all
starting together once every one is imported, connected and warm. The four process counts
run in interleaved rounds (``rounds.compare``, the order shuffled per round), and each is
given as decisions per second and, round by round, as a multiple of one process's rate.
Then, with a limit far below what the processes try, the admitted reservations are compared
with the limit: any excess is an over-admission.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
from multiprocessing.synchronize import Event
from pathlib import Path

from llamux._policy.quota import Cost, Reservation
from llamux._policy.rules import Scope, rules_from_limits
from llamux._stores.sqlite import SQLiteStore

from common import Load, print_table
from rounds import Batch, compare

LIMIT = 1_000_000_000  # requests per day: the throughput runs never hit it
SCARCE = 500  # the over-admission runs: far fewer than the processes try
COUNTS = (1, 2, 4, 8)


def worker(
    path: str, seconds: float, limit: int, ready: mp.Queue, go: Event, out: mp.Queue
) -> None:  # type: ignore[type-arg]
    store = SQLiteStore(path)
    scope = Scope("ep", rules_from_limits([("rpd", limit), ("tpm", 10**12)], {}))
    if limit == LIMIT:
        for _ in range(50):  # warm up: connection, statements, caches
            store.reserve("ep", [scope], Cost(10), time.time())
    ready.put(None)
    go.wait()
    admitted = decided = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        outcome = store.reserve("ep", [scope], Cost(10), time.time())
        decided += 1
        admitted += isinstance(outcome, Reservation)
    store.close()
    out.put((decided, admitted))


def run(processes: int, seconds: float, limit: int) -> tuple[int, int]:
    """(decisions, admitted) by ``processes`` in ``seconds`` on a fresh file."""
    path = str(Path(tempfile.mkdtemp()) / "q.db")
    SQLiteStore(path).close()  # create and migrate once
    ctx = mp.get_context("spawn")
    ready: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    go = ctx.Event()
    procs = [
        ctx.Process(target=worker, args=(path, seconds, limit, ready, go, out))
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=60)
    go.set()
    results = [out.get(timeout=seconds + 60) for _ in procs]
    for proc in procs:
        proc.join()
    return sum(r[0] for r in results), sum(r[1] for r in results)


def per_decision(processes: int, seconds: float) -> Batch:
    """One run of ``processes`` as a batch of one figure: seconds per decision, all counted."""

    def batch(_: int) -> list[float]:
        decided, _admitted = run(processes, seconds, LIMIT)
        return [seconds / decided]

    return batch


def rows(quick: bool) -> tuple[list[list[str]], int]:
    seconds, rounds = (0.5, 2) if quick else (1.0, 3)
    variants = {n: per_decision(n, seconds) for n in COUNTS}
    got = compare(
        {str(n): b for n, b in variants.items()}, "1", rounds=rounds, per_round=1, warmup=0
    )
    out = []
    for n in COUNTS:
        m = got[str(n)]
        rates = [1 / t for t in m.rounds]
        out.append(
            [
                f"sqlite reserve, {n} process{'es' if n > 1 else ''}",
                f"{statistics.median(rates):,.0f}/s [{min(rates):,.0f}..{max(rates):,.0f}]",
                "baseline" if n == 1 else m.ratio(invert=True),
            ]
        )
    for n in (4, 8):
        _, admitted = run(n, seconds, SCARCE)
        out.append(
            [
                f"over-admissions, {n} processes, limit {SCARCE}",
                f"{max(0, admitted - SCARCE)} (admitted {admitted})",
                "",
            ]
        )
    return out, rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    load = Load()
    got, rounds = rows(args.quick)
    print_table(
        ["row", "decisions per second: median [range]", "vs 1 process, per round"],
        got,
        title=f"SQLite contention: {rounds} interleaved rounds, one run of each count per round",
    )
    print(load.line())


if __name__ == "__main__":
    main()
