"""What only the SQLite store promises: persistence, clear errors, bounded size."""

from __future__ import annotations

import gc
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from llamux import StoreError
from llamux._policy.quota import Cost, Reservation
from llamux._policy.rules import Scope, rules_from_limits
from llamux._stores import default_store_url, store_from_url
from llamux._stores.memory import MemoryStore
from llamux._stores.sqlite import SQLiteStore
from llamux._stores.sqlite_schema import MIGRATIONS

from conftest import store_used

T0 = 1_767_225_600.0
EP = Scope("ep", rules_from_limits([("rpm", 5), ("tpm", 10_000), ("rpd", 100)], {}))


def test_usage_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    first = SQLiteStore(path)
    r = first.reserve("ep", [EP], Cost(40), T0)
    assert isinstance(r, Reservation)
    first.close()
    second = SQLiteStore(path)
    assert second.settle(r.id, 30, T0 + 1)  # the reservation survived too
    assert store_used(second, EP, T0 + 1) == {
        "rpm": 1,
        "tpm": 30,
        "rpd": 1,
    }
    second.close()


def test_state_size_is_bounded_by_endpoints_not_requests(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "q.db")
    ep = Scope("ep", rules_from_limits([("rpm", 10**9), ("tph", 10**12), ("rpd", 10**9)], {}))
    now = T0
    for _ in range(3000):
        r = store.reserve("ep", [ep], Cost(10), now)
        assert isinstance(r, Reservation)
        store.settle(r.id, 5, now)
        now += 37.0  # three hours-and-more of traffic, one request every 37 s
    rows = store.stats()
    # at most 61 minute + 61 hour + 97 day buckets, whatever the number of requests
    assert rows["buckets"] <= 61 + 61 + 97
    assert rows["reservations"] == 0
    store.close()


def test_unsettled_reservations_are_swept_after_a_day(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "q.db")
    store.reserve("ep", [EP], Cost(1), T0)
    store.reserve("ep", [EP], Cost(1), T0 + 2 * 86400)
    assert store.stats()["reservations"] == 1
    store.close()


def test_corrupt_file_is_a_store_error_not_a_reset(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=r"corrupt or not an SQLite file.*move it aside"):
        SQLiteStore(path)
    assert path.read_bytes().startswith(b"this is not")  # untouched


def test_truncated_file_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = SQLiteStore(path)
    store.reserve("ep", [EP], Cost(1), T0)
    store.close()
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    data = path.read_bytes()
    path.write_bytes(data[:50])
    with pytest.raises(StoreError):
        SQLiteStore(path).reserve("ep", [EP], Cost(1), T0)


def test_newer_schema_says_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match=r"newer than this llamux.*upgrade"):
        SQLiteStore(path)


def test_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE mine (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a llamux state file"):
        SQLiteStore(path)


def test_read_only_database_via_uri_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = SQLiteStore(path)
    conn = store._db.conn()
    conn.execute("PRAGMA query_only = ON")  # what a read-only file looks like to SQLite
    with pytest.raises(StoreError, match=r"failed|cannot be written"):
        store.reserve("ep", [EP], Cost(1), T0)
    store.close()


def test_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(store_from_url("memory://"), MemoryStore)
    target = tmp_path / "a" / "b.db"
    opened = store_from_url(f"sqlite://{target}")
    assert isinstance(opened, SQLiteStore) and target.exists()
    opened.close()
    with pytest.raises(StoreError, match="unknown store URL scheme"):
        store_from_url("postgres://x")
    monkeypatch.setenv("LLAMUX_STORE", "memory://")
    assert default_store_url() == "memory://"
    monkeypatch.delenv("LLAMUX_STORE")
    assert default_store_url().startswith("sqlite:///") and "llamux" in default_store_url()


def test_an_older_schema_is_migrated_keeping_usage(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = SQLiteStore(path)
    store.reserve("ep", [EP], Cost(40), T0)
    store.close()
    conn = sqlite3.connect(path)  # make it look like a version-1 file
    conn.executescript(
        "DROP TABLE performance; DROP TABLE counters; DROP TABLE quotas; DROP TABLE spent; "
        "DROP TABLE learned; DROP TABLE leases; DROP INDEX reservations_endpoint; "
        "CREATE INDEX reservations_created ON reservations (created); "
        "ALTER TABLE buckets DROP COLUMN usd; ALTER TABLE reservations DROP COLUMN usd; "
        "PRAGMA user_version = 1;"
    )
    conn.close()
    store = SQLiteStore(path)
    assert store.turn("rr") == 1  # the version-2 tables exist again
    assert store_used(store, EP, T0)["tpm"] == 40
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()


OPEN_AT_ONCE = """
import sys, time
from llamux._policy.quota import Cost, Reservation
from llamux._policy.rules import Scope, rules_from_limits
from llamux._stores.sqlite import SQLiteStore
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
store = SQLiteStore(sys.argv[1])
scope = Scope("ep", rules_from_limits([("rpm", 1000)], {}))
assert isinstance(store.reserve("ep", [scope], Cost(1), time.time()), Reservation)
store.close()
"""


@pytest.mark.slow
def test_processes_opening_a_new_file_at_once_all_get_in(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    for attempt in range(4):
        path = tmp_path / f"new{attempt}.db"
        start = str(time.time() + 1.5)  # after every process has imported llamux
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN_AT_ONCE, str(path), start],
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(12)
        ]
        errors = [proc.communicate(timeout=60)[1] for proc in procs]
        assert [proc.returncode for proc in procs] == [0] * 12, errors
        store = SQLiteStore(path)
        scope = Scope("ep", rules_from_limits([("rpm", 1000)], {}))
        assert store.usage([scope], time.time())[0].used == 12
        store.close()


def test_a_thread_per_request_program_never_piles_up_connections(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "q.db")
    scope = Scope("ep", rules_from_limits([("rpm", 10**6)], {}))

    def open_files() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_files()
    for _ in range(300):  # each thread opens its own connection (the file and its WAL)
        thread = threading.Thread(target=store.reserve, args=("ep", [scope], Cost(1), T0))
        thread.start()
        thread.join()
    gc.collect()
    assert open_files() - before <= 6  # about what one live connection holds, not 600
    assert store.stats()["reservations"] == 300  # every reservation was made
    store.close()


def test_a_refusal_remembered_by_one_process_is_forgotten_by_anothers_release(
    tmp_path: Path,
) -> None:
    path = tmp_path / "q.db"
    one, other = SQLiteStore(path), SQLiteStore(path)  # two processes' views of one file
    day = Scope("ep", rules_from_limits([("rpd", 1)], {}))
    held = other.reserve("ep", [day], Cost(1), T0)
    assert isinstance(held, Reservation)
    assert not isinstance(one.reserve("ep", [day], Cost(1), T0 + 1), Reservation)
    assert one.stats()["spent"] == 1  # remembered in the file, for every process
    assert other.release(held.id, T0 + 2)
    assert one.stats()["spent"] == 0
    assert isinstance(one.reserve("ep", [day], Cost(1), T0 + 3), Reservation)
    one.close()
    other.close()


def test_a_reservation_held_in_flight_is_settled_by_its_own_process_without_a_row(
    tmp_path: Path,
) -> None:
    path = tmp_path / "q.db"
    mine, other = SQLiteStore(path), SQLiteStore(path)
    held = mine.reserve("ep", [EP], Cost(40), T0, 120.0)  # a call llamux makes itself
    assert isinstance(held, Reservation)
    assert mine.stats()["reservations"] == 0  # its record stays in this process
    assert not other.settle(held.id, 10, T0 + 1)  # no other process can settle it
    assert store_used(mine, EP, T0 + 1)["tpm"] == 40
    assert mine.settle(held.id, 10, T0 + 1)
    assert store_used(mine, EP, T0 + 1)["tpm"] == 10
    assert not mine.settle(held.id, 10, T0 + 2)  # once
    asked = mine.reserve("ep", [EP], Cost(5), T0 + 3)  # query's: settled from anywhere
    assert isinstance(asked, Reservation) and mine.stats()["reservations"] == 1
    assert other.settle(asked.id, 5, T0 + 4)
    mine.close()
    other.close()


def test_a_failed_settle_keeps_the_in_flight_record_for_the_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(tmp_path / "q.db")
    held = store.reserve("ep", [EP], Cost(40), T0, 120.0)
    assert isinstance(held, Reservation)

    def broken(*args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    with monkeypatch.context() as patch:
        patch.setattr("llamux._stores.sqlite_settles.forget_spent", broken)
        with pytest.raises(StoreError):  # more than estimated: written at once, not held
            store.settle(held.id, 60, T0 + 1)
    assert store_used(store, EP, T0 + 1)["tpm"] == 40  # rolled back
    assert store.settle(held.id, 60, T0 + 1)  # the retry finds the record
    assert store_used(store, EP, T0 + 1)["tpm"] == 60
    store.close()


def test_a_failed_commit_ends_the_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A COMMIT that fails (an I/O error, say) is rolled back: the step raises a StoreError,
    nothing it wrote holds, and the connection is not left inside a transaction (the next
    step's BEGIN would fail on it)."""
    from llamux._stores.sqlite_connections import Connections

    db = Connections(str(tmp_path / "q.db"))
    real = db.conn()

    class CommitFails:
        def __init__(self) -> None:
            self.said: list[str] = []

        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            self.said.append(sql)
            if sql == "COMMIT":
                raise sqlite3.OperationalError("disk I/O error")
            return real.execute(sql, *args)

    fake = CommitFails()
    monkeypatch.setattr(db, "conn", lambda: fake)
    with pytest.raises(StoreError, match="disk I/O error"), db.transaction() as conn:
        conn.execute("INSERT INTO counters (key, value) VALUES ('x', 1)")
    assert fake.said[-2:] == ["COMMIT", "ROLLBACK"]
    assert not real.in_transaction
    assert real.execute("SELECT count(*) FROM counters").fetchone()[0] == 0
    monkeypatch.undo()
    with db.transaction() as conn:  # the next step works
        conn.execute("INSERT INTO counters (key, value) VALUES ('x', 1)")
    assert real.execute("SELECT value FROM counters").fetchone()[0] == 1
    db.close()
