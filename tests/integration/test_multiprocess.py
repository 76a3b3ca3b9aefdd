"""Real processes and threads, each process with its own Router, sharing one store (an SQLite
file, or one Redis: the multi-machine case on one machine), against the fake provider."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from llamux import Router
from llamux._stores import QuotaStore
from llamux.testing import FakeEndpoint, FakeProvider

from conftest import RedisServer, fake_table, run_workers, status_of, used_of

RULES = {"pref": [("rpm", 20), ("tpm", 5000)], "second": [("rpm", 30)]}


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'state.db'}"
    server: RedisServer = request.getfixturevalue("redis_server")
    return f"{server.url}?namespace=mp-{uuid.uuid4().hex[:12]}"


def unsettled(store: QuotaStore, url: str) -> int:
    """Reservations still held in the store (after a clean run: none)."""
    stats = getattr(store, "stats", None)
    if stats is not None:  # SQLite reports its row counts
        return int(stats()["reservations"])
    import redis

    client = redis.Redis.from_url(url.partition("?")[0])
    try:
        return len(client.keys(f"{store.namespace}:*:r:*"))  # type: ignore[attr-defined]
    finally:
        client.close()


@pytest.mark.slow
def test_four_processes_share_quotas_exactly_and_persist(tmp_path: Path, store_url: str) -> None:
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

        first = run_workers(config, store_url, processes=4, threads=4, requests=5)
        assert first == {"pref": 20, "second": 30, "third": 30}
        assert [fake.stats(n).refused for n in ("pref", "second", "third")] == [0, 0, 0]
        assert [fake.stats(n).served for n in ("pref", "second", "third")] == [20, 30, 30]

        # nothing lost: the store's counts equal what the provider served
        with Router.from_csv(config, store=store_url) as router:
            for name in RULES:
                usage = used_of(router, name)
                assert usage["rpm"] == fake.stats(name).served
                if "tpm" in usage:
                    assert usage["tpm"] == fake.stats(name).total_tokens
            assert unsettled(router.store, store_url) == 0  # every reservation was settled
            assert status_of(router, "pref").usage[0].remaining == 0

        # new processes see the first run's usage: the minute quotas are still spent
        second = run_workers(config, store_url, processes=4, threads=2, requests=2)
        assert second == {"third": 16}
        assert sum(fake.stats(n).refused for n in ("pref", "second", "third")) == 0


@pytest.mark.slow
def test_processes_reserving_ahead_serve_a_limit_exactly(tmp_path: Path) -> None:
    """Far from its limit each process reserves the next calls ahead (SQLite,
    ``sqlite_ahead``); four processes of four threads still serve exactly the limit, the
    strict fake provider (exact rolling minute) refuses none, and the rest are refused by
    llamux."""
    endpoints = [FakeEndpoint("wide", rpm=240)]
    with FakeProvider(endpoints) as fake:
        config = tmp_path / "endpoints.md"
        config.write_text(fake_table(fake, [("wide", "240 | |")]))
        got = run_workers(
            config, f"sqlite://{tmp_path / 'q.db'}", processes=4, threads=4, requests=20
        )
        assert got == {"wide": 240, "unavailable": 80}
        assert fake.stats("wide").refused == 0
        assert fake.stats("wide").served == 240
