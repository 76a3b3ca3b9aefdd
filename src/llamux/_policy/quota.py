"""Quota arithmetic: windows, rules, buckets and the admission decision.

Pure: no I/O, no clock. Every function takes ``now`` (epoch seconds) as an argument, so
the same decision runs in every store and in tests with a fake clock.

Counting. A window's usage is kept in sub-buckets (1 s for minute rules, 60 s for hour
rules, 900 s for day and month rules; a rolling month is 30 days). At time ``now`` a
rolling rule counts every bucket from the one holding ``now - window`` (the oldest, partial
bucket counts whole) up to the newest. Hence:

* safety: every event in ``(now - window, now]`` is counted, so admitting only when
  ``used + cost <= limit`` never lets any interval of the window's length exceed the limit;
* liveness: an event stops counting at most one bucket (1/60 of the window, 1/96 for a day)
  (1/2880 for a month) plus ``LATENCY_MARGIN`` after the exact sliding window would drop it.

The provider's clock. A provider counts a request when it *arrives*, somewhere between
llamux's reservation and the moment llamux learns the outcome (the answer's first byte, the
error, or giving up). So a request counts from its reservation until one window after that
moment: a reservation made for a call is charged *in flight*, to the bucket of ``now +
flight`` (``flight`` bounds how long the call can take to show its outcome; a future bucket
counts from now on), and when the outcome is known the charge moves to the bucket of that
moment (:func:`moved`). A reservation whose process dies keeps counting until ``flight``
plus one window. A ``query`` reservation (the caller calls the provider) has no flight: it
is charged at ``now + LATENCY_MARGIN`` and re-stamped when the caller settles it.

A calendar rule (``Window.tz`` set) counts the buckets of the current period in its
timezone (the day from local midnight, the month from local midnight on the 1st,
DST-aware). Rolling and calendar rules of one length
read the same buckets (period starts fall on bucket edges), so changing how a limit resets
keeps its history.

A dollar budget is a rule of the third metric, ``usd``, on the day or month window: a
request's price (``Cost.usd``, micro-dollars, from the endpoint's costs) is counted in the
same buckets as its requests and tokens, and settled from the real usage like its tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from .money import dollars
from .rules import INDEX, REQUESTS, TOKENS, USD, Rule, Scope
from .window import BUCKET_SECONDS, LATENCY_MARGIN, Window

SETTLE_DEADLINE = 600.0
"""Seconds a reservation can still be settled or released: from its charge for a ``query``
reservation, from its flight deadline for one made for a call. Later its record is dropped
(settle and release then return False) and its estimate simply stays counted in its buckets,
so state is bounded by the request rate times this, not by every request ever made."""

UNSETTLED_KEPT = 1024
"""At most this many unsettled ``query`` reservations are kept per endpoint (memory and
SQLite stores): past it, the oldest is dropped as if its deadline had passed. With the
deadline, the state a ``query``-only user leaves is bounded by the number of endpoints."""

QUERY_LEASE = SETTLE_DEADLINE
"""Seconds a ``query`` reservation (no flight) holds a concurrency lease unless the caller
settles or releases it first: a reservation made for a call holds its lease until its
flight deadline (``now + flight``), the moment its in-flight charge lapses too."""
LEASE_POLL = 0.25
"""Seconds after which a request refused for concurrency may look again: a lease is given
back whenever a call ends, usually long before it would expire."""
CONCURRENCY = "concurrency"
"""The rule name of a concurrency refusal (requests in flight at once, leases in the store)."""


@dataclass(frozen=True, slots=True)
class Cost:
    """What one request charges: one request, its estimated tokens and, on an endpoint
    with a dollar budget, its estimated price in micro-dollars (0 elsewhere)."""

    tokens: int
    requests: int = 1
    usd: int = 0

    def __post_init__(self) -> None:
        if self.tokens < 0 or self.requests < 0 or self.usd < 0:  # would free others' usage
            raise ValueError(
                f"a cost is never negative: {self.requests} requests, {self.tokens} tokens, "
                f"{self.usd} micro-dollars"
            )

    def of(self, metric: str) -> int:
        if metric == REQUESTS:
            return self.requests
        return self.tokens if metric == TOKENS else self.usd


@dataclass(frozen=True, slots=True)
class Charge:
    """Where part of a reservation was recorded: one bucket of one window of one scope."""

    scope: str
    window: str
    bucket: int


@dataclass(frozen=True, slots=True)
class Reservation:
    """Quota held for one request until it is settled with its real usage or released."""

    id: str
    endpoint: str
    tokens: int
    created: float
    charges: tuple[Charge, ...]
    remaining: tuple[tuple[str, str, int], ...] = ()
    """(scope, rule name, what is left) for every rule, this reservation included."""
    leases: tuple[str, ...] = ()
    """The scopes (with a ``concurrency`` limit) where it holds a lease until settled,
    released or expired."""
    usd: int = 0
    """Its estimated price in micro-dollars (charged where a dollar budget counts it)."""


@dataclass(frozen=True, slots=True)
class Cooldown:
    """A scope kept out of rotation until ``until``: kind is cooldown, parked or disabled."""

    scope: str
    until: float
    reason: str
    kind: str = "cooldown"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a scope does not admit a request now, and when it may (``None``: never)."""

    endpoint: str
    scope: str
    rule: str | None
    used: int
    limit: int
    requested: int
    retry_at: float | None
    reason: str


@dataclass(frozen=True, slots=True)
class RuleUsage:
    """One rule's state at a moment: for ``llamux status`` and ``query``'s ``remaining``."""

    scope: str
    rule: Rule
    used: int
    next_free_at: float | None
    """When the oldest counted usage stops counting (``None`` when nothing is counted)."""

    @property
    def limit(self) -> int:
        return self.rule.limit

    @property
    def remaining(self) -> int:
        return max(0, self.rule.limit - self.used)


Leases = Mapping[str, Sequence[float]]
"""The expiry of every live lease, by scope key (only scopes with a concurrency limit)."""

Buckets = Mapping[int, tuple[int, int, int]]
"""A window's counted buckets: bucket start -> (requests, tokens, micro-dollars)."""
Snapshot = Mapping[tuple[str, str], Buckets]
"""Usage of every (scope key, window key) a decision needs."""


def _totals(buckets: Buckets, oldest: int) -> tuple[int, int, int]:
    """Requests, tokens and micro-dollars of the buckets from ``oldest`` on."""
    requests = tokens = usd = 0
    for bucket, (r, t, u) in buckets.items():
        if bucket >= oldest:
            requests += r
            tokens += t
            usd += u
    return requests, tokens, usd


def counted(buckets: Buckets, window: Window, now: float) -> list[tuple[int, int, int, int]]:
    """The buckets that count at ``now``, oldest first, as (bucket, requests, tokens,
    micro-dollars)."""
    oldest = window.oldest_counted(now)
    return sorted((b, r, t, u) for b, (r, t, u) in buckets.items() if b >= oldest)


def shown(rule: Rule, amount: int) -> str:
    """An amount of ``rule``'s metric as shown: ``$0.42`` for a budget, else the count."""
    return dollars(amount) if rule.metric == USD else str(amount)


def _refusal(
    endpoint: str,
    scope: str,
    rule: Rule,
    rows: list[tuple[int, int, int, int]],
    cost: Cost,
    now: float,
) -> Refusal:
    """Why ``rule`` refuses ``cost`` given its counted ``rows``, and when it will not."""
    index = 1 + INDEX[rule.metric]
    used = sum(row[index] for row in rows)
    wanted = cost.of(rule.metric)
    retry_at: float | None = None
    if wanted <= rule.limit:
        left = used
        for row in rows:
            left -= row[index]
            if left + wanted <= rule.limit:
                retry_at = rule.window.frees_at(row[0], now)
                break
    reason = f"{rule.name} {shown(rule, used)}/{shown(rule, rule.limit)} used"
    if rule.metric != REQUESTS:
        reason += f", {shown(rule, wanted)} more needed"
    if retry_at is None:
        reason = too_small(rule, wanted)
    return Refusal(endpoint, scope, rule.name, used, rule.limit, wanted, retry_at, reason)


def too_small(rule: Rule, wanted: int) -> str:
    """Why ``rule`` can never admit ``wanted`` of its metric."""
    if rule.metric == USD:
        return f"{rule.name} budget {dollars(rule.limit)} is below the {dollars(wanted)} requested"
    return f"{rule.name} limit {rule.limit} is below the {wanted} {rule.metric} requested"


def decide(
    endpoint: str,
    scopes: Sequence[Scope],
    snapshot: Snapshot,
    cooldowns: Mapping[str, Cooldown],
    cost: Cost,
    now: float,
    leases: Leases | None = None,
    remaining: list[tuple[str, str, int]] | None = None,
) -> Refusal | None:
    """``None`` if every rule of every scope admits ``cost`` at ``now``, else the refusal.

    When several rules refuse, the one that frees last is reported: only then can the
    request pass. ``retry_at`` is ``None`` when some rule can never admit it. ``leases``:
    the live leases of the scopes with a concurrency limit. ``remaining``, if given and the
    request is admitted, receives what :func:`remaining_after` would say, from the same
    sums (a decision adds them up once).
    """
    worst: Refusal | None = None
    costs = (cost.requests, cost.tokens, cost.usd)
    for scope in scopes:
        cooling = cooldowns.get(scope.key) if cooldowns else None
        if cooling is not None and cooling.until > now:
            worst = later(worst, cooling_refusal(endpoint, cooling, cost))
        if scope.concurrency is not None:
            held = leases.get(scope.key, ()) if leases else ()
            worst = later(worst, crowded(endpoint, scope, held, cost, now))
        for window, rules in scope.groups:
            buckets = snapshot.get((scope.key, window.key)) or {}
            used = _totals(buckets, window.oldest_counted(now))
            for rule in rules:
                metric = INDEX[rule.metric]
                after = used[metric] + costs[metric]
                if after > rule.limit:
                    rows = counted(buckets, window, now)
                    refusal = _refusal(endpoint, scope.key, rule, rows, cost, now)
                    worst = later(worst, refusal)
                elif remaining is not None:
                    remaining.append((scope.key, rule.name, rule.limit - after))
    return worst


def live(expiries: Iterable[float], now: float) -> list[float]:
    """The lease expiries that still hold at ``now``."""
    return [at for at in expiries if at > now]


def crowded(
    endpoint: str, scope: Scope, expiries: Sequence[float], cost: Cost, now: float
) -> Refusal | None:
    """The refusal of ``scope``'s concurrency limit if ``cost`` would put more requests in
    flight than it allows (``expiries``: its leases; expired ones do not count), else None.
    ``retry_at``: a short poll (a call may end any moment), never after the soonest expiry."""
    limit = scope.concurrency
    held = live(expiries, now)
    if limit is None or len(held) + cost.requests <= limit:
        return None
    reason = f"{CONCURRENCY} {len(held)}/{limit} in flight"
    if cost.requests > limit:
        reason = f"{CONCURRENCY} limit {limit} is below the {cost.requests} requests requested"
        return Refusal(
            endpoint, scope.key, CONCURRENCY, len(held), limit, cost.requests, None, reason
        )
    retry_at = min([now + LEASE_POLL, *held])
    return Refusal(
        endpoint, scope.key, CONCURRENCY, len(held), limit, cost.requests, retry_at, reason
    )


def kept_until(now: float, flight: float) -> float:
    """Until when a reservation charged at ``now`` with ``flight`` can be settled."""
    return now + max(0.0, flight) + SETTLE_DEADLINE


def lease_until(now: float, flight: float) -> float:
    """When a lease taken at ``now`` expires by itself: at the call's flight deadline, or
    ``QUERY_LEASE`` seconds on for a ``query`` reservation (no flight)."""
    return now + (flight if flight > 0 else QUERY_LEASE)


def cooling_refusal(endpoint: str, cooling: Cooldown, cost: Cost) -> Refusal:
    reason = f"{cooling.kind}: {cooling.reason}"
    return Refusal(endpoint, cooling.scope, None, 0, 0, cost.requests, cooling.until, reason)


def later(a: Refusal | None, b: Refusal | None) -> Refusal | None:
    if a is None or b is None:
        return a or b
    if a.retry_at is None:
        return a
    if b.retry_at is None:
        return b
    return b if b.retry_at > a.retry_at else a


def never_fits(endpoint: str, scopes: Sequence[Scope], cost: Cost) -> Refusal | None:
    """The rule that can never admit ``cost`` however long one waits, if any."""
    for scope in scopes:
        ceiling = scope.ceiling
        if cost.requests <= ceiling[0] and cost.tokens <= ceiling[1] and cost.usd <= ceiling[2]:
            continue
        for rule in scope.rules:
            wanted = cost.of(rule.metric)
            if wanted > rule.limit:
                reason = too_small(rule, wanted)
                return Refusal(endpoint, scope.key, rule.name, 0, rule.limit, wanted, None, reason)
    return None


def charges(scopes: Sequence[Scope], now: float, flight: float = 0.0) -> tuple[Charge, ...]:
    """Where a reservation made at ``now`` is recorded: one bucket per scope and stored
    window; ``flight`` seconds ahead while its outcome is not known."""
    return tuple(
        [
            Charge(scope.key, window.key, window.charge_bucket(now, flight))
            for scope in scopes
            for window in scope.windows
        ]
    )


def moved(charged: Iterable[Charge], now: float) -> list[tuple[Charge, int]]:
    """Each charge with the bucket it moves to when the outcome is learned at ``now``: the
    provider cannot have counted the request later than that."""
    out = []
    for charge in charged:  # Window(charge.window).charge_bucket(now), inlined: a hot path
        size = BUCKET_SECONDS[charge.window]
        out.append((charge, int((now + LATENCY_MARGIN) // size) * size))
    return out


def read_now(now: float | Callable[[], float]) -> float:
    """``now`` itself, or the time a clock's ``now`` gives (read inside a store's atomic step)."""
    return now() if callable(now) else now


def rule_usage(scope: Scope, snapshot: Snapshot, now: float) -> list[RuleUsage]:
    """The state of each rule of ``scope`` at ``now``."""
    out = []
    for rule in scope.rules:
        rows = counted(snapshot.get((scope.key, rule.window.key), {}), rule.window, now)
        index = 1 + INDEX[rule.metric]
        used = sum(row[index] for row in rows)
        nonzero = [row[0] for row in rows if row[index] > 0]
        next_free = rule.window.frees_at(nonzero[0], now) if nonzero else None
        out.append(RuleUsage(scope.key, rule, used, next_free))
    return out


def remaining_after(
    scopes: Sequence[Scope], snapshot: Snapshot, cost: Cost, now: float
) -> tuple[tuple[str, str, int], ...]:
    """What each rule has left once ``cost`` is charged at ``now``: (scope, rule, left)."""
    out = []
    for scope in scopes:
        for window, rules in scope.groups:
            buckets = snapshot.get((scope.key, window.key)) or {}
            totals = _totals(buckets, window.oldest_counted(now))
            for rule in rules:
                metric = INDEX[rule.metric]
                used = totals[metric] + (cost.requests, cost.tokens, cost.usd)[metric]
                out.append((scope.key, rule.name, max(0, rule.limit - used)))
    return tuple(out)
