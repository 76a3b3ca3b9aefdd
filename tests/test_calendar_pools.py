"""Calendar windows (DST included) and shared pools, through the router."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamux import NoEndpointAvailable, Router
from llamux.testing import FakeClock

from conftest import HI, la


@pytest.fixture
def gemini(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Router, FakeClock]:
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    path = tmp_path / "t.csv"
    path.write_text("provider,model,rpm,rpd\ngemini,gemini-2.5-flash,5,2\n")
    clock = FakeClock(la(2026, 3, 7, 23, 0))
    return Router.from_csv(path, store="memory://", clock=clock), clock


def test_gemini_days_reset_at_midnight_los_angeles_across_dst(
    gemini: tuple[Router, FakeClock],
) -> None:
    router, clock = gemini
    assert router.endpoints[0].reset_for("rpd") == "America/Los_Angeles"
    router.query(HI, max_tokens=1)
    router.query(HI, max_tokens=1)
    with pytest.raises(NoEndpointAvailable) as caught:
        router.query(HI, max_tokens=1)
    assert caught.value.retry_after == pytest.approx(3600)  # midnight, one hour away
    clock.set(la(2026, 3, 8, 0, 0))  # spring forward: this day has 23 hours
    router.query(HI, max_tokens=1)
    clock.advance(120)
    router.query(HI, max_tokens=1)
    with pytest.raises(NoEndpointAvailable) as caught:
        router.query(HI, max_tokens=1)
    retry = caught.value.retry_after
    assert retry is not None and clock.now() + retry == la(2026, 3, 9, 0, 0)
    assert la(2026, 3, 9) - la(2026, 3, 8) == 23 * 3600
    clock.set(la(2026, 3, 9, 0, 0))
    assert router.query(HI, max_tokens=1)[0] == "gemini"


def test_fall_back_day_has_25_hours(gemini: tuple[Router, FakeClock]) -> None:
    router, clock = gemini
    clock.set(la(2026, 11, 1, 0, 30))
    router.query(HI, max_tokens=1)
    clock.advance(60)
    router.query(HI, max_tokens=1)
    with pytest.raises(NoEndpointAvailable) as caught:
        router.query(HI, max_tokens=1)
    assert caught.value.retry_after is not None
    assert clock.now() + caught.value.retry_after == la(2026, 11, 2)
    assert la(2026, 11, 2) - la(2026, 11, 1) == 25 * 3600


def test_a_pool_is_charged_atomically_with_its_endpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "k")
    path = tmp_path / "llamux.toml"
    path.write_text(
        """
[[endpoints]]
provider = "openrouter"
model = "a:free"
rpm = 10
pool = "free"

[[endpoints]]
provider = "openrouter"
model = "b:free"
rpm = 10
pool = "free"

[pools.free]
rpm = 3
"""
    )
    router = Router.from_config(path, store="memory://", clock=FakeClock())
    served = [router.query(HI, max_tokens=1)[1] for _ in range(3)]
    assert served == ["a:free", "a:free", "a:free"]
    with pytest.raises(NoEndpointAvailable) as caught:
        router.query(HI, max_tokens=1)
    assert {r.scope for r in caught.value.refusals} == {"pool:free"}
    # the refusal charged nothing: each endpoint still shows only its own requests
    used = {
        s.endpoint.id: [("own" if u.scope == s.quota else u.scope, u.used) for u in s.usage]
        for s in router.status()
    }
    assert used == {
        "openrouter:a:free": [("own", 3), ("pool:free", 3)],
        "openrouter:b:free": [("own", 0), ("pool:free", 3)],
    }


def test_the_catalog_pool_for_openrouter_free_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "k")
    path = tmp_path / "t.csv"
    path.write_text(
        "provider,model,pool\n"
        "openrouter,x:free,openrouter-free\n"
        "openrouter,y:free,openrouter-free\n"
    )
    router = Router.from_csv(path, store="memory://", clock=FakeClock())
    count = 0
    with pytest.raises(NoEndpointAvailable):
        for count in range(100):  # noqa: B007
            router.query(HI, max_tokens=1)
    assert count == 20  # 20 requests per minute across every :free model
