"""Malformed request parameters: a clear InvalidRequest before anything is reserved."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from llamux import InvalidRequest, Router
from llamux._policy.quota import Cost, Reservation
from llamux._policy.rules import Scope, rules_from_limits
from llamux._stores.sqlite import SQLiteStore
from llamux.testing import FakeEndpoint, FakeProvider

from conftest import HI, fake_router, used


@pytest.mark.parametrize(
    ("params", "phrase"),
    [
        ({"max_tokens": -100_000}, "max_tokens must be a whole number >= 1"),
        ({"max_tokens": 0}, "max_tokens must be a whole number >= 1"),
        ({"max_tokens": "lots"}, "max_tokens must be a whole number >= 1"),
        ({"max_tokens": True}, "max_tokens must be a whole number >= 1"),
        ({"max_completion_tokens": 2.5}, "max_completion_tokens must be"),
        ({"n": "two"}, "n must be a whole number"),
        ({"wait": "soon"}, "wait must be a number of seconds >= 0"),
        ({"wait": -1}, "wait must be a number of seconds >= 0"),
        ({"model": ["a"]}, "model must be a string"),
        ({"stream": True, "stream_options": "yes"}, "stream_options must be an object"),
    ],
)
def test_malformed_parameters_reserve_nothing(
    seed: Router, params: dict[str, object], phrase: str
) -> None:
    with pytest.raises(InvalidRequest, match=phrase):
        seed.query(HI, **params)
    assert used(seed)["rpm"] == 0 and used(seed)["tpm"] == 0


def test_a_negative_cost_is_never_admitted() -> None:
    with pytest.raises(ValueError, match="never negative"):
        Cost(-5)


def test_parameters_the_sdk_refuses_give_the_reservation_back(tmp_path: Path, keys: str) -> None:
    with (
        FakeProvider([FakeEndpoint("a")]) as fake,
        fake_router(fake, tmp_path, [("a", "2 | 10000 |")]) as router,
    ):
        for _ in range(3):
            with pytest.raises(InvalidRequest, match="frobnicate"):
                router.completion(HI, max_tokens=5, frobnicate=1)
        assert used(router) == {"rpm": 0, "tpm": 0}
        assert fake.stats("a").served == 0
        router.completion(HI, max_tokens=5)  # the quota is intact


def test_an_in_memory_sqlite_store_is_one_database_for_all_threads() -> None:
    store = SQLiteStore(":memory:")
    scope = Scope("ep", rules_from_limits([("rpm", 1)], {}))
    outcomes: list[object] = []

    def worker() -> None:
        outcomes.append(store.reserve("ep", [scope], Cost(1), 1000.0))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    admitted = [o for o in outcomes if isinstance(o, Reservation)]
    assert len(admitted) == 1
    assert store.settle(admitted[0].id, 1, 1000.0)  # from another thread than the reserve
    store.close()
