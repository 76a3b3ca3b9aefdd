"""The router learning from each provider dialect, against the fake provider on one clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamux import Router, served_by
from llamux.testing import FakeClock, FakeEndpoint, FakeProvider

from conftest import HI, KEY, LA, cooling_of, midnight_after, status_of, utc

T0 = utc(2026, 6, 15, 12)


def two_endpoint_router(
    fake: FakeProvider, tmp_path: Path, provider: str, limits: str, clock: FakeClock
) -> Router:
    """Endpoint 'x' of the given catalog provider (its dialect and reset defaults) served by
    the fake, with the configured limits; endpoint 'spare' takes what x cannot."""
    table = (
        "| name | provider | model | base_url | api_key_env | rpm | rpd |\n"
        "|---|---|---|---|---|---|---|\n"
        f"| x | {provider} | m | {fake.base_url('x')} | FAKE_API_KEY | {limits} |\n"
        f"| spare | fake | m | {fake.base_url('spare')} | FAKE_API_KEY | | |\n"
    )
    path = tmp_path / "t.md"
    path.write_text(table)
    return Router.from_csv(path, store="memory://", clock=clock)


CASES = [
    # provider/dialect, the fake's real (stricter) limits, configured limits, rest kind, rest length
    ("openai", {"rpm": 2}, "30 | ", "cooldown", (55, 61)),
    ("anthropic", {"rpm": 2}, "30 | ", "cooldown", (55, 61)),
    ("sambanova", {"rpm": 2}, "30 | ", "cooldown", (55, 62)),
    ("mistral", {"rpm": 2}, "30 | ", "cooldown", (59, 61)),  # no reset header: a window
    ("groq", {"rpd": 2}, "30 | 1000", "parked", (86000, 86401)),  # requests headers are per day
    ("cerebras", {"rpd": 2}, "30 | 1000", "parked", (86000, 86401)),
]


@pytest.mark.parametrize(("provider", "real", "configured", "kind", "rest"), CASES)
def test_headers_stop_traffic_before_any_429(
    tmp_path: Path,
    keys: str,
    provider: str,
    real: dict[str, int],
    configured: str,
    kind: str,
    rest: tuple[float, float],
) -> None:
    clock = FakeClock(T0)
    endpoints = [FakeEndpoint("x", dialect=provider, **real), FakeEndpoint("spare")]  # type: ignore[arg-type]
    with FakeProvider(endpoints, clock=clock.now) as fake:
        router = two_endpoint_router(fake, tmp_path, provider, configured, clock)
        served = [served_by(router.completion(HI)).endpoint for _ in range(5)]  # type: ignore[union-attr]
        assert served == ["x", "x", "spare", "spare", "spare"]
        assert fake.stats("x").refused == 0
        # x takes nothing until the provider frees it: it rests (a cool-down, or parked), or
        # llamux took the provider's count as its own and its rule is full until then
        row = status_of(router, "x")
        if row.cooldown is not None:
            assert row.cooldown.kind == kind
            until = row.cooldown.until
        else:
            until = max(u.next_free_at or 0 for u in row.usage if u.remaining == 0)
        slack = 900 if kind == "parked" else 1  # one bucket of the day, or of the minute
        assert rest[0] <= until - clock.now() <= rest[1] + slack
        router.close()


def test_headers_that_report_fewer_left_are_absorbed(tmp_path: Path, keys: str) -> None:
    clock = FakeClock(T0)
    with FakeProvider([FakeEndpoint("x", rpm=10), FakeEndpoint("spare")], clock=clock.now) as fake:
        router = two_endpoint_router(fake, tmp_path, "openai", "30 | ", clock)
        router.completion(HI)
        rpm = next(u for u in router.status()[0].usage if u.rule.name == "rpm")
        assert rpm.remaining == 9  # llamux believed 29; the provider said 9
        served = [served_by(router.completion(HI)).endpoint for _ in range(10)]  # type: ignore[union-attr]
        assert served == ["x"] * 9 + ["spare"]
        assert fake.stats("x").refused == 0
        router.close()


def test_gemini_per_day_429_parks_until_midnight_in_los_angeles(tmp_path: Path, keys: str) -> None:
    clock = FakeClock(T0)
    endpoints = [
        FakeEndpoint("x", dialect="gemini", rpd=2, day_reset=LA),
        FakeEndpoint("spare"),
    ]
    with FakeProvider(endpoints, clock=clock.now) as fake:
        router = two_endpoint_router(fake, tmp_path, "gemini", "30 | 1000", clock)
        assert router.endpoints[0].reset_for("rpd") == LA  # catalog default
        served = [served_by(router.completion(HI)).endpoint for _ in range(5)]  # type: ignore[union-attr]
        assert served == ["x", "x", "spare", "spare", "spare"]
        assert fake.stats("x").refused == 1  # Gemini sends no headers: one 429 to learn
        cooling = cooling_of(router, "x")
        assert cooling.kind == "parked" and "day" in cooling.reason
        assert cooling.until == midnight_after(clock.now(), LA)
        clock.set(cooling.until)
        assert served_by(router.completion(HI)).endpoint == "x"  # type: ignore[union-attr]
        router.close()


def test_gemini_per_minute_429_cools_down_for_its_retry_delay(tmp_path: Path, keys: str) -> None:
    clock = FakeClock(T0)
    endpoints = [FakeEndpoint("x", dialect="gemini", rpm=2), FakeEndpoint("spare")]
    with FakeProvider(endpoints, clock=clock.now) as fake:
        router = two_endpoint_router(fake, tmp_path, "gemini", "30 | ", clock)
        served = [served_by(router.completion(HI)).endpoint for _ in range(4)]  # type: ignore[union-attr]
        assert served == ["x", "x", "spare", "spare"]
        cooling = cooling_of(router, "x")
        assert cooling.kind == "cooldown" and 55 <= cooling.until - clock.now() <= 61
        router.close()


def test_openrouter_per_day_429_parks_until_utc_midnight(tmp_path: Path, keys: str) -> None:
    clock = FakeClock(T0)
    endpoints = [
        FakeEndpoint("x", dialect="openrouter", rpd=2, day_reset="UTC"),
        FakeEndpoint("spare"),
    ]
    with FakeProvider(endpoints, clock=clock.now) as fake:
        router = two_endpoint_router(fake, tmp_path, "openrouter", "20 | 50", clock)
        served = [served_by(router.completion(HI)).endpoint for _ in range(4)]  # type: ignore[union-attr]
        assert served == ["x", "x", "spare", "spare"]
        assert fake.stats("x").refused == 0  # its headers said 0 left until midnight
        # a reset at UTC midnight reads as the day's window: x rests (parked) until then, or
        # llamux took the provider's count as its own and its calendar day is full until then
        row = status_of(router, "x")
        if row.cooldown is not None:
            assert row.cooldown.kind == "parked"
            until = row.cooldown.until
        else:
            until = max(u.next_free_at or 0 for u in row.usage if u.remaining == 0)
        assert until == T0 + 12 * 3600  # 2026-06-16T00:00:00Z
        router.close()


def test_no_key_in_any_feedback_state(tmp_path: Path, keys: str) -> None:
    clock = FakeClock(T0)
    with FakeProvider([FakeEndpoint("x", rpm=1), FakeEndpoint("spare")], clock=clock.now) as fake:
        router = two_endpoint_router(fake, tmp_path, "openai", "30 | ", clock)
        for _ in range(3):
            router.completion(HI)
        assert KEY not in repr(router.store.cooldowns(clock.now()))
        router.close()


def test_a_provider_at_zero_that_llamux_counts_full_itself_needs_no_rest(
    tmp_path: Path, keys: str
) -> None:
    """Concurrent calls: the first answer comes back after the others were reserved, so its
    reservation's view (2 left) is older than the provider's count (0 left). llamux counts
    the rule full itself, and frees each slot as the window lets it go: no cool-down, which
    would keep the endpoint idle until the provider's full reset."""
    clock = FakeClock(T0)
    with FakeProvider([FakeEndpoint("x"), FakeEndpoint("spare")], clock=clock.now) as fake:
        router = two_endpoint_router(fake, tmp_path, "openai", "3 | ", clock)
        first, *others = [router.call(HI, {"model": "x"}).admission.next() for _ in range(3)]
        assert not isinstance(first, float)
        assert dict((rule, left) for _, rule, left in first.reservation.remaining)["rpm"] == 2
        zero = {
            "x-ratelimit-limit-requests": "3",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "59s",
        }
        router.settler.learn(first, zero)
        assert status_of(router, "x").cooldown is None
        # but the provider at 0 while llamux counts one left (someone else uses the key): rest
        for held in others:
            assert not isinstance(held, float)
            router.release(held.reservation.id)
        router.settler.learn(first, zero)
        assert cooling_of(router, "x").kind == "cooldown"
        router.close()
