"""A ``query``-only user's state stays bounded: unsettled reservations are dropped at their
settle deadline or past a per-endpoint cap, their estimates staying counted, and a late
settle says so once."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from llamux import Router
from llamux._config.load import parse_table
from llamux._policy.quota import SETTLE_DEADLINE, UNSETTLED_KEPT
from llamux._stores.memory import MemoryStore
from llamux._stores.sqlite import CAP_EVERY, SQLiteStore
from llamux.testing import FakeClock

from conftest import HI, used

TABLE = """\
| provider | model | base_url              | api_key_env | rpd     | tpd        |
| -------- | ----- | --------------------- | ----------- | ------- | ---------- |
| a        | m     | http://127.0.0.1:9/v1 | BOUND_KEY   | 1000000 | 1000000000 |
"""


@pytest.fixture(params=["memory", "sqlite"])
def router(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Router:
    monkeypatch.setenv("BOUND_KEY", "sk-test")
    store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "q.db")
    return Router(parse_table(TABLE), store=store, clock=FakeClock())


def test_never_settled_queries_leave_bounded_state(router: Router) -> None:
    clock = router.clock
    assert isinstance(clock, FakeClock)
    ids = []
    for _ in range(UNSETTLED_KEPT * 3):
        clock.advance(0.01)  # 30 s in all: well inside the deadline; the cap bounds it
        ids.append(router.query(HI)[3]["reservation"])
    store = router.store
    assert isinstance(store, (MemoryStore, SQLiteStore))
    assert store.stats()["reservations"] <= UNSETTLED_KEPT + CAP_EVERY
    assert used(router)["rpd"] == UNSETTLED_KEPT * 3  # every estimate still counts
    assert router.settle(ids[-1], 7)
    clock.advance(SETTLE_DEADLINE + 61)
    router.query(HI)
    assert store.stats()["reservations"] <= 1  # the rest swept at the deadline


def test_a_late_settle_returns_false_and_warns_once(
    router: Router, caplog: pytest.LogCaptureFixture
) -> None:
    clock = router.clock
    assert isinstance(clock, FakeClock)
    first, second, third = (router.query(HI)[3]["reservation"] for _ in range(3))
    tokens = used(router)["tpd"]
    clock.advance(SETTLE_DEADLINE - 1)
    with caplog.at_level(logging.WARNING, logger="llamux"):
        assert router.settle(first, 1)
        clock.advance(2)
        assert not router.settle(second, 1)
        assert not router.release(third)
    assert used(router)["tpd"] == tokens - (tokens // 3 - 1)  # only the first was corrected
    said = [r.getMessage() for r in caplog.records if "no such reservation" in r.getMessage()]
    assert len(said) == 1
    assert f"{SETTLE_DEADLINE:.0f} s" in said[0]
