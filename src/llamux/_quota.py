"""Quota arithmetic: windows, rules, buckets and the admission decision.

Pure: no I/O, no clock. Every function takes ``now`` (epoch seconds) as an argument, so
the same decision runs in every store and in tests with a fake clock.

Counting. A window's usage is kept in sub-buckets (1 s for minute rules, 60 s for hour
rules, 900 s for day rules). At time ``now`` a rolling rule counts every bucket from the one
holding ``now - window`` (the oldest, partial bucket counts whole) up to the newest. Hence:

* safety: every event in ``(now - window, now]`` is counted, so admitting only when
  ``used + cost <= limit`` never lets any interval of the window's length exceed the limit;
* liveness: an event stops counting at most one bucket (1/60 of the window, 1/96 for a day)
  plus ``LATENCY_MARGIN`` after the exact sliding window would drop it.

A charge made at ``now`` is recorded in the bucket of ``now + LATENCY_MARGIN``: the provider
receives the request a little after llamux reserved it, and its own window must not free the
slot later than ours does.

A calendar rule (``Window.tz`` set) counts the current period in its timezone (the day from
local midnight, DST-aware); the period is its only bucket.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

WINDOW_SECONDS: Mapping[str, int] = {"minute": 60, "hour": 3600, "day": 86400}
BUCKET_SECONDS: Mapping[str, int] = {"minute": 1, "hour": 60, "day": 900}
LATENCY_MARGIN = 0.05
"""Seconds between reserving a request and the provider receiving it, allowed for."""

RESERVATION_TTL = 86400 + 900 + 60
"""Seconds after which an unsettled reservation is dropped: its buckets no longer count."""

REQUESTS = "requests"
TOKENS = "tokens"

_LIMIT_NAMES: Mapping[str, tuple[str, str]] = {
    "rpm": (REQUESTS, "minute"),
    "tpm": (TOKENS, "minute"),
    "rph": (REQUESTS, "hour"),
    "tph": (TOKENS, "hour"),
    "rpd": (REQUESTS, "day"),
    "tpd": (TOKENS, "day"),
}


@lru_cache(maxsize=64)
def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


@dataclass(frozen=True, slots=True)
class Window:
    """A window length (``minute``, ``hour`` or ``day``), rolling or calendar in ``tz``."""

    unit: str
    tz: str | None = None
    key: str = field(init=False, repr=False, compare=False)
    """A stable text key: ``minute`` or ``day@America/Los_Angeles``."""
    seconds: int = field(init=False, repr=False, compare=False)
    bucket_seconds: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.unit not in WINDOW_SECONDS:
            raise ValueError(f"unknown window {self.unit!r}; use minute, hour or day")
        key = self.unit if self.tz is None else f"{self.unit}@{self.tz}"
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "seconds", WINDOW_SECONDS[self.unit])
        object.__setattr__(self, "bucket_seconds", BUCKET_SECONDS[self.unit])

    @classmethod
    def from_key(cls, key: str) -> Window:
        return _window_from_key(key)

    def charge_bucket(self, now: float) -> int:
        """The bucket a charge made at ``now`` is recorded in."""
        if self.tz is not None:
            return self._period_start(now)
        size = self.bucket_seconds
        return int((now + LATENCY_MARGIN) // size) * size

    def oldest_counted(self, now: float) -> int:
        """The oldest bucket that still counts at ``now``; older ones can be pruned."""
        if self.tz is not None:
            return self._period_start(now)
        size = self.bucket_seconds
        return (int(now // size) - self.seconds // size) * size

    def frees_at(self, bucket: int) -> float:
        """The moment ``bucket`` stops counting."""
        if self.tz is not None:
            return self._next_period(bucket)
        return float(bucket + self.seconds + self.bucket_seconds)

    def _period_start(self, now: float) -> int:
        assert self.tz is not None
        local = datetime.fromtimestamp(now, _zone(self.tz))
        if self.unit == "day":
            local = local.replace(hour=0, minute=0, second=0, microsecond=0)
        elif self.unit == "hour":
            local = local.replace(minute=0, second=0, microsecond=0)
        else:
            local = local.replace(second=0, microsecond=0)
        return math.floor(local.timestamp())

    def _next_period(self, start: int) -> float:
        assert self.tz is not None
        if self.unit != "day":
            return float(start + self.seconds)
        zone = _zone(self.tz)
        day = datetime.fromtimestamp(start, zone).date() + timedelta(days=1)
        return datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()


@lru_cache(maxsize=256)
def _window_from_key(key: str) -> Window:
    unit, _, tz = key.partition("@")
    return Window(unit, tz or None)


@dataclass(frozen=True, slots=True)
class Rule:
    """At most ``limit`` of ``metric`` (requests or tokens) per ``window``."""

    metric: str
    window: Window
    limit: int
    name: str = field(init=False, compare=False)
    """The table's name of this rule: rpm, tpm, rph, tph, rpd or tpd."""

    def __post_init__(self) -> None:
        name = ("r" if self.metric == REQUESTS else "t") + "p" + self.window.unit[0]
        object.__setattr__(self, "name", name)


def rules_from_limits(
    limits: Iterable[tuple[str, int]], resets: Mapping[str, str]
) -> tuple[Rule, ...]:
    """Rules for ``(name, limit)`` pairs such as ``("rpm", 30)``; ``resets`` maps a name to a tz."""
    rules = []
    for name, limit in limits:
        metric, unit = _LIMIT_NAMES[name]
        rules.append(Rule(metric, Window(unit, resets.get(name)), limit))
    return tuple(rules)


@dataclass(frozen=True, slots=True)
class Scope:
    """Something quota is counted for: an endpoint (``key`` = its id) or a pool (``pool:NAME``)."""

    key: str
    rules: tuple[Rule, ...]
    windows: tuple[Window, ...] = field(init=False, repr=False, compare=False)
    """The distinct windows of the rules, in rule order."""
    groups: tuple[tuple[Window, tuple[Rule, ...]], ...] = field(
        init=False, repr=False, compare=False
    )
    """Each window with its rules: a decision reads a window's buckets once."""

    def __post_init__(self) -> None:
        windows = tuple(dict.fromkeys(rule.window for rule in self.rules))
        groups = tuple((w, tuple(r for r in self.rules if r.window == w)) for w in windows)
        object.__setattr__(self, "windows", windows)
        object.__setattr__(self, "groups", groups)


@dataclass(frozen=True, slots=True)
class Cost:
    """What one request charges: one request and its estimated tokens."""

    tokens: int
    requests: int = 1

    def __post_init__(self) -> None:
        if self.tokens < 0 or self.requests < 0:  # would free others' usage: never admit
            raise ValueError(
                f"a cost is never negative: {self.requests} requests, {self.tokens} tokens"
            )

    def of(self, metric: str) -> int:
        return self.requests if metric == REQUESTS else self.tokens


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


Buckets = Mapping[int, tuple[int, int]]
"""A window's counted buckets: bucket start -> (requests, tokens)."""
Snapshot = Mapping[tuple[str, str], Buckets]
"""Usage of every (scope key, window key) a decision needs."""


def _totals(buckets: Buckets, oldest: int) -> tuple[int, int]:
    """Requests and tokens of the buckets from ``oldest`` on."""
    requests = tokens = 0
    for bucket, (r, t) in buckets.items():
        if bucket >= oldest:
            requests += r
            tokens += t
    return requests, tokens


def counted(buckets: Buckets, window: Window, now: float) -> list[tuple[int, int, int]]:
    """The buckets that count at ``now``, oldest first, as (bucket, requests, tokens)."""
    oldest = window.oldest_counted(now)
    return sorted((b, r, t) for b, (r, t) in buckets.items() if b >= oldest)


def _refusal(
    endpoint: str, scope: str, rule: Rule, rows: list[tuple[int, int, int]], cost: Cost
) -> Refusal:
    """Why ``rule`` refuses ``cost`` given its counted ``rows``, and when it will not."""
    index = 1 if rule.metric == REQUESTS else 2
    used = sum(row[index] for row in rows)
    wanted = cost.of(rule.metric)
    retry_at: float | None = None
    if wanted <= rule.limit:
        left = used
        for row in rows:
            left -= row[index]
            if left + wanted <= rule.limit:
                retry_at = rule.window.frees_at(row[0])
                break
    what = "requests" if rule.metric == REQUESTS else "tokens"
    reason = f"{rule.name} {used}/{rule.limit} used"
    if rule.metric == TOKENS:
        reason += f", {wanted} more needed"
    if retry_at is None:
        reason = f"{rule.name} limit {rule.limit} is below the {wanted} {what} requested"
    return Refusal(endpoint, scope, rule.name, used, rule.limit, wanted, retry_at, reason)


def decide(
    endpoint: str,
    scopes: Sequence[Scope],
    snapshot: Snapshot,
    cooldowns: Mapping[str, Cooldown],
    cost: Cost,
    now: float,
) -> Refusal | None:
    """``None`` if every rule of every scope admits ``cost`` at ``now``, else the refusal.

    When several rules refuse, the one that frees last is reported: only then can the
    request pass. ``retry_at`` is ``None`` when some rule can never admit it.
    """
    worst: Refusal | None = None
    for scope in scopes:
        cooling = cooldowns.get(scope.key) if cooldowns else None
        if cooling is not None and cooling.until > now:
            worst = _later(worst, _cooling_refusal(endpoint, cooling, cost))
        for window, rules in scope.groups:
            buckets = snapshot.get((scope.key, window.key)) or {}
            used = _totals(buckets, window.oldest_counted(now))
            for rule in rules:
                metric = rule.metric == TOKENS
                if used[metric] + (cost.tokens if metric else cost.requests) > rule.limit:
                    rows = counted(buckets, window, now)
                    worst = _later(worst, _refusal(endpoint, scope.key, rule, rows, cost))
    return worst


def _cooling_refusal(endpoint: str, cooling: Cooldown, cost: Cost) -> Refusal:
    reason = f"{cooling.kind}: {cooling.reason}"
    return Refusal(endpoint, cooling.scope, None, 0, 0, cost.requests, cooling.until, reason)


def _later(a: Refusal | None, b: Refusal | None) -> Refusal | None:
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
        for rule in scope.rules:
            wanted = cost.of(rule.metric)
            if wanted > rule.limit:
                what = "requests" if rule.metric == REQUESTS else "tokens"
                reason = f"{rule.name} limit {rule.limit} is below the {wanted} {what} requested"
                return Refusal(endpoint, scope.key, rule.name, 0, rule.limit, wanted, None, reason)
    return None


def charges(scopes: Sequence[Scope], now: float) -> tuple[Charge, ...]:
    """Where a reservation made at ``now`` is recorded: one bucket per scope and window."""
    return tuple(
        [
            Charge(scope.key, window.key, window.charge_bucket(now))
            for scope in scopes
            for window in scope.windows
        ]
    )


def rule_usage(scope: Scope, snapshot: Snapshot, now: float) -> list[RuleUsage]:
    """The state of each rule of ``scope`` at ``now``."""
    out = []
    for rule in scope.rules:
        rows = counted(snapshot.get((scope.key, rule.window.key), {}), rule.window, now)
        index = 1 if rule.metric == REQUESTS else 2
        used = sum(row[index] for row in rows)
        nonzero = [row[0] for row in rows if row[index] > 0]
        next_free = rule.window.frees_at(nonzero[0]) if nonzero else None
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
            requests, tokens = _totals(buckets, window.oldest_counted(now))
            for rule in rules:
                metric = rule.metric == TOKENS
                used = tokens + cost.tokens if metric else requests + cost.requests
                out.append((scope.key, rule.name, max(0, rule.limit - used)))
    return tuple(out)
