"""The bucketed stores held against an exact sliding-log model.

Safety: every admission leaves every interval of a window's length at or under the limit.
Liveness: a refusal happens only when the exact log, with the window stretched by one bucket
plus the latency margin, would refuse too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llamux._quota import LATENCY_MARGIN, Cost, Reservation, Scope, rules_from_limits
from llamux._stores import QuotaStore
from llamux._stores.memory import MemoryStore
from llamux._stores.sqlite import SQLiteStore

T0 = 1_767_225_600.0
LIMITS = {"rpm": 5, "tpm": 400, "rph": 40}
WINDOW = {"rpm": 60, "tpm": 60, "rph": 3600}
BUCKET = {"rpm": 1, "tpm": 1, "rph": 60}

steps = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=40, allow_nan=False),  # time advance
        st.integers(min_value=0, max_value=150),  # estimated tokens
        # settled tokens as a fraction of the estimate: a conservative estimate settles lower
        st.one_of(st.none(), st.floats(min_value=0, max_value=1)),
    ),
    min_size=1,
    max_size=120,
)


def _exact(log: list[tuple[float, int]], name: str, start: float, end: float) -> int:
    index = 0 if name.startswith("r") else 1
    return sum(1 if index == 0 else tokens for t, tokens in log if start < t <= end)


def _run(store: QuotaStore, plan: list[tuple[float, int, float | None]]) -> None:
    scope = Scope("ep", rules_from_limits(LIMITS.items(), {}))
    now = T0
    log: list[tuple[float, int]] = []  # (time, tokens charged) of admitted requests
    for advance, estimate, settled in plan:
        now += advance
        outcome = store.reserve("ep", [scope], Cost(estimate), now)
        if isinstance(outcome, Reservation):
            log.append((now, estimate))
            if settled is not None:
                actual = int(estimate * settled)
                store.settle(outcome.id, actual, now)
                log[-1] = (now, actual)
            for name, limit in LIMITS.items():  # safety, in the exact window ending now
                assert _exact(log, name, now - WINDOW[name], now) <= limit, name
        else:
            name = outcome.rule
            assert name is not None
            wanted = 1 if name.startswith("r") else estimate
            stretch = WINDOW[name] + BUCKET[name] + LATENCY_MARGIN
            assert _exact(log, name, now - stretch, now) + wanted > LIMITS[name], (
                f"refused by {name} although the stretched exact window admits"
            )
            if outcome.retry_at is not None:
                assert outcome.retry_at > now


@settings(max_examples=300, deadline=None)
@given(steps)
def test_memory_store_matches_the_sliding_log(plan: list[tuple[float, int, float | None]]) -> None:
    _run(MemoryStore(), plan)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_sqlite_store_matches_the_sliding_log(plan: list[tuple[float, int, float | None]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "q.db")
        try:
            _run(store, plan)
        finally:
            store.close()
