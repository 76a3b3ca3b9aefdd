"""Two connections to one SQLite file decide exactly as one store does, whatever the order in
which they write: each connection's mirror (``sqlite_mirror``) is dropped whenever the other
wrote, and applies its own writes as the SQL does. Held against the memory store fed the
same steps, decision by decision. (A settle a connection holds for its next step,
``sqlite_later``, is written before the other connection's steps here: until then the other
counts the estimate, more than one store would.)"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llamux._policy.quota import Cost, Refusal, Reservation
from llamux._policy.rules import Scope, rules_from_limits
from llamux._stores.memory import MemoryStore
from llamux._stores.sqlite import SQLiteStore

T0 = 1_767_225_600.0
EP = Scope("ep", rules_from_limits([("rpm", 4), ("tpm", 300), ("rph", 12)], {}))
OTHER = Scope("other", rules_from_limits([("rpm", 3)], {}))
POOL = Scope("pool:p", rules_from_limits([("rpm", 5), ("tpm", 400)], {}))
ENDPOINTS = {"ep": [EP, POOL], "other": [OTHER, POOL]}

STEP = st.one_of(
    st.tuples(
        st.just("reserve"),
        st.sampled_from(["ep", "other"]),
        st.integers(0, 1),  # which connection
        st.sampled_from([0.0, 60.0]),  # query, or in flight
        st.integers(1, 160),
    ),
    st.tuples(st.just("settle"), st.integers(0, 30), st.integers(0, 1), st.integers(0, 200)),
    st.tuples(st.just("release"), st.integers(0, 30), st.integers(0, 1)),
    st.tuples(st.just("cool"), st.sampled_from(["ep", "other"]), st.integers(0, 1)),
    st.tuples(st.just("absorb"), st.integers(0, 1), st.integers(0, 2), st.integers(0, 100)),
    st.tuples(st.just("wait"), st.sampled_from([0.3, 1.0, 7.0, 31.0, 61.0])),
)


def outcome(made: Reservation | Refusal) -> tuple[object, ...]:
    if isinstance(made, Reservation):
        return ("admitted", made.remaining)
    return ("refused", made.scope, made.rule, made.used, made.limit, made.retry_at)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, min_size=5, max_size=60))
def test_two_connections_decide_as_one_store(steps: list[tuple[Any, ...]]) -> None:
    path = Path(tempfile.mkdtemp()) / "q.db"
    files = [SQLiteStore(path), SQLiteStore(path)]
    model = MemoryStore()
    now = T0
    made: list[tuple[str, int, float, str]] = []  # model id, connection, flight, file id
    try:
        for step in steps:
            kind = step[0]
            for store in files:
                store._flush_held()
            if kind == "wait":
                now += float(step[1])
            elif kind == "reserve":
                _, endpoint, which, flight, tokens = step
                scopes = ENDPOINTS[str(endpoint)]
                cost = Cost(int(tokens))
                here = files[int(which)].reserve(str(endpoint), scopes, cost, now, float(flight))
                there = model.reserve(str(endpoint), scopes, cost, now, float(flight))
                assert outcome(here) == outcome(there), step
                if isinstance(here, Reservation) and isinstance(there, Reservation):
                    made.append((there.id, int(which), float(flight), here.id))
            elif kind in ("settle", "release") and made:
                model_id, owner, flight, file_id = made[int(step[1]) % len(made)]
                # a reservation held in flight is settled by the process that made it
                which = owner if flight > 0 else int(step[2])
                if kind == "settle":
                    tokens = int(step[3])
                    got = files[which].settle(file_id, tokens, now)
                    assert got == model.settle(model_id, tokens, now), step
                else:
                    got = files[which].release(file_id, now)
                    assert got == model.release(model_id, now), step
            elif kind == "cool":
                _, endpoint, which = step
                files[int(which)].cool_down(str(endpoint), now + 20, "test", "cooldown", now)
                model.cool_down(str(endpoint), now + 20, "test", "cooldown", now)
            elif kind == "absorb":
                _, which, scope_index, tokens = step
                scope = [EP, OTHER, POOL][int(scope_index)]
                files[int(which)].absorb(scope.key, "minute", 1, int(tokens), now)
                model.absorb(scope.key, "minute", 1, int(tokens), now)
    finally:
        for store in files:
            store.close()
