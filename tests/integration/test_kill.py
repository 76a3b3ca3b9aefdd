"""kill -9 of worker processes at random points: nothing lost, nothing double-counted."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llamux import Router, served_by
from llamux._policy.tokens import estimate
from llamux._stores.sqlite import SQLiteStore
from llamux.testing import FakeEndpoint, FakeProvider

from conftest import WORKER, fake_table, used_of

RULES = [("rpm", 1_000_000), ("tpm", 1_000_000_000)]


@pytest.mark.slow
def test_kill_nine_mid_run_keeps_the_accounting_exact(tmp_path: Path, keys: str) -> None:
    rng = random.Random(20261123)
    with FakeProvider([FakeEndpoint("a", delay=0.01)]) as fake:
        config = tmp_path / "endpoints.md"
        config.write_text(fake_table(fake, [("a", "1000000 | 1000000000 |")]))
        store_path = tmp_path / "state.db"
        env = {**os.environ, "LLAMUX_STORE": f"sqlite://{store_path}"}
        procs = [
            subprocess.Popen(
                [sys.executable, str(WORKER), str(config), "4", "100000"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            for _ in range(4)
        ]
        deadline = time.monotonic() + 60
        while fake.stats("a").served < 40 and time.monotonic() < deadline:
            time.sleep(0.05)  # until they are well under way (imports take a while)
        for proc in procs:
            time.sleep(rng.uniform(0.05, 0.4))  # random points
            proc.send_signal(signal.SIGKILL)
        for proc in procs:
            proc.wait(timeout=30)
            assert proc.returncode == -signal.SIGKILL
        time.sleep(0.1)  # handlers of requests still in the air finish
        served, served_tokens = fake.stats("a").served, fake.stats("a").total_tokens
        assert served > 20, "the workers did real work before being killed"

        store = SQLiteStore(store_path)  # the store still opens
        with Router.from_csv(config, store=store) as router:
            usage = used_of(router, "a")
        conn = sqlite3.connect(store_path)
        (rows,) = conn.execute("SELECT count(*) FROM reservations").fetchone()
        conn.close()
        assert rows == 0  # a call's reservation is held by its process, not in the file
        # nothing lost: every request the provider served is counted ...
        assert usage["rpm"] >= served and usage["tpm"] >= served_tokens
        # ... and nothing double-counted: beyond that, only the estimates of the requests in
        # flight when each worker died (each of its threads holds at most one)
        in_flight = 4 * 4
        each = estimate([{"role": "user", "content": "hi"}], {"max_tokens": 8}, 1024)
        assert usage["rpm"] <= served + in_flight
        assert usage["tpm"] <= served_tokens + in_flight * each
        store.close()

        # and routing goes on from the same file
        with Router.from_csv(config, store=f"sqlite://{store_path}") as router:
            response = router.completion([{"role": "user", "content": "still there?"}])
            assert served_by(response) is not None
