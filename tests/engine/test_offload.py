"""Store work on the event loop: done there when the store is free, moved to a worker thread
(never waiting on the loop) when another writer holds it, and never done twice."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from llamux import Router, served_by
from llamux._policy.passing import Candidate
from llamux._policy.quota import Cost
from llamux._policy.rules import Scope, rules_from_limits
from llamux._stores.sqlite import SQLiteStore
from llamux._stores.waiting import WouldBlock
from llamux.testing import FakeEndpoint, FakeProvider

from conftest import HI, store_used

T0 = 1_767_225_600.0
EP = Scope("ep", rules_from_limits([("rpm", 5)], {}))


def hold_the_lock(path: Path) -> sqlite3.Connection:
    """Another process's writer, mid-transaction."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_nowait_gives_up_at_once_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = SQLiteStore(path)
    other = hold_the_lock(path)
    started = time.monotonic()
    with store.nowait(), pytest.raises(WouldBlock):
        store.reserve_first([Candidate("ep", [EP], Cost(1))], T0)
    assert time.monotonic() - started < 1.0  # no wait for the busy timeout
    other.execute("COMMIT")
    assert store_used(store, EP, T0) == {"rpm": 0}
    with store.nowait():  # free again: done on this thread
        assert store.reserve_first([Candidate("ep", [EP], Cost(1))], T0).reservation is not None
    store.close()
    other.close()


def test_a_busy_store_moves_the_work_off_the_loop_and_notes_each_attempt_once(
    tmp_path: Path, keys: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTHER_API_KEY")  # the first endpoint is skipped: no key
    with FakeProvider([FakeEndpoint("a"), FakeEndpoint("b")]) as fake:
        path = tmp_path / "t.md"
        path.write_text(
            "| name | provider | model | base_url | api_key_env |\n|---|---|---|---|---|\n"
            f"| a | fake | m-a | {fake.base_url('a')} | OTHER_API_KEY |\n"
            f"| b | fake | m-b | {fake.base_url('b')} | FAKE_API_KEY |\n"
        )
        db = tmp_path / "q.db"
        router = Router.from_csv(path, store=f"sqlite:///{db}")
        other = hold_the_lock(db)
        ticks: list[float] = []

        async def main() -> object:
            async def heartbeat() -> None:
                while True:
                    ticks.append(time.monotonic())
                    await asyncio.sleep(0.02)

            beat = asyncio.create_task(heartbeat())
            await asyncio.sleep(0)
            threading.Timer(0.4, other.execute, ("COMMIT",)).start()  # the writer finishes
            response = await router.acompletion(HI)
            beat.cancel()
            await router.aclose()
            return response

        started = time.monotonic()
        response = asyncio.run(main())
        assert time.monotonic() - started >= 0.35  # it did wait for the other writer...
        gaps = [b - a for a, b in itertools.pairwise(ticks)]
        assert len(ticks) >= 10 and max(gaps) < 0.2  # ...in a worker thread: the loop ran on
        attempts = served_by(response).attempts
        assert [(a.endpoint, a.outcome) for a in attempts] == [("a", "skipped"), ("b", "served")]
        other.close()


def test_a_step_outside_nowait_waits_again_on_the_same_thread(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = SQLiteStore(path)
    with store.nowait():  # this thread's connection gives up at once in here...
        assert store.reserve_first([Candidate("ep", [EP], Cost(1))], T0).reservation is not None
    other = hold_the_lock(path)
    threading.Timer(0.3, other.execute, ("COMMIT",)).start()
    started = time.monotonic()
    assert store.reserve_first([Candidate("ep", [EP], Cost(1))], T0).reservation is not None
    assert time.monotonic() - started >= 0.25  # ...and outside it waits for the writer
    assert store_used(store, EP, T0) == {"rpm": 2}
    store.close()
    other.close()
