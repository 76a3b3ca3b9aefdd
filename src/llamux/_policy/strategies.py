"""Strategies order the candidate endpoints; the quota store alone decides admission.

A strategy is a small object with ``order(endpoints, request, facts) -> endpoints``: pure,
no I/O. What it needs to know beyond the endpoints (measured speed, headroom, a shared
turn counter, randomness) it declares in ``needs``; the router fetches exactly that into
``Facts``. A plain callable ``f(endpoints, request) -> endpoints`` works too.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .._errors import ConfigError
from .performance import Performance

if TYPE_CHECKING:
    from .._config.load import Endpoint

PERFORMANCE = "performance"
HEADROOM = "headroom"
TURN = "turn"


@dataclass(frozen=True, slots=True)
class Request:
    """What a strategy may look at: the request, its prompt tokens and output budget."""

    messages: Sequence[Mapping[str, Any]]
    params: Mapping[str, Any]
    prompt_tokens: int
    output_tokens: int = 0

    @property
    def stream(self) -> bool:
        return bool(self.params.get("stream"))


@dataclass(frozen=True, slots=True)
class Facts:
    """What the router measured for the strategy: only what its ``needs`` asked for."""

    now: float = 0.0
    performance: Mapping[str, Performance] = field(default_factory=dict)
    headroom: Mapping[str, float] = field(default_factory=dict)
    """Per endpoint: the fraction left of its tightest rule (1.0 with no rules)."""
    turn: int = 0
    rng: random.Random | None = None


class Strategy(Protocol):
    """Orders candidate endpoints for one request."""

    name: str
    needs: frozenset[str]

    def order(
        self, endpoints: Sequence[Endpoint], request: Request, facts: Facts
    ) -> Sequence[Endpoint]: ...


RANKED_LIMIT = 256
"""Candidate tuples whose preference order a strategy keeps, at most."""


def _by_preference(endpoints: Sequence[Endpoint]) -> list[Endpoint]:
    ranked = sorted(
        enumerate(endpoints), key=lambda p: (p[1].priority is None, p[1].priority or 0, p[0])
    )
    return [endpoint for _, endpoint in ranked]


class Preference:
    """The seed's rule: explicit ``priority`` (lower first) when given, else table order."""

    name = "preference"
    needs: frozenset[str] = frozenset()
    static = True
    """Its order depends on the endpoints alone (not on the request, the time or the store)."""

    def __init__(self) -> None:
        self._ranked: dict[int, tuple[Sequence[Endpoint], list[Endpoint]]] = {}
        """Orders already made, by the identity of the sequence ranked (a router hands the
        same tuple for the same model): a decision among 100 endpoints sorts nothing."""

    def order(
        self, endpoints: Sequence[Endpoint], request: Request, facts: Facts
    ) -> Sequence[Endpoint]:
        if not isinstance(endpoints, tuple):  # a list may change: rank it afresh
            return _by_preference(endpoints)
        known = self._ranked.get(id(endpoints))
        if known is not None and known[0] is endpoints:
            return known[1]
        ranked = _by_preference(endpoints)
        if len(self._ranked) >= RANKED_LIMIT:
            self._ranked.clear()
        self._ranked[id(endpoints)] = (endpoints, ranked)  # kept alive: its id stays its own
        return ranked


def price(endpoint: Endpoint, request: Request) -> float:
    """The request's estimated price in USD on ``endpoint`` (``inf`` when it has no prices)."""
    if endpoint.input_cost is None and endpoint.output_cost is None:
        return math.inf
    cost_in = (endpoint.input_cost or 0.0) * request.prompt_tokens
    cost_out = (endpoint.output_cost or 0.0) * request.output_tokens
    return (cost_in + cost_out) / 1_000_000


class Cheapest:
    """Lowest estimated price first (from ``input_cost`` / ``output_cost``); unpriced last."""

    name = "cheapest"
    needs: frozenset[str] = frozenset()

    def order(
        self, endpoints: Sequence[Endpoint], request: Request, facts: Facts
    ) -> Sequence[Endpoint]:
        ranked = _by_preference(endpoints)
        return sorted(ranked, key=lambda e: price(e, request))


class Fastest:
    """Untried endpoints first (to measure them), then the quickest by moving averages:
    time to first token for streams, latency otherwise; more tokens/s breaks ties."""

    name = "fastest"
    needs = frozenset({PERFORMANCE})

    def order(
        self, endpoints: Sequence[Endpoint], request: Request, facts: Facts
    ) -> Sequence[Endpoint]:
        def key(endpoint: Endpoint) -> tuple[int, float, float]:
            perf = facts.performance.get(endpoint.id)
            if perf is None or perf.samples == 0:
                return (0, 0.0, 0.0)
            wait = perf.ttft if request.stream and perf.ttft is not None else perf.latency
            return (1, math.inf if wait is None else wait, -(perf.tokens_per_second or 0.0))

        return sorted(_by_preference(endpoints), key=key)


class Balanced:
    """The endpoint with the most headroom left (fraction of its tightest rule) first."""

    name = "balanced"
    needs = frozenset({HEADROOM})

    def order(
        self, endpoints: Sequence[Endpoint], request: Request, facts: Facts
    ) -> Sequence[Endpoint]:
        return sorted(_by_preference(endpoints), key=lambda e: -facts.headroom.get(e.id, 1.0))


class RoundRobin:
    """Each request starts one further down the preference order (a counter in the store,
    shared by every process and machine)."""

    name = "round_robin"
    needs = frozenset({TURN})

    def order(
        self, endpoints: Sequence[Endpoint], request: Request, facts: Facts
    ) -> Sequence[Endpoint]:
        ranked = _by_preference(endpoints)
        if not ranked:
            return ranked
        start = (facts.turn - 1) % len(ranked)
        return ranked[start:] + ranked[:start]


class Weighted:
    """A random order where each endpoint leads with probability proportional to ``weight``
    (weighted sampling without replacement); weight 0 goes last."""

    name = "weighted"
    needs: frozenset[str] = frozenset()

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()

    def order(
        self, endpoints: Sequence[Endpoint], request: Request, facts: Facts
    ) -> Sequence[Endpoint]:
        rng = facts.rng or self.rng

        def key(endpoint: Endpoint) -> float:
            if endpoint.weight <= 0:
                return math.inf
            return -math.log(1.0 - rng.random()) / endpoint.weight  # Exp(weight): smaller leads

        return sorted(_by_preference(endpoints), key=key)


class Custom:
    """A user's callable ``f(endpoints, request) -> endpoints`` as a strategy."""

    needs: frozenset[str] = frozenset()

    def __init__(self, function: Callable[[Sequence[Endpoint], Request], Sequence[Endpoint]]):
        self.function = function
        self.name = getattr(function, "__name__", "custom")

    def order(
        self, endpoints: Sequence[Endpoint], request: Request, facts: Facts
    ) -> Sequence[Endpoint]:
        return list(self.function(endpoints, request))


_BUILT_IN: tuple[type[Strategy], ...] = (
    Preference,
    Cheapest,
    Fastest,
    Balanced,
    RoundRobin,
    Weighted,
)
STRATEGIES: Mapping[str, Callable[[], Strategy]] = {kind.name: kind for kind in _BUILT_IN}
"""Each built-in strategy by its own ``name``: exactly ``_endpoint.STRATEGIES``, the names the
config and the CLI accept (a test holds them equal)."""


def strategy_from(value: str | Strategy | Callable[..., Any] | None) -> Strategy:
    """A strategy from its name, a strategy object, or a callable."""
    if value is None:
        return Preference()
    if isinstance(value, str):
        make = STRATEGIES.get(value.strip().lower().replace("-", "_"))
        if make is None:
            known = ", ".join(sorted(STRATEGIES))
            raise ConfigError(f"unknown strategy {value!r}; use one of: {known}")
        return make()
    if hasattr(value, "order"):
        return value  # type: ignore[return-value]
    if callable(value):
        return Custom(value)
    raise ConfigError(f"a strategy must be a name, a Strategy or a callable, not {value!r}")
