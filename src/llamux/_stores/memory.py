"""An in-process store: exact and fast, shared by the threads of one process, lost at exit."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence

from .._policy.known_limits import Learned
from .._policy.passing import (
    Candidate,
    Pick,
    Spent,
    cooling,
    judge,
    single,
    still_spent,
    walk,
)
from .._policy.performance import Performance, Sample, fold
from .._policy.quota import (
    UNSETTLED_KEPT,
    Charge,
    Cooldown,
    Cost,
    Refusal,
    Reservation,
    RuleUsage,
    Snapshot,
    kept_until,
    lease_until,
    live,
    moved,
    read_now,
    rule_usage,
)
from .._policy.rules import Scope
from .._policy.window import Window

PRUNE_EVERY = 60.0
"""Seconds between sweeps of reservations that were never settled."""


class MemoryStore:
    """Counters in dictionaries behind one lock. For tests, scripts and single processes."""

    inline = True
    """Operations never block on I/O: the async router may call them on the event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], dict[int, tuple[int, int, int]]] = {}
        self._reservations: dict[str, Reservation] = {}
        self._kept_until: dict[str, float] = {}
        """Per reservation, until when it can be settled (``kept_until``)."""
        self._queries: dict[str, dict[str, None]] = {}
        """Per endpoint, its unsettled ``query`` reservations, oldest first (capped)."""
        self._cooldowns: dict[str, Cooldown] = {}
        self._pruned_at = 0.0
        self._kept_from: dict[tuple[str, str], int] = {}
        """Per (scope, window), the oldest bucket kept at its last sweep."""
        self._performance: dict[str, Performance] = {}
        self._counters: dict[str, int] = {}
        self._declared: dict[str, str] = {}
        self._learned: dict[str, dict[str, Learned]] = {}
        self._spent: dict[str, Spent] = {}
        """Scopes known to refuse until a moment (see ``Spent``): one entry per scope."""
        self._made: dict[tuple[str, Cooldown], Refusal] = {}
        self._generation = 0
        """Bumped whenever something refused until a known moment could fit sooner."""
        self._leases: dict[str, dict[str, float]] = {}
        """Per scope with a concurrency limit: reservation id -> when its lease expires."""

    def __repr__(self) -> str:
        return "MemoryStore()"

    def reserve(
        self,
        endpoint: str,
        scopes: Sequence[Scope],
        cost: Cost,
        now: float | Callable[[], float],
        flight: float = 0.0,
    ) -> Reservation | Refusal:
        return single(self.reserve_first([Candidate(endpoint, scopes, cost)], now, flight))

    def reserve_first(
        self,
        candidates: Iterable[Candidate],
        now: float | Callable[[], float],
        flight: float = 0.0,
    ) -> Pick:
        with self._lock:
            at = read_now(now)

            def one(candidate: Candidate, _: bool) -> Reservation | Refusal:
                return (
                    cooling(candidate, self._cooldowns, at, self._made)
                    or still_spent(candidate, self._spent, at)
                    or self._reserve(candidate, at, flight)
                )

            return walk(candidates, self._generation, at, one)

    def _reserve(self, candidate: Candidate, now: float, flight: float) -> Reservation | Refusal:
        snapshot: Snapshot = {
            key: self._buckets.get(key, {})
            for key in ((s.key, w.key) for s in candidate.scopes for w in s.windows)
        }
        leases = (
            {
                s.key: self._live_leases(s.key, now)
                for s in candidate.scopes
                if s.concurrency is not None
            }
            if self._leases
            else {}
        )  # no lease anywhere (the common case): nothing to read
        reservation, memo = judge(candidate, snapshot, now, flight, leases)
        if not isinstance(reservation, Reservation):
            if memo is not None:
                self._spent[reservation.scope] = memo
            return reservation
        until = lease_until(now, flight)
        for scope in reservation.leases:
            self._leases.setdefault(scope, {})[reservation.id] = until
        cost = candidate.cost
        for charge in reservation.charges:
            self._add(
                charge.scope, charge.window, charge.bucket, cost.requests, cost.tokens, cost.usd
            )
            self._prune(charge.scope, charge.window, now)
        self._keep(reservation, now, flight)
        return reservation

    def _keep(self, reservation: Reservation, now: float, flight: float) -> None:
        """Remember a reservation until its settle deadline; a ``query`` endpoint keeps at
        most ``UNSETTLED_KEPT`` (the oldest beyond is dropped: its estimate stays)."""
        rid = reservation.id
        self._reservations[rid] = reservation
        self._kept_until[rid] = kept_until(now, flight)
        if flight <= 0:
            queued = self._queries.setdefault(reservation.endpoint, {})
            queued[rid] = None
            if len(queued) > UNSETTLED_KEPT:
                self._take(next(iter(queued)))
        if now - self._pruned_at > PRUNE_EVERY:
            self._prune_reservations(now)

    def _claim(self, reservation_id: str, now: float) -> Reservation | None:
        """A reservation to settle or release at ``now``: None if unknown or past its
        deadline (then dropped: its estimate stays where it was counted)."""
        until = self._kept_until.get(reservation_id, now)
        reservation = self._take(reservation_id)
        return None if until < now else reservation

    def _take(self, reservation_id: str) -> Reservation | None:
        """Forget a reservation's record (settled, released or past its deadline)."""
        reservation = self._reservations.pop(reservation_id, None)
        if reservation is not None:
            self._kept_until.pop(reservation_id, None)
            queued = self._queries.get(reservation.endpoint)
            if queued is not None:
                queued.pop(reservation_id, None)
                if not queued:
                    del self._queries[reservation.endpoint]
        return reservation

    def _live_leases(self, scope: str, now: float) -> list[float]:
        """The expiries of ``scope``'s leases that still hold; the expired ones are pruned."""
        held = self._leases.get(scope)
        if not held:
            return []
        for rid in [rid for rid, until in held.items() if until <= now]:
            del held[rid]
        return list(held.values())

    def _unlease(self, reservation: Reservation) -> None:
        """Give back the reservation's leases: a request waiting for one may go now."""
        for scope in reservation.leases:
            if self._leases.get(scope, {}).pop(reservation.id, None) is not None:
                self._generation += 1

    def _prune_reservations(self, now: float) -> None:
        self._pruned_at = now
        for rid in [rid for rid, until in self._kept_until.items() if until < now]:
            self._take(rid)

    def _add(
        self, scope: str, window: str, bucket: int, requests: int, tokens: int, usd: int = 0
    ) -> None:
        buckets = self._buckets.setdefault((scope, window), {})
        old_requests, old_tokens, old_usd = buckets.get(bucket, (0, 0, 0))
        requests += old_requests
        tokens += old_tokens
        usd += old_usd
        buckets[bucket] = (max(0, requests), max(0, tokens), max(0, usd))

    def _prune(self, scope: str, window: str, now: float) -> None:
        oldest = Window.from_key(window).keep_from(now)
        key = (scope, window)
        if self._kept_from.get(key, -1) >= oldest:  # swept since the window last moved on
            return
        self._kept_from[key] = oldest
        buckets = self._buckets.get(key, {})
        for stale in [b for b in buckets if b < oldest]:
            del buckets[stale]

    def _adjust(self, charge: Charge, requests: int, tokens: int, usd: int) -> None:
        """Add to the bucket ``charge`` was recorded in (a pruned one no longer counts)."""
        buckets = self._buckets.get((charge.scope, charge.window), {})
        if charge.bucket in buckets:
            self._add(charge.scope, charge.window, charge.bucket, requests, tokens, usd)

    def settle(
        self,
        reservation_id: str,
        tokens: int,
        now: float,
        sample: Sample | None = None,
        usd: int | None = None,
    ) -> bool:
        with self._lock:
            reservation = self._claim(reservation_id, now)
            if reservation is None:
                return False
            if sample is not None:
                ep = reservation.endpoint
                self._performance[ep] = fold(self._performance.get(ep), sample)
            actual, estimate = max(0, tokens), reservation.tokens
            paid, priced = reservation.usd if usd is None else max(0, usd), reservation.usd
            self._forget_spent(reservation)
            self._unlease(reservation)
            for charge, bucket in moved(reservation.charges, now):  # to the outcome's moment
                if bucket == charge.bucket:
                    self._adjust(charge, 0, actual - estimate, paid - priced)
                    continue
                self._adjust(charge, -1, -estimate, -priced)
                self._add(charge.scope, charge.window, bucket, 1, actual, paid)
            return True

    def release(self, reservation_id: str, now: float) -> bool:
        with self._lock:
            reservation = self._claim(reservation_id, now)
            if reservation is None:
                return False
            self._forget_spent(reservation)
            self._unlease(reservation)
            for charge in reservation.charges:
                self._adjust(charge, -1, -reservation.tokens, -reservation.usd)
            return True

    def _forget_spent(self, reservation: Reservation) -> None:
        """Usage in these scopes is given back or moved: what they refused may fit sooner."""
        if self._spent:
            for charge in reservation.charges:
                if self._spent.pop(charge.scope, None) is not None:
                    self._generation += 1

    def absorb(self, scope: str, window: str, requests: int, tokens: int, now: float) -> None:
        bucket = Window.from_key(window).charge_bucket(now)
        with self._lock:
            self._add(scope, window, bucket, max(0, requests), max(0, tokens))

    def declare(self, limits: Mapping[str, str], now: float) -> dict[str, str]:
        with self._lock:
            differing = {
                k: self._declared[k] for k, v in limits.items() if self._declared.get(k, v) != v
            }
            self._declared.update(limits)
            return differing

    def counted_scopes(self, since: float) -> set[str]:
        with self._lock:
            return {
                scope
                for (scope, _), buckets in self._buckets.items()
                if any(b >= since and (r or t or u) for b, (r, t, u) in buckets.items())
            }

    def cool_down(self, scope: str, until: float, reason: str, kind: str, now: float) -> None:
        with self._lock:
            current = self._cooldowns.get(scope)
            if current is None or current.until <= now or until >= current.until:
                if current is not None and until < current.until:  # ends sooner than it did
                    self._generation += 1
                self._cooldowns[scope] = Cooldown(scope, until, reason, kind)

    def cooldowns(self, now: float) -> dict[str, Cooldown]:
        with self._lock:
            return {k: c for k, c in self._cooldowns.items() if c.until > now}

    def usage(self, scopes: Sequence[Scope], now: float) -> list[RuleUsage]:
        wanted = {(s.key, w.key) for s in scopes for w in s.windows}
        with self._lock:
            snapshot = {k: dict(b) for k, b in self._buckets.items() if k in wanted}
        return [row for scope in scopes for row in rule_usage(scope, snapshot, now)]

    def in_flight(self, scopes: Sequence[Scope], now: float) -> dict[str, int]:
        with self._lock:
            return {
                s.key: len(live(self._leases.get(s.key, {}).values(), now))
                for s in scopes
                if s.concurrency is not None
            }

    def record(self, endpoint: str, sample: Sample) -> None:
        with self._lock:
            self._performance[endpoint] = fold(self._performance.get(endpoint), sample)

    def performance(self, endpoints: Sequence[str]) -> dict[str, Performance]:
        with self._lock:
            return {e: self._performance[e] for e in endpoints if e in self._performance}

    def turn(self, key: str) -> int:
        with self._lock:
            self._counters[key] = self._counters.get(key, 0) + 1
            return self._counters[key]

    def learn(self, scope: str, limits: Mapping[str, int], now: float, source: str) -> None:
        with self._lock:
            known = self._learned.setdefault(scope, {})
            for name, limit in limits.items():
                known[name] = Learned(max(0, int(limit)), now, source)

    def learned(self, scopes: Sequence[str]) -> dict[str, dict[str, Learned]]:
        with self._lock:
            return {s: dict(self._learned[s]) for s in scopes if self._learned.get(s)}

    def reset(self, scope: str | None = None) -> None:
        with self._lock:
            if scope is None:
                self._learned.clear()
                self._buckets.clear()
                self._reservations.clear()
                self._kept_until.clear()
                self._queries.clear()
                self._cooldowns.clear()
                self._performance.clear()
                self._counters.clear()
                self._declared.clear()
                self._spent.clear()
                self._leases.clear()
                self._generation += 1
                return
            self._declared.pop(scope, None)
            self._learned.pop(scope, None)
            self._performance.pop(scope, None)
            for key in [k for k in self._buckets if k[0] == scope]:
                del self._buckets[key]
            self._cooldowns.pop(scope, None)
            self._spent.pop(scope, None)
            self._leases.pop(scope, None)
            self._generation += 1
            for rid in [r.id for r in self._reservations.values() if r.endpoint == scope]:
                self._take(rid)

    def stats(self) -> dict[str, int]:
        """How much state is held: buckets, reservations and the rest, bounded by endpoints."""
        with self._lock:
            return {
                "buckets": sum(len(b) for b in self._buckets.values()),
                "reservations": len(self._reservations),
                "cooldowns": len(self._cooldowns),
                "spent": len(self._spent),
                "leases": sum(len(held) for held in self._leases.values()),
            }

    def close(self) -> None:
        pass
