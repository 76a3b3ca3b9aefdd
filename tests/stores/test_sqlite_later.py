"""Settles held for the next step (``sqlite_later``): a settle that only gives quota back is
written by the process's next step, or by its flusher, at close or at exit; until then every
other process counts the estimate (never less than was used), and the process itself reads
its own settles."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llamux import StoreError
from llamux._policy.quota import Cost, Reservation
from llamux._policy.rules import Scope, rules_from_limits
from llamux._stores import sqlite_later
from llamux._stores.sqlite import SQLiteStore

from conftest import store_used

T0 = 1_767_225_600.0
EP = Scope("ep", rules_from_limits([("rpm", 50), ("tpm", 10_000), ("rpd", 1000)], {}))


def in_flight(store: SQLiteStore, tokens: int = 40) -> Reservation:
    made = store.reserve("ep", [EP], Cost(tokens), T0, 120.0)  # a call llamux makes itself
    assert isinstance(made, Reservation)
    return made


def test_a_settle_that_gives_back_is_written_by_the_next_step(
    tmp_path: Path, patient: None
) -> None:
    mine, other = SQLiteStore(tmp_path / "q.db"), SQLiteStore(tmp_path / "q.db")
    held = in_flight(mine)
    assert mine.settle(held.id, 10, T0 + 1)
    assert store_used(other, EP, T0 + 1)["tpm"] == 40  # the estimate: never less than used
    assert isinstance(mine.reserve("ep", [EP], Cost(5), T0 + 2), Reservation)
    assert store_used(other, EP, T0 + 2)["tpm"] == 15  # written in that step, before it
    assert not mine.settle(held.id, 10, T0 + 3)  # once
    mine.close()
    other.close()


def test_the_process_reads_its_own_held_settles(tmp_path: Path, patient: None) -> None:
    store = SQLiteStore(tmp_path / "q.db")
    assert store.settle(in_flight(store).id, 10, T0 + 1)
    assert store_used(store, EP, T0 + 1)["tpm"] == 10
    store.close()


def test_a_settle_above_the_estimate_is_written_at_once(tmp_path: Path, patient: None) -> None:
    mine, other = SQLiteStore(tmp_path / "q.db"), SQLiteStore(tmp_path / "q.db")
    assert mine.settle(in_flight(mine).id, 60, T0 + 1)
    assert store_used(other, EP, T0 + 1)["tpm"] == 60  # others must count it now
    mine.close()
    other.close()


def test_close_writes_the_held_settles(tmp_path: Path, patient: None) -> None:
    mine, other = SQLiteStore(tmp_path / "q.db"), SQLiteStore(tmp_path / "q.db")
    assert mine.settle(in_flight(mine).id, 10, T0 + 1)
    mine.close()
    assert store_used(other, EP, T0 + 1)["tpm"] == 10
    other.close()


def test_the_flusher_writes_what_an_idle_process_holds(tmp_path: Path) -> None:
    mine, other = SQLiteStore(tmp_path / "q.db"), SQLiteStore(tmp_path / "q.db")
    assert mine.settle(in_flight(mine).id, 10, T0 + 1)
    deadline = time.monotonic() + 10
    while store_used(other, EP, T0 + 1)["tpm"] != 10 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert store_used(other, EP, T0 + 1)["tpm"] == 10
    assert not mine._later.items
    mine.close()
    other.close()


def test_a_step_that_fails_holds_the_settles_again(
    tmp_path: Path, patient: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    mine, other = SQLiteStore(tmp_path / "q.db"), SQLiteStore(tmp_path / "q.db")
    assert mine.settle(in_flight(mine).id, 10, T0 + 1)

    def broken(*args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    with monkeypatch.context() as patch:
        patch.setattr("llamux._stores.sqlite_settles.forget_spent", broken)
        with pytest.raises(StoreError):
            mine.reserve("ep", [EP], Cost(5), T0 + 2)
    assert store_used(other, EP, T0 + 2)["tpm"] == 40  # nothing of that step holds
    assert len(mine._later.items) == 1
    assert isinstance(mine.reserve("ep", [EP], Cost(5), T0 + 2), Reservation)
    assert store_used(other, EP, T0 + 2)["tpm"] == 15
    mine.close()
    other.close()


def test_a_process_that_exits_without_closing_writes_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    script = f"""
from llamux._policy.quota import Cost
from llamux._policy.rules import Scope, rules_from_limits
from llamux._stores import sqlite_later
from llamux._stores.sqlite import SQLiteStore
sqlite_later.HOLD_SECONDS = 3600.0
EP = Scope("ep", rules_from_limits([("rpm", 50), ("tpm", 10_000), ("rpd", 1000)], {{}}))
store = SQLiteStore({str(path)!r})
made = store.reserve("ep", [EP], Cost(40), {T0}, 120.0)
assert store.settle(made.id, 10, {T0 + 1})
assert store._later.items
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    other = SQLiteStore(path)
    assert store_used(other, EP, T0 + 1)["tpm"] == 10
    other.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_writes_what_its_parent_holds(tmp_path: Path, patient: None) -> None:
    mine, other = SQLiteStore(tmp_path / "q.db"), SQLiteStore(tmp_path / "q.db")
    assert mine.settle(in_flight(mine).id, 10, T0 + 1)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        code = 0
        try:
            mine.reserve("ep", [EP], Cost(5), T0 + 2)
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store_used(other, EP, T0 + 2)["tpm"] == 45  # the child's 5, the parent's estimate
    mine.close()
    assert store_used(other, EP, T0 + 2)["tpm"] == 15  # the parent wrote its own
    other.close()


def test_a_flusher_that_cannot_write_says_so_once_and_keeps_the_settles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import sqlite3

    monkeypatch.setattr(sqlite_later, "RETRY_SECONDS", 0.01)
    mine, other = SQLiteStore(tmp_path / "q.db"), SQLiteStore(tmp_path / "q.db")

    def broken(*args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    with monkeypatch.context() as patch:
        patch.setattr("llamux._stores.sqlite_settles.forget_spent", broken)
        assert mine.settle(in_flight(mine).id, 10, T0 + 1)
        deadline = time.monotonic() + 10
        while len(caplog.records) < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.2)  # some twenty more tries
        said = [r for r in caplog.records if "could not be written" in r.getMessage()]
        assert len(said) == 1
        assert len(mine._later.items) == 1  # kept
    deadline = time.monotonic() + 10
    while store_used(other, EP, T0 + 1)["tpm"] != 10 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert store_used(other, EP, T0 + 1)["tpm"] == 10  # written once the file takes it
    mine.close()
    other.close()
