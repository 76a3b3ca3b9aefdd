"""Concurrency limits across real processes sharing one store (an SQLite file, one Redis):
never more requests in flight than the limit, and a killed process's leases expire."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from llamux._policy.quota import Cost, Reservation
from llamux._policy.rules import Scope
from llamux._stores import store_from_url

from conftest import RedisServer

WORKER = """
import json, sys, time
from llamux._policy.quota import Cost, Reservation
from llamux._policy.rules import Scope
from llamux._stores import store_from_url
store = store_from_url(sys.argv[1])
scope = Scope("q:gated", (), 2)
spans, start = [], float(sys.argv[3])
time.sleep(max(0.0, start - time.time()))
while len(spans) < int(sys.argv[2]):
    made = store.reserve("gated", [scope], Cost(1), time.time(), 30.0)
    if not isinstance(made, Reservation):
        time.sleep(0.002)
        continue
    began = time.time()
    time.sleep(0.01)  # the call
    ended = time.time()
    if len(spans) % 2:
        store.settle(made.id, 1, ended)
    else:
        store.release(made.id, ended)
    spans.append((began, ended))
if len(sys.argv) > 4:  # crash holding a lease
    store.reserve("gated", [scope], Cost(1), time.time(), float(sys.argv[4]))
    import os
    os._exit(0)
print(json.dumps(spans))
"""


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'state.db'}"
    server: RedisServer = request.getfixturevalue("redis_server")
    return f"{server.url}?namespace=cc-{uuid.uuid4().hex[:12]}"


def most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted([(b, 1) for b, _ in spans] + [(e, -1) for _, e in spans])
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


@pytest.mark.slow
def test_processes_never_exceed_concurrency_and_a_crash_frees_by_expiry(store_url: str) -> None:
    store_from_url(store_url).close()  # create (and migrate) the file before the race
    start = time.time() + 1.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, store_url, "15", str(start)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(5)
    ]
    spans = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        spans += [tuple(span) for span in json.loads(out)]
    assert len(spans) == 75
    assert most_at_once(spans) == 2  # reached, never crossed
    scope = Scope("q:gated", (), 2)
    store = store_from_url(store_url)
    try:
        assert store.in_flight([scope], time.time()) == {"q:gated": 0}  # every lease given back
        crashed = subprocess.run(
            [sys.executable, "-c", WORKER, store_url, "1", "0", "1.5"], timeout=60
        )
        assert crashed.returncode == 0
        assert store.in_flight([scope], time.time()) == {"q:gated": 1}
        time.sleep(1.6)  # the crashed process's lease expires at its flight deadline
        assert store.in_flight([scope], time.time()) == {"q:gated": 0}
        held = [store.reserve("gated", [scope], Cost(1), time.time(), 5.0) for _ in range(2)]
        assert all(isinstance(r, Reservation) for r in held)
    finally:
        store.close()
