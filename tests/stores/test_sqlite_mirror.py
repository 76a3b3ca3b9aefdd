"""The SQLite store's mirror: a connection decides from what it holds only while no other
connection has written, and drops it when a step fails."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from llamux import StoreError
from llamux._policy.quota import Cost, Refusal, Reservation
from llamux._policy.rules import Scope, rules_from_limits
from llamux._stores.memory import MemoryStore
from llamux._stores.sqlite import SQLiteStore

T0 = 1_767_225_600.0
EP = Scope("ep", rules_from_limits([("rpm", 3)], {}))


def made(store: SQLiteStore, at: float, flight: float = 0.0, tokens: int = 10) -> Reservation:
    got = store.reserve("ep", [EP], Cost(tokens), at, flight)
    assert isinstance(got, Reservation), got
    return got


def test_a_decision_sees_what_another_connection_wrote(tmp_path: Path) -> None:
    one, other = SQLiteStore(tmp_path / "q.db"), SQLiteStore(tmp_path / "q.db")
    made(one, T0)
    made(one, T0 + 1)  # held in one's mirror by now
    last = made(other, T0 + 2)
    assert isinstance(one.reserve("ep", [EP], Cost(10), T0 + 3), Refusal)
    assert other.release(last.id, T0 + 4)
    made(one, T0 + 5)  # the release elsewhere is seen
    assert isinstance(other.reserve("ep", [EP], Cost(10), T0 + 6), Refusal)
    one.close()
    other.close()


def test_a_refusal_forgotten_elsewhere_is_forgotten_here(tmp_path: Path) -> None:
    one, other = SQLiteStore(tmp_path / "q.db"), SQLiteStore(tmp_path / "q.db")
    first = made(other, T0)
    made(one, T0)
    made(one, T0)
    refused = one.reserve("ep", [EP], Cost(10), T0 + 1)
    assert isinstance(refused, Refusal) and refused.retry_at is not None  # remembered
    assert isinstance(one.reserve("ep", [EP], Cost(10), T0 + 2), Refusal)
    assert other.release(first.id, T0 + 3)  # forgets the refusal, bumps the generation
    made(one, T0 + 4)
    one.close()
    other.close()


def test_a_step_that_fails_drops_what_it_applied(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = SQLiteStore(path)
    first = made(store, T0, flight=60.0)
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON buckets WHEN NEW.tokens = 777 "
        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
    )
    conn.close()
    made(store, T0 + 1, flight=60.0)  # another connection wrote: read from the file
    made(store, T0 + 2, flight=60.0)  # alone again: the buckets are held from now on
    with pytest.raises(StoreError, match="refused by the test"):
        store.settle(first.id, 777, T0 + 3)  # corrects the charged bucket, then fails
    # the rolled-back correction must not linger: 3 requests still count
    assert isinstance(store.reserve("ep", [EP], Cost(10), T0 + 4, 60.0), Refusal)
    assert store.settle(first.id, 5, T0 + 5)  # kept for a second try, which lands
    assert isinstance(store.reserve("ep", [EP], Cost(10), T0 + 6, 60.0), Refusal)
    assert store.usage([EP], T0 + 6)[0].used == 3
    store.close()


OPERATIONS = {
    "absorb": lambda s, r, at: s.absorb("ep", "minute", 1, 0, at),
    "cool_down": lambda s, r, at: s.cool_down("ep", at + 30, "test", "cooldown", at),
    "release": lambda s, r, at: s.release(r.id, at),
    "settle below": lambda s, r, at: s.settle(r.id, 1, at),
    "settle above": lambda s, r, at: s.settle(r.id, 90, at),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_what_a_connection_writes_itself_is_seen_by_its_next_decision(
    operation: str, tmp_path: Path
) -> None:
    """One connection alone on its file (its mirror held): after each kind of write, its
    next decisions are the memory store's, refusal for refusal."""
    scope = Scope("ep", rules_from_limits([("rpm", 3), ("tpm", 100)], {}))
    outcomes = []
    for store in (SQLiteStore(tmp_path / "q.db"), MemoryStore()):
        seen = []
        first = store.reserve("ep", [scope], Cost(30), T0, 60.0)
        assert isinstance(first, Reservation)
        store.reserve("ep", [scope], Cost(30), T0 + 1, 60.0)  # the mirror holds it all now
        OPERATIONS[operation](store, first, T0 + 2)
        for at in (T0 + 3, T0 + 4, T0 + 40):
            got = store.reserve("ep", [scope], Cost(30), at, 60.0)
            seen.append(
                ("admitted", got.remaining)
                if isinstance(got, Reservation)
                else ("refused", got.rule, got.used, got.retry_at)
            )
        outcomes.append(seen)
        store.close()
    assert outcomes[0] == outcomes[1]
