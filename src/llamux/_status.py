"""An endpoint-by-endpoint picture of the router, as plain JSON-ready data.

:func:`status_data` is what ``llamux status --json``, the proxy's ``/v1/llamux/status``,
its metrics and the dashboard show; the CLI renders it as a table (``cli/_status_view``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NotRequired, Protocol, TypedDict

from ._policy.money import MICRO
from ._policy.rules import UNLIMITED, USD

if TYPE_CHECKING:
    from ._clock import Clock
    from ._config.load import Endpoint
    from ._engine.keys import Keys
    from ._engine.quotas import Quotas
    from ._policy.known_limits import Known
    from ._policy.performance import Performance
    from ._policy.quota import Cooldown, RuleUsage
    from ._policy.rules import Scope
    from ._stores import QuotaStore


class RuleData(TypedDict):
    scope: str
    rule: str
    metric: str
    window: str
    limit: int | None
    """None: an ``auto`` limit with no value known (usage is counted, nothing limited)."""
    used: int
    remaining: int | None
    next_free_at: float | None
    frees_in: float | None
    origin: str
    """Where the limit comes from: configured, tightened (the provider stated less),
    learned, catalog, none (the catalog lists no such limit) or unknown."""
    spent_usd: NotRequired[float]
    """A dollar budget's spend in dollars (its ``metric`` is usd: ``used``, ``limit`` and
    ``remaining`` are micro-dollars); only a budget has it."""
    budget_usd: NotRequired[float]
    """A dollar budget's limit in dollars; only a budget has it."""


class CooldownData(TypedDict):
    kind: str
    until: float
    seconds: float
    reason: str


class PerformanceData(TypedDict):
    latency: float | None
    tokens_per_second: float | None
    ttft: float | None
    samples: int


class InFlightData(TypedDict):
    in_flight: int
    """Requests holding a lease now (across every process sharing the store)."""
    limit: int


class EndpointData(TypedDict):
    id: str
    provider: str
    model: str
    base_url: str
    api_key_env: str
    has_key: bool
    pool: str | None
    state: str
    """``ok``, ``full``, ``busy`` (every concurrency lease held), ``no_key``, ``cooldown``,
    ``parked`` or ``disabled``."""
    cooldown: CooldownData | None
    rules: list[RuleData]
    performance: PerformanceData | None
    """Measured speed (moving averages over the store), ``None`` before any call."""
    concurrency: InFlightData | None
    """Requests in flight vs its ``concurrency`` limit; ``None`` without one."""


class PoolData(TypedDict):
    name: str
    endpoints: list[str]
    rules: list[RuleData]
    concurrency: InFlightData | None


class StatusData(TypedDict):
    now: float
    endpoints: list[EndpointData]
    pools: list[PoolData]
    warnings: list[str]
    """What the store holds that this config disagrees with (see ``Router.warnings``)."""


class Reporting(Protocol):
    """What the status data is read from: a router."""

    clock: Clock

    def status(self) -> Sequence[EndpointStatus]: ...

    def warnings(self) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    """One endpoint's state for ``llamux status``: key, usage per rule, cool-down."""

    endpoint: Endpoint
    has_key: bool
    usage: tuple[RuleUsage, ...]
    cooldown: Cooldown | None
    performance: Performance | None = None
    """Measured latency, tokens/s and time to first token (moving averages), if any."""
    quota: str = ""
    """The key its own quota is counted by in the store (``q:SERVER|MODEL|KEY_VARIABLE``)."""
    known: tuple[Known, ...] = ()
    """Each configured rule and where its limit comes from (configured, learned, catalog)."""
    at: float = 0.0
    """When this state was read (the router's clock)."""
    in_flight: Mapping[str, int] = field(default_factory=dict)
    """Requests in flight (live leases) of each of its scopes with a concurrency limit."""
    scopes: Sequence[Scope] = ()
    """Its scopes (its own quota, then its pool's), with their concurrency limits."""

    def to_dict(self, now: float | None = None) -> EndpointData:
        """This endpoint as JSON-ready data, the shape of one endpoint of ``llamux status
        --json`` (``id``, ``provider``, ``model``, ``state``, ``cooldown``, ``rules`` with
        ``used``, ``limit``, ``remaining``, ``frees_in`` and ``origin``, ``performance``...);
        durations are counted from ``now`` (default: when the state was read)."""
        return endpoint_data(self, self.at if now is None else now)


def status_data(router: Reporting) -> StatusData:
    """Every endpoint's state and usage per rule, and each pool's, as JSON-ready data."""
    now = router.clock.now()
    rows = router.status()
    pools: dict[str, PoolData] = {}
    for row in rows:
        name = row.endpoint.pool
        if name is None:
            continue
        if name not in pools:
            key = f"pool:{name}"
            shared = [_rule(u, now) for u in row.usage if u.scope == key]
            flight = _in_flight(row, key)
            pools[name] = PoolData(name=name, endpoints=[], rules=shared, concurrency=flight)
        pools[name]["endpoints"].append(row.endpoint.id)
    endpoints = [endpoint_data(row, now) for row in rows]
    pooled = list(pools.values())
    return StatusData(now=now, endpoints=endpoints, pools=pooled, warnings=router.warnings())


def endpoint_data(row: EndpointStatus, now: float) -> EndpointData:
    """One endpoint's state (a row of ``Router.status()``) as data, durations from ``now``
    (also ``EndpointStatus.to_dict()``)."""
    ep = row.endpoint
    # an endpoint's own quota is shown by its id; a pool's by ``pool:NAME``
    origins = {known.name: known.origin for known in row.known}
    rules = [
        _rule(u, now, ep.id, origins.get(u.rule.name, "configured"))
        if u.scope == row.quota
        else _rule(u, now, u.scope)
        for u in row.usage
    ]
    cooling = _cooldown(row.cooldown, now)
    if not row.has_key:
        state = "no_key"
    elif cooling is not None:
        state = cooling["kind"]
    elif any(r["remaining"] == 0 for r in rules):
        state = "full"
    elif _busy(row):
        state = "busy"
    else:
        state = "ok"
    own = [r for r in rules if r["scope"] == ep.id]
    return EndpointData(
        id=ep.id,
        provider=ep.provider,
        model=ep.model,
        base_url=ep.base_url,
        api_key_env=ep.api_key_env,
        has_key=row.has_key,
        pool=ep.pool,
        state=state,
        cooldown=cooling,
        rules=own,
        performance=_performance(row),
        concurrency=_in_flight(row, row.quota),
    )


def _busy(row: EndpointStatus) -> bool:
    """Whether every lease of one of the endpoint's scopes (its own or its pool's) is held."""
    return any(
        scope.concurrency is not None and row.in_flight.get(scope.key, 0) >= scope.concurrency
        for scope in row.scopes
    )


def _in_flight(row: EndpointStatus, key: str) -> InFlightData | None:
    """The requests in flight on scope ``key`` of ``row`` and its limit, if it has one."""
    for scope in row.scopes:
        if scope.key == key and scope.concurrency is not None:
            return InFlightData(in_flight=row.in_flight.get(key, 0), limit=scope.concurrency)
    return None


def _performance(row: EndpointStatus) -> PerformanceData | None:
    perf = row.performance
    if perf is None:
        return None
    return PerformanceData(
        latency=perf.latency,
        tokens_per_second=perf.tokens_per_second,
        ttft=perf.ttft,
        samples=perf.samples,
    )


def _rule(
    usage: RuleUsage, now: float, scope: str | None = None, origin: str = "configured"
) -> RuleData:
    free = usage.next_free_at
    limited = usage.limit != UNLIMITED
    data = RuleData(
        scope=usage.scope if scope is None else scope,
        rule=usage.rule.name,
        metric=usage.rule.metric,
        window=usage.rule.window.label,
        limit=usage.limit if limited else None,
        used=usage.used,
        remaining=usage.remaining if limited else None,
        next_free_at=free if limited else None,
        frees_in=None if free is None or not limited else max(0.0, free - now),
        origin=origin,
    )
    if usage.rule.metric == USD:
        data["spent_usd"] = usage.used / MICRO
        data["budget_usd"] = usage.limit / MICRO
    return data


def _cooldown(cooldown: Cooldown | None, now: float) -> CooldownData | None:
    if cooldown is None:
        return None
    seconds = max(0.0, cooldown.until - now)
    return CooldownData(
        kind=cooldown.kind, until=cooldown.until, seconds=seconds, reason=cooldown.reason
    )


def endpoint_statuses(
    endpoints: Sequence[Endpoint], quotas: Quotas, store: QuotaStore, keys: Keys, now: float
) -> list[EndpointStatus]:
    """Every endpoint's usage per rule, key presence and cool-down at ``now``, read from
    ``store`` (``Router.status``)."""
    cooling = store.cooldowns(now)
    measured = store.performance([ep.id for ep in endpoints])
    rows = []
    for ep in endpoints:
        scopes = quotas.scopes[ep.id]
        usage = store.usage(scopes, now)
        cool = next((cooling[s.key] for s in scopes if s.key in cooling), None)
        has_key = keys.get(ep) is not None
        perf = measured.get(ep.id)
        known = quotas.known.get(ep.id, ())
        flying = store.in_flight(scopes, now)
        row = EndpointStatus(
            ep, has_key, tuple(usage), cool, perf, scopes[0].key, known, now, flying, scopes
        )
        rows.append(row)
    return rows
