"""State size after many requests: bounded by the number of endpoints, not of requests.

``python bench/state_size.py [--quick]``: reserves and settles 10^6 requests (10^5 with
--quick) on 3 endpoints in one SQLite file, one every 0.1 simulated seconds (so every
window rolls over many times), and prints the row counts and file size along the way.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from llamux._config.load import LIMIT_NAMES
from llamux._policy.quota import Cost, Reservation, Scope, rules_from_limits
from llamux._stores.sqlite import SQLiteStore

T0 = 1_767_225_600.0
BIG = 10**12
RULES = [(name, BIG) for name in LIMIT_NAMES]


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    total = 10**5 if parser.parse_args().quick else 10**6
    path = Path(tempfile.mkdtemp()) / "q.db"
    store = SQLiteStore(path)
    scopes = [Scope(f"e{i}", rules_from_limits(RULES, {})) for i in range(3)]
    checkpoints = {10**3, 10**4, 10**5, 10**6}
    print(f"{'requests':>10}  {'buckets':>8}  {'reservations':>12}  {'file (KiB)':>10}")
    for n in range(1, total + 1):
        now = T0 + n * 0.1
        scope = scopes[n % 3]
        outcome = store.reserve(scope.key, [scope], Cost(100), now)
        assert isinstance(outcome, Reservation)
        store.settle(outcome.id, 60, now)
        if n in checkpoints:
            rows = store.stats()
            kib = size(path) / 1024
            print(f"{n:>10,}  {rows['buckets']:>8}  {rows['reservations']:>12}  {kib:>10.0f}")
    store.close()
    print(
        f"bound: 3 endpoints x (61 + 61 + 97) buckets = {3 * 219}; machine: {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
