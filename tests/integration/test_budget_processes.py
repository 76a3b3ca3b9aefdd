"""Dollar budgets across real processes sharing one store (an SQLite file, one Redis): several
processes spend against one budget, settling each request at a real price below its
estimate, and together they never spend a micro-dollar more than the budget."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from llamux._policy.rules import Scope, rules_from_limits
from llamux._stores import store_from_url

from conftest import RedisServer

BUDGET = 2_000_000  # $2.00 in micro-dollars
WORKER = """
import json, random, sys, time
from llamux._policy.quota import Cost, Reservation
from llamux._policy.rules import Scope, rules_from_limits
from llamux._stores import store_from_url
store = store_from_url(sys.argv[1])
own = Scope("q:budget", rules_from_limits([("usd_day", int(sys.argv[2]))], {}))
pool = Scope("pool:shared", rules_from_limits([("usd_month", int(sys.argv[2]))], {}))
rng = random.Random(sys.argv[3])
time.sleep(max(0.0, float(sys.argv[4]) - time.time()))
paid, refused = [], 0
while refused < 20:
    estimate = rng.randint(1_000, 60_000)
    made = store.reserve("budget", [own, pool], Cost(50, usd=estimate), time.time(), 30.0)
    if not isinstance(made, Reservation):
        refused += 1
        assert made.rule in ("usd_day", "usd_month"), made
        time.sleep(0.001)
        continue
    real = rng.randint(estimate // 2, estimate)
    store.settle(made.id, 40, time.time(), usd=real)
    paid.append(real)
print(json.dumps(paid))
"""


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'state.db'}"
    server: RedisServer = request.getfixturevalue("redis_server")
    return f"{server.url}?namespace=usd-{uuid.uuid4().hex[:12]}"


@pytest.mark.slow
def test_processes_never_spend_more_than_one_budget(store_url: str) -> None:
    start = time.time() + 1.5
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, store_url, str(BUDGET), str(n), repr(start)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    paid = []
    for worker in workers:
        out, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0
        paid += json.loads(out)
    assert sum(paid) <= BUDGET  # 0 over-spend
    assert sum(paid) > BUDGET - 60_000 * 5  # and the budget was spent (nothing lost)
    store = store_from_url(store_url)
    try:
        own = Scope("q:budget", rules_from_limits([("usd_day", BUDGET)], {}))
        used = {u.rule.name: u.used for u in store.usage([own], time.time())}
        assert used == {"usd_day": sum(paid)}  # every micro-dollar counted exactly
    finally:
        store.reset()
        store.close()
