"""The bucketed stores held against an exact model of a strict provider's clock.

A strict provider counts each request at the moment it *arrives*, somewhere between llamux's
reservation and the moment llamux learns the outcome, in exact rolling windows. The plans
below reserve (in flight, or as ``query`` does), let each request arrive at a random moment
before its outcome, and tell the store the outcome (re-stamp and settle, as the router does)
once the time has come.

Safety: in the provider's exact windows, counted at arrival, no limit is ever crossed.
Liveness: a refusal happens only when a request counted from its reservation until one
window (stretched by one bucket and the latency margin) after its outcome, or still in
flight, would refuse too.

The same plans run on minute and hour limits, and, with the time between requests scaled by
43,200 (a minute becomes 30 days; calls still take seconds), on month limits beside a day
limit; an edge is then just before a 900 s bucket edge (a month's bucket). Scaled by 1,440
(a minute becomes a day), they hold a dollar budget beside day limits: each token costs 7
micro-dollars, estimated and settled alike.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llamux._policy.quota import Cost, Reservation
from llamux._policy.rules import Scope, rules_from_limits
from llamux._policy.window import LATENCY_MARGIN
from llamux._stores import QuotaStore

from conftest import STORE_KINDS, open_store, server_url

T0 = 1_767_225_600.0


@dataclass(frozen=True)
class Profile:
    """Limits, their windows and buckets, the seconds one plan second stands for and the
    smallest bucket (where an ``EDGE`` lands)."""

    limits: dict[str, int]
    window: dict[str, int]
    bucket: dict[str, int]
    scale: float = 1.0
    edge: float = 1.0
    price: int = 0
    """Micro-dollars per token (estimated and settled alike) where a budget counts them."""


MINUTES = Profile(
    {"rpm": 5, "tpm": 400, "rph": 40},
    {"rpm": 60, "tpm": 60, "rph": 3600},
    {"rpm": 1, "tpm": 1, "rph": 60},
)
MONTHS = Profile(
    {"rpmo": 5, "tpmo": 400, "rpd": 4},
    {"rpmo": 30 * 86400, "tpmo": 30 * 86400, "rpd": 86400},
    {"rpmo": 900, "tpmo": 900, "rpd": 900},
    scale=43200.0,
    edge=900.0,
)
BUDGETS = Profile(
    {"usd_day": 2000, "tpd": 400, "rpd": 6},
    {"usd_day": 86400, "tpd": 86400, "rpd": 86400},
    {"usd_day": 900, "tpd": 900, "rpd": 900},
    scale=1440.0,
    edge=900.0,
    price=7,
)
PROFILES = {"minutes": MINUTES, "months": MONTHS, "budgets": BUDGETS}
FLIGHT = 300.0
"""Longer than any outcome delay below: the router's bound on a call."""
QUERY_SETTLES_WITHIN = 30.0
"""A ``query`` reservation is held for one window from its reservation: the README asks
callers to settle as soon as the answer arrives, within that window."""
STREAM_SECONDS = 20.0
"""How long a stream runs after its first chunk before it ends and is settled."""
EDGE = -1.0
"""An advance that lands just before the next whole second (a bucket edge)."""

advances = st.one_of(
    st.floats(min_value=0, max_value=40, allow_nan=False),
    st.sampled_from([0.0, 0.5, 0.95, 1.0, 59.0, 59.95, 60.0, 60.05, 61.0, EDGE]),
)
steps = st.lists(
    st.tuples(
        advances,
        st.integers(min_value=0, max_value=150),  # estimated tokens
        # settled tokens as a fraction of the estimate (None: no usage, the estimate stays)
        st.one_of(st.none(), st.floats(min_value=0, max_value=1)),
        st.floats(min_value=0, max_value=1),  # where between reservation and outcome it arrives
        st.sampled_from([0.0, 0.3, 0.45, 1.0, 5.0, 75.0, 130.0]),  # seconds to the outcome
        st.sampled_from(["plain", "stream", "query"]),
    ),
    min_size=1,
    max_size=100,
)


@dataclass
class Sent:
    reservation: Reservation
    reserved: float
    arrival: float
    outcome: float
    tokens: int
    """What the store counts now: the estimate until settled, then the real usage."""
    actual: int
    kind: str
    told: bool = False

    def ended(self) -> float:
        """When the store is told: a stream settles at its end, with its first chunk's
        moment (its outcome); anything else when the outcome is known."""
        return self.outcome + (STREAM_SECONDS if self.kind == "stream" else 0.0)


def _count(name: str, tokens: int, price: int = 0) -> int:
    if name.startswith("usd"):
        return tokens * price
    return 1 if name.startswith("r") else tokens


def _tell(store: QuotaStore, sent: Sent, price: int) -> None:
    """The outcome is known: settle at that moment (a stream, at its end, with the moment of
    its first chunk), re-priced from the real usage."""
    usd = sent.actual * price if price else None
    store.settle(sent.reservation.id, sent.actual, sent.outcome, usd=usd)
    sent.tokens, sent.told = sent.actual, True


def _counted_until(sent: Sent, name: str, profile: Profile) -> float:
    """Until when the liberal model counts ``sent`` (infinite while in flight)."""
    stretch = profile.window[name] + profile.bucket[name] + LATENCY_MARGIN
    return sent.outcome + stretch if sent.told else math.inf


def _run(
    store: QuotaStore,
    plan: list[tuple[float, int, float | None, float, float, str]],
    profile: Profile = MINUTES,
) -> None:
    scope = Scope("ep", rules_from_limits(profile.limits.items(), {}))
    unit, edge = profile.scale, profile.edge
    now = T0
    sent: list[Sent] = []
    for advance, estimate, settled, where, delay, kind in plan:
        if advance == EDGE:
            now = math.floor(now / edge) * edge + 0.99 * edge
        else:
            now += advance * unit
        due = [s for s in sent if not s.told and s.ended() <= now]
        for item in sorted(due, key=lambda s: s.ended()):
            _tell(store, item, profile.price)
        flight = 0.0 if kind == "query" else FLIGHT
        if kind == "query":  # no flight: the caller settles before its charge's window ends
            delay = min(delay, QUERY_SETTLES_WITHIN)
        cost = Cost(estimate, usd=estimate * profile.price)
        outcome = store.reserve("ep", [scope], cost, now, flight=flight)
        if isinstance(outcome, Reservation):
            actual = estimate if settled is None else int(estimate * settled)
            arrival = now + where * delay
            sent.append(Sent(outcome, now, arrival, now + delay, estimate, actual, kind))
            continue
        name = outcome.rule
        assert name is not None
        price = profile.price
        wanted = _count(name, estimate, price)
        held = sum(
            _count(name, s.tokens, price) for s in sent if now < _counted_until(s, name, profile)
        )
        assert held + wanted > profile.limits[name], f"refused by {name} though the model admits"
        if outcome.retry_at is not None:
            assert outcome.retry_at > now
    for name, limit in profile.limits.items():  # safety, on the provider's clock
        span = profile.window[name]
        for s in sent:
            window = [x for x in sent if s.arrival - span < x.arrival <= s.arrival]
            assert sum(_count(name, x.actual, profile.price) for x in window) <= limit, name


SLOW_STEPS = [HealthCheck.too_slow]
STORE_EXAMPLES = {
    "memory": settings(max_examples=300, deadline=None),
    "sqlite": settings(max_examples=60, deadline=None, suppress_health_check=SLOW_STEPS),
    "redis": settings(max_examples=100, deadline=None, suppress_health_check=SLOW_STEPS),
    "redis-cluster": settings(max_examples=40, deadline=None, suppress_health_check=SLOW_STEPS),
}
"""How many plans each store is held to, as before the three tests became one (SQLite and
Redis are slower per step)."""


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("kind", STORE_KINDS)
def test_store_is_exact_on_the_providers_clock(
    kind: str, profile: str, request: pytest.FixtureRequest
) -> None:
    url = server_url(request, kind)

    @STORE_EXAMPLES[kind]
    @given(steps)
    def holds(plan: list[tuple[float, int, float | None, float, float, str]]) -> None:
        with tempfile.TemporaryDirectory() as tmp:  # a new store for each plan
            store = open_store(kind, Path(tmp), url)
            try:
                _run(store, plan, PROFILES[profile])
            finally:
                if url is not None:
                    store.reset()  # its own namespace; leave nothing behind
                store.close()

    holds()
