"""A fault matrix against the fake provider: every fault is served elsewhere or raised as a
clear ProviderError, and the quota accounting stays exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamux import NoEndpointAvailable, ProviderError, Router, served_by
from llamux._policy.feedback import RATE_LIMIT_COOLDOWN, TRANSIENT_COOLDOWN
from llamux.testing import CUT, DROP, FakeClock, FakeProvider

from conftest import KEY, cooling_of, fake_table, used

HELLO = [{"role": "user", "content": "hello there"}]


def make(fake: FakeProvider, tmp_path: Path, clock: FakeClock, **kw: object) -> Router:
    path = tmp_path / "t.md"
    path.write_text(fake_table(fake, [("a", "100 | 100000 |"), ("b", "100 | 100000 |")]))
    return Router.from_csv(path, store=f"sqlite:///{tmp_path}/q.db", clock=clock, **kw)  # type: ignore[arg-type]


# fault on "a" -> (how "a" is charged afterwards, its cool-down in seconds)
# charged: "released" (never reached), "request" (the request counts, no tokens),
#          "estimate" (it may have been processed and billed: the estimate stays)
MATRIX = [
    ("429 with retry-after", {"status": 429, "headers": {"retry-after": "7"}}, "request", 7),
    ("429 without headers", {"status": 429}, "request", RATE_LIMIT_COOLDOWN),
    ("500", {"status": 500}, "estimate", TRANSIENT_COOLDOWN),
    ("502", {"status": 502}, "estimate", TRANSIENT_COOLDOWN),
    ("503", {"status": 503}, "estimate", TRANSIENT_COOLDOWN),
    ("connection reset", {"status": DROP}, "estimate", TRANSIENT_COOLDOWN),
    ("invalid JSON", {"status": 200, "body": "{not json"}, "estimate", TRANSIENT_COOLDOWN),
    ("empty body", {"status": 200, "body": ""}, "estimate", TRANSIENT_COOLDOWN),
    ("cut mid-way", {"status": CUT}, "estimate", TRANSIENT_COOLDOWN),
]


@pytest.mark.parametrize(("fault", "inject", "charged", "rest"), MATRIX, ids=[m[0] for m in MATRIX])
def test_each_fault_is_served_elsewhere_and_accounted_exactly(
    fake: FakeProvider,
    tmp_path: Path,
    keys: str,
    fault: str,
    inject: dict[str, object],
    charged: str,
    rest: float,
) -> None:
    clock = FakeClock()
    fake.inject("a", **inject)  # type: ignore[arg-type]
    with make(fake, tmp_path, clock) as router:
        response = router.completion(HELLO, max_tokens=20)
        served = served_by(response)
        assert served is not None and served.endpoint == "b"
        failed = served.attempts[0]
        assert failed.endpoint == "a" and failed.outcome == "failed"
        assert KEY not in failed.reason
        # b: exactly what the provider counted
        assert used(router, 1) == {"rpm": 1, "tpm": fake.stats("b").total_tokens}
        # a: as the fault's class says
        expected = {
            "released": {"rpm": 0, "tpm": 0},
            "request": {"rpm": 1, "tpm": 0},
            "estimate": {"rpm": 1, "tpm": served.estimated_tokens},
        }[charged]
        assert used(router, 0) == expected
        cooling = cooling_of(router, "a")
        assert cooling.until - clock.now() == pytest.approx(rest)
        assert router.store.stats()["reservations"] == 0  # type: ignore[attr-defined]


def test_timeout_then_served_elsewhere(fake: FakeProvider, tmp_path: Path, keys: str) -> None:
    fake.set_delay("a", 2.0)
    with make(fake, tmp_path, FakeClock(), timeout=0.3) as router:
        served = served_by(router.completion(HELLO, max_tokens=20))
        assert served is not None and served.endpoint == "b"
        assert "did not answer in time" in served.attempts[0].reason
        assert used(router, 0) == {"rpm": 1, "tpm": served.estimated_tokens}


def test_slow_stream_past_the_timeout_fails_over_before_its_first_chunk(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    fake.set_delay("a", 2.0)
    with make(fake, tmp_path, FakeClock(), timeout=0.3) as router:
        stream = router.completion(HELLO, stream=True, max_tokens=20)
        text = "".join(c.choices[0].delta.content or "" for c in stream)
        assert text and served_by(stream).endpoint == "b"  # type: ignore[union-attr]
        assert used(router, 1)["tpm"] == fake.stats("b").total_tokens


def test_stream_cut_mid_way_is_a_clear_error_and_not_resent(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    fake.inject("a", CUT)
    with make(fake, tmp_path, FakeClock()) as router:
        stream = router.completion(HELLO, stream=True, max_tokens=20)
        with pytest.raises(ProviderError, match="endpoint a") as caught:
            list(stream)
        assert caught.value.accepted
        assert fake.stats("b").served == 0
        assert used(router, 0) == {"rpm": 1, "tpm": served_by(stream).estimated_tokens}  # type: ignore[union-attr]


def test_every_endpoint_failing_ends_in_no_endpoint_available(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    fake.inject("a", 500)
    fake.inject("b", 503)
    with make(fake, tmp_path, FakeClock()) as router:
        with pytest.raises(NoEndpointAvailable, match=r"HTTP 500.*HTTP 503") as caught:
            router.completion(HELLO)
        assert caught.value.retry_after == TRANSIENT_COOLDOWN  # when the first rest ends
