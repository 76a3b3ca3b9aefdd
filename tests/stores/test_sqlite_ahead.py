"""Requests reserved ahead (``sqlite_ahead``): a call far from its limits reserves the next
few calls' quota in its step; they take it without a step of their own; every step gives
back what is left; nothing is ever admitted past a limit, whichever process asks."""

from __future__ import annotations

import time
from pathlib import Path

from llamux._engine.walk import Walk
from llamux._policy.passing import Candidate, Pick
from llamux._policy.quota import Cost
from llamux._policy.rules import Scope, rules_from_limits
from llamux._stores.sqlite import SQLiteStore
from llamux._stores.sqlite_ahead import UNITS

from conftest import store_used

T0 = 1_767_225_600.0
WIDE = (Scope("ep", rules_from_limits([("rpm", 10_000), ("tpm", 10_000_000)], {})),)
FLIGHT = 120.0


def call(store: SQLiteStore, scopes: tuple[Scope, ...] = WIDE, tokens: int = 40) -> Pick:
    """A decision as the router makes it for a call (its walk over one candidate)."""
    first = Candidate(scopes[0].key, scopes, Cost(tokens))
    return store.reserve_first(Walk(first, iter(()), None, set()), T0, FLIGHT)


def steps(store: SQLiteStore) -> list[str]:
    said: list[str] = []
    store._db.conn().set_trace_callback(said.append)
    return said


def test_calls_far_from_their_limits_take_reserved_units_without_a_step(
    tmp_path: Path, patient: None
) -> None:
    mine, other = SQLiteStore(tmp_path / "q.db"), SQLiteStore(tmp_path / "q.db")
    said = steps(mine)
    assert call(mine).reservation is not None
    assert said.count("BEGIN IMMEDIATE") == 1
    assert store_used(other, WIDE[0], T0)["rpm"] == 1 + UNITS  # counted for every process
    for _ in range(UNITS):
        assert call(mine).reservation is not None
    assert said.count("BEGIN IMMEDIATE") == 1  # no step of their own
    assert call(mine).reservation is not None  # used up: a step, and a new lease
    assert said.count("BEGIN IMMEDIATE") == 2
    mine.close()
    other.close()


def test_every_step_gives_back_what_is_left(tmp_path: Path, patient: None) -> None:
    mine, other = SQLiteStore(tmp_path / "q.db"), SQLiteStore(tmp_path / "q.db")
    first, second = call(mine).reservation, call(mine).reservation
    assert first is not None and second is not None
    assert mine.settle(second.id, 10, T0 + 1)
    assert store_used(mine, WIDE[0], T0 + 1) == {"rpm": 2, "tpm": 50}  # a read is a step
    assert store_used(other, WIDE[0], T0 + 1) == {"rpm": 2, "tpm": 50}
    mine.close()
    other.close()


def test_near_a_limit_nothing_is_reserved_ahead(tmp_path: Path, patient: None) -> None:
    tight = (Scope("ep", rules_from_limits([("rpm", 20)], {})),)
    mine, other = SQLiteStore(tmp_path / "q.db"), SQLiteStore(tmp_path / "q.db")
    assert call(mine, tight).reservation is not None
    assert store_used(other, tight[0], T0)["rpm"] == 1
    mine.close()
    other.close()


def test_a_lease_serves_only_calls_of_its_cost_and_scopes(tmp_path: Path, patient: None) -> None:
    mine = SQLiteStore(tmp_path / "q.db")
    said = steps(mine)
    call(mine, tokens=40)
    call(mine, tokens=50)  # another estimate: a step of its own
    relearned = (Scope("ep", WIDE[0].rules),)  # limits learned since make new scopes
    call(mine, relearned, tokens=50)
    assert said.count("BEGIN IMMEDIATE") == 3
    assert store_used(mine, WIDE[0], T0) == {"rpm": 3, "tpm": 140}
    mine.close()


def test_a_cool_down_ends_the_lease(tmp_path: Path, patient: None) -> None:
    mine = SQLiteStore(tmp_path / "q.db")
    assert call(mine).reservation is not None
    mine.cool_down("ep", T0 + 60, "429 from the provider", "cooldown", T0)
    refused = call(mine)
    assert refused.reservation is None and refused.refusals[0].retry_at == T0 + 60
    assert store_used(mine, WIDE[0], T0)["rpm"] == 1
    mine.close()


def test_the_flusher_gives_back_what_an_idle_process_reserved(tmp_path: Path) -> None:
    mine, other = SQLiteStore(tmp_path / "q.db"), SQLiteStore(tmp_path / "q.db")
    assert call(mine).reservation is not None
    deadline = time.monotonic() + 10
    while store_used(other, WIDE[0], T0)["rpm"] != 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert store_used(other, WIDE[0], T0)["rpm"] == 1
    mine.close()
    other.close()


def test_reserving_ahead_never_admits_past_a_limit(tmp_path: Path, patient: None) -> None:
    """Two processes' stores taking turns, each reserving ahead while far from the limit,
    admit exactly the limit together, and the file counts exactly that."""
    limit = 200
    scopes = (Scope("ep", rules_from_limits([("rpm", limit), ("tpm", 10_000_000)], {})),)
    stores = [SQLiteStore(tmp_path / "q.db"), SQLiteStore(tmp_path / "q.db")]
    admitted, refused_in_a_row = 0, 0
    for turn in range(10 * limit):
        if refused_in_a_row >= 4:  # each store refused twice, after a step of its own
            break
        if call(stores[turn % 2], scopes).reservation is None:
            refused_in_a_row += 1
        else:
            admitted, refused_in_a_row = admitted + 1, 0
    assert admitted == limit
    assert store_used(stores[0], scopes[0], T0)["rpm"] == limit
    for store in stores:
        store.close()


def test_a_forked_child_never_takes_or_gives_back_its_parent_s_units(
    tmp_path: Path, patient: None
) -> None:
    import os

    mine, other = SQLiteStore(tmp_path / "q.db"), SQLiteStore(tmp_path / "q.db")
    assert call(mine).reservation is not None  # 1 + UNITS counted
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        code = 0
        try:
            steps_seen = steps(mine)
            assert call(mine).reservation is not None
            assert steps_seen.count("BEGIN IMMEDIATE") == 1  # a step: not the parent's unit
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # the child's call and its own lease (it exited without closing) beside the parent's
    assert store_used(other, WIDE[0], T0)["rpm"] >= 2 + UNITS
    mine.close()
    other.close()
