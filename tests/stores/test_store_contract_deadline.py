"""Bounded state on every store: a reservation can be settled or released until its
deadline (``SETTLE_DEADLINE`` after a query's charge, after the flight deadline for a call);
later its record is gone, settle and release return False and its estimate stays counted."""

from __future__ import annotations

import pytest

from llamux._policy.quota import SETTLE_DEADLINE, UNSETTLED_KEPT, Cost, Reservation
from llamux._policy.rules import Scope, rules_from_limits
from llamux._stores import QuotaStore
from llamux._stores.memory import MemoryStore
from llamux._stores.sqlite import CAP_EVERY, SQLiteStore

from conftest import store_used

T0 = 1_767_225_600.0
FLIGHT = 240.0
EP = Scope("ep", rules_from_limits([("rpd", 10**6), ("tpd", 10**9)], {}))


def reserved(store: QuotaStore, at: float, flight: float = 0.0, tokens: int = 100) -> Reservation:
    made = store.reserve("ep", [EP], Cost(tokens), at, flight)
    assert isinstance(made, Reservation), made
    return made


def test_a_query_settles_until_its_deadline(store: QuotaStore) -> None:
    first, second = reserved(store, T0), reserved(store, T0)
    assert store.settle(first.id, 30, T0 + SETTLE_DEADLINE)  # the last moment it may
    assert store_used(store, EP, T0 + SETTLE_DEADLINE) == {"rpd": 2, "tpd": 130}
    assert not store.settle(second.id, 30, T0 + SETTLE_DEADLINE + 1)
    assert not store.settle(second.id, 30, T0 + SETTLE_DEADLINE + 2)  # gone for good
    assert store_used(store, EP, T0 + SETTLE_DEADLINE + 2) == {"rpd": 2, "tpd": 130}


def test_a_late_release_gives_nothing_back(store: QuotaStore) -> None:
    early, late = reserved(store, T0), reserved(store, T0)
    assert store.release(early.id, T0 + SETTLE_DEADLINE - 1)
    assert not store.release(late.id, T0 + SETTLE_DEADLINE + 1)
    assert store_used(store, EP, T0 + SETTLE_DEADLINE + 1) == {"rpd": 1, "tpd": 100}


def test_a_call_settles_until_its_flight_deadline_and_the_grace_after_it(
    store: QuotaStore,
) -> None:
    kept, lost = reserved(store, T0, FLIGHT), reserved(store, T0, FLIGHT)
    end = T0 + FLIGHT + SETTLE_DEADLINE
    assert store.settle(kept.id, 40, end - 1)
    assert not store.settle(lost.id, 40, end + 1)
    assert store_used(store, EP, end + 1) == {"rpd": 2, "tpd": 140}


def test_records_past_their_deadline_are_swept_without_a_settle(store: QuotaStore) -> None:
    for i in range(50):
        reserved(store, T0 + i)
    later = T0 + 50 + SETTLE_DEADLINE + 120  # past every deadline and a sweep period
    reserved(store, later)
    reserved(store, later + 61)  # the sweep runs at most once a minute
    if isinstance(store, (MemoryStore, SQLiteStore)):
        assert store.stats()["reservations"] <= 2
    assert store_used(store, EP, later + 61) == {"rpd": 52, "tpd": 5200}


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_unsettled_queries_are_capped_per_endpoint(kind: str, tmp_path: object) -> None:
    store: MemoryStore | SQLiteStore = (
        MemoryStore() if kind == "memory" else SQLiteStore(f"{tmp_path}/q.db")
    )
    other = Scope("other", EP.rules)
    made = [reserved(store, T0 + i / 1000) for i in range(UNSETTLED_KEPT + 3 * CAP_EVERY)]
    elsewhere = store.reserve("other", [other], Cost(100), T0)
    assert isinstance(elsewhere, Reservation)
    slack = 0 if kind == "memory" else CAP_EVERY
    assert UNSETTLED_KEPT + 1 <= store.stats()["reservations"] <= UNSETTLED_KEPT + slack + 1
    now = T0 + 2
    assert not store.settle(made[0].id, 1, now)  # the oldest went first
    assert store.settle(made[-1].id, 1, now)  # the newest are kept
    assert store.settle(elsewhere.id, 1, now)  # another endpoint's are its own
    assert store_used(store, EP, now) == {"rpd": len(made), "tpd": (len(made) - 1) * 100 + 1}
    store.close()
