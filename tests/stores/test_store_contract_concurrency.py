"""The concurrency contract on every store: leases counted in the same step as the charges."""

from __future__ import annotations

import random

from llamux._policy.passing import Candidate
from llamux._policy.quota import LEASE_POLL, QUERY_LEASE, Cost, Refusal, Reservation
from llamux._policy.rules import Scope, rules_from_limits
from llamux._stores import QuotaStore

from conftest import store_used

T0 = 1_767_225_600.0
FLIGHT = 240.0


def scope(key: str = "ep", concurrency: int | None = 2, **limits: int) -> Scope:
    return Scope(key, rules_from_limits(limits.items(), {}), concurrency)


def reserved(store: QuotaStore, ep: list[Scope], at: float, flight: float = FLIGHT) -> Reservation:
    made = store.reserve("ep", ep, Cost(10), at, flight)
    assert isinstance(made, Reservation), made
    return made


def test_admits_up_to_the_limit_then_refuses_with_a_poll(store: QuotaStore) -> None:
    ep = [scope(rpm=100)]
    first, second = reserved(store, ep, T0), reserved(store, ep, T0 + 1)
    assert first.leases == second.leases == ("ep",)
    refusal = store.reserve("ep", ep, Cost(10), T0 + 2, FLIGHT)
    assert isinstance(refusal, Refusal)
    assert (refusal.rule, refusal.used, refusal.limit) == ("concurrency", 2, 2)
    assert refusal.reason == "concurrency 2/2 in flight"
    assert refusal.retry_at == T0 + 2 + LEASE_POLL
    assert store_used(store, ep[0], T0 + 2) == {"rpm": 2}  # the refusal charged nothing
    assert store.in_flight(ep, T0 + 2) == {"ep": 2}


def test_settle_and_release_free_a_lease(store: QuotaStore) -> None:
    ep = [scope(rpm=100)]
    first, second = reserved(store, ep, T0), reserved(store, ep, T0)
    assert store.settle(first.id, 5, T0 + 1)
    third = reserved(store, ep, T0 + 1)
    assert isinstance(store.reserve("ep", ep, Cost(10), T0 + 1, FLIGHT), Refusal)
    assert store.release(second.id, T0 + 2)
    assert store.in_flight(ep, T0 + 2) == {"ep": 1}
    reserved(store, ep, T0 + 2)
    assert not store.release(second.id, T0 + 2)  # given back once
    assert isinstance(store.reserve("ep", ep, Cost(10), T0 + 2, FLIGHT), Refusal)
    assert store.settle(third.id, 5, T0 + 3)
    assert store.in_flight(ep, T0 + 3) == {"ep": 1}


def test_an_expired_lease_frees_by_itself(store: QuotaStore) -> None:
    ep = [scope(concurrency=1)]
    reserved(store, ep, T0, flight=30.0)  # never settled: a crashed process
    refusal = store.reserve("ep", ep, Cost(10), T0 + 29.9, 30.0)
    assert isinstance(refusal, Refusal) and refusal.retry_at == T0 + 30.0  # soonest expiry
    assert store.in_flight(ep, T0 + 30) == {"ep": 0}
    reserved(store, ep, T0 + 30, flight=30.0)


def test_a_query_lease_lasts_query_lease(store: QuotaStore) -> None:
    ep = [scope(concurrency=1)]
    reserved(store, ep, T0, flight=0.0)
    assert isinstance(store.reserve("ep", ep, Cost(10), T0 + QUERY_LEASE - 1, 0.0), Refusal)
    reserved(store, ep, T0 + QUERY_LEASE, flight=0.0)


def test_a_rate_refusal_takes_no_lease_and_a_lease_refusal_no_charge(store: QuotaStore) -> None:
    ep = [scope(rpm=1, concurrency=5)]
    first = reserved(store, ep, T0)
    refusal = store.reserve("ep", ep, Cost(10), T0 + 1, FLIGHT)
    assert isinstance(refusal, Refusal) and refusal.rule == "rpm"
    assert store.in_flight(ep, T0 + 1) == {"ep": 1}
    assert store.release(first.id, T0 + 2)
    assert store.in_flight(ep, T0 + 2) == {"ep": 0}
    pooled = [scope("ep", None, rpm=10), scope("pool:p", concurrency=1)]
    reserved(store, pooled, T0 + 3)
    refusal = store.reserve("ep", pooled, Cost(10), T0 + 4, FLIGHT)
    assert isinstance(refusal, Refusal) and refusal.scope == "pool:p"
    assert store_used(store, pooled[0], T0 + 4) == {"rpm": 1}


def test_the_next_candidate_is_tried_when_one_is_full(store: QuotaStore) -> None:
    busy, free = [scope("a", concurrency=1)], [scope("b", concurrency=1)]
    made = store.reserve("a", busy, Cost(1), T0, FLIGHT)
    assert isinstance(made, Reservation)
    pick = store.reserve_first(
        [Candidate("a", busy, Cost(1)), Candidate("b", free, Cost(1))], T0, FLIGHT
    )
    assert pick.reservation is not None and pick.reservation.endpoint == "b"
    assert [r.rule for r in pick.refusals] == ["concurrency"]


def test_randomized_never_more_in_flight_than_the_limit(store: QuotaStore) -> None:
    rng = random.Random(17)
    limit = 3
    ep = [scope(concurrency=limit)]
    held: dict[str, float] = {}  # id -> lease expiry, the model
    now = T0
    for _ in range(200):
        now += rng.choice([0.0, 0.5, 3.0])
        held = {rid: until for rid, until in held.items() if until > now}
        action = rng.random()
        if action < 0.5:
            flight = rng.choice([0.0, 5.0, 20.0])
            made = store.reserve("ep", ep, Cost(1), now, flight)
            if len(held) < limit:
                assert isinstance(made, Reservation)
                held[made.id] = now + (flight or QUERY_LEASE)
            else:
                assert isinstance(made, Refusal) and made.rule == "concurrency"
        elif held:
            rid = rng.choice(sorted(held))
            done = store.settle(rid, 1, now) if action < 0.75 else store.release(rid, now)
            assert done
            del held[rid]
        assert store.in_flight(ep, now) == {"ep": len(held)}
