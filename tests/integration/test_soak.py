"""Soak: mixed traffic over simulated days; memory and state size stay flat.

The default run lasts a few seconds of real time (about two simulated days of traffic);
``LLAMUX_SOAK_SECONDS=600 pytest tests/integration/test_soak.py`` runs the long form.
"""

from __future__ import annotations

import os
import random
import time
import tracemalloc
from pathlib import Path

import pytest

from llamux import NoEndpointAvailable, ProviderError, Router
from llamux.testing import FakeClock, FakeEndpoint, FakeProvider

from conftest import fake_table

SECONDS = float(os.environ.get("LLAMUX_SOAK_SECONDS", "4"))
HELLO = [{"role": "user", "content": "soak " * 20}]


def one_request(router: Router, fake: FakeProvider, rng: random.Random) -> None:
    kind = rng.random()
    try:
        if kind < 0.05:
            fake.inject(rng.choice("ab"), rng.choice([500, 429, 0]))
        if kind < 0.45:
            router.completion(HELLO, max_tokens=rng.randint(5, 50))
        elif kind < 0.75:
            for _ in router.completion(HELLO, stream=True, max_tokens=20):
                pass
        elif kind < 0.9:
            _, _, _, props = router.query(HELLO, max_tokens=30)
            router.settle(props["reservation"], rng.randint(1, 60))
        else:
            router.query(HELLO, max_tokens=30)  # never settled: swept after a day
    except (NoEndpointAvailable, ProviderError):
        pass


@pytest.mark.slow
def test_memory_and_state_stay_flat(tmp_path: Path, keys: str) -> None:
    rng = random.Random(5)
    clock = FakeClock()
    with FakeProvider([FakeEndpoint("a"), FakeEndpoint("b"), FakeEndpoint("c")]) as fake:
        path = tmp_path / "t.md"
        rows = [("a", "40 | 8000 | 3000"), ("b", "20 | 4000 | 2000"), ("c", "| |")]
        path.write_text(fake_table(fake, rows))
        with Router.from_csv(path, store=f"sqlite:///{tmp_path}/q.db", clock=clock) as router:
            tracemalloc.start()
            samples: list[tuple[int, int, int]] = []  # (bytes, buckets, reservations)
            deadline = time.monotonic() + SECONDS
            while time.monotonic() < deadline:
                for _ in range(50):
                    one_request(router, fake, rng)
                    clock.advance(rng.choice([0.2, 1.0, 60.0, 900.0, 3600.0]))
                stats = router.store.stats()  # type: ignore[attr-defined]
                current, _ = tracemalloc.get_traced_memory()
                samples.append((current, stats["buckets"], stats["reservations"]))
            tracemalloc.stop()
    simulated_days = (clock.now() - FakeClock().now()) / 86400
    assert simulated_days > 1.5, "the run must cross several day windows"
    half = len(samples) // 2
    first, second = samples[:half], samples[half:]
    # memory: the second half never grows past the first half's peak by more than a little
    assert max(s[0] for s in second) <= max(s[0] for s in first) * 1.25 + 512 * 1024
    # state: bounded by endpoints (3 endpoints x (61 minute + 61 hour + 97 day) buckets)
    assert max(s[1] for s in samples) <= 3 * (61 + 61 + 97)
    # unsettled reservations are swept after a day: no more than a day's worth remain
    assert max(s[2] for s in second) <= max(s[2] for s in first) * 1.5 + 50
