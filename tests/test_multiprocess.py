"""Real processes and threads sharing one SQLite file, against the fake provider."""

from __future__ import annotations

import time
from pathlib import Path

from llamux._quota import Scope, rules_from_limits
from llamux._stores.sqlite import SQLiteStore
from llamux.testing import FakeEndpoint, FakeProvider

from conftest import fake_table, run_workers


def test_four_processes_share_quotas_exactly_and_persist(tmp_path: Path) -> None:
    endpoints = [
        FakeEndpoint("pref", rpm=20, tpm=5000),
        FakeEndpoint("second", rpm=30),
        FakeEndpoint("third"),
    ]
    with FakeProvider(endpoints) as fake:
        config = tmp_path / "endpoints.md"
        config.write_text(
            fake_table(fake, [("pref", "20 | 5000 |"), ("second", "30 | |"), ("third", "| |")])
        )
        store_path = tmp_path / "state.db"

        first = run_workers(config, f"sqlite://{store_path}", processes=4, threads=4, requests=5)
        assert first == {"pref": 20, "second": 30, "third": 30}
        assert [fake.stats(n).refused for n in ("pref", "second", "third")] == [0, 0, 0]
        assert [fake.stats(n).served for n in ("pref", "second", "third")] == [20, 30, 30]

        # nothing lost: the store's counts equal what the provider served
        store = SQLiteStore(store_path)
        now = time.time()
        for name, rules in (("pref", [("rpm", 20), ("tpm", 5000)]), ("second", [("rpm", 30)])):
            usage = {
                u.rule.name: u.used
                for u in store.usage([Scope(name, rules_from_limits(rules, {}))], now)
            }
            assert usage["rpm"] == fake.stats(name).served
            if "tpm" in usage:
                assert usage["tpm"] == fake.stats(name).total_tokens
        assert store.stats()["reservations"] == 0  # every reservation was settled
        store.close()

        # new processes see the first run's usage: the minute quotas are still spent
        second = run_workers(config, f"sqlite://{store_path}", processes=4, threads=2, requests=2)
        assert second == {"third": 16}
        assert sum(fake.stats(n).refused for n in ("pref", "second", "third")) == 0
