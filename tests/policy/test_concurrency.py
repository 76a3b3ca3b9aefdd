"""Sizing a batch: Little's law over the endpoints, bounded."""

from __future__ import annotations

from llamux._policy.concurrency import Lane, concurrency, per_minute


def test_concurrency_is_littles_law_bounded() -> None:
    assert concurrency([Lane(60, 1.0)]) == 3  # 1/s x 1 s x 2 + 1
    assert concurrency([Lane(600, 2.0), Lane(None)]) == 40 + 1 + 8
    assert concurrency([Lane(6000, 10.0)]) == 64
    assert concurrency([Lane(30, 0.001)], speed=100) == 2
    assert concurrency([]) == 1
    assert per_minute([("requests", 30), ("tokens", 6000), ("requests", 1000)]) == 30
    assert per_minute([("tokens", 10)]) is None
