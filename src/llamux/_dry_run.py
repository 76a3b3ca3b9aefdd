"""A dry run of one decision: which endpoint would admit a request now, nothing charged.

:class:`DryRun` stands for the store in a ``Router.query(..., dry_run=True)`` decision: the
same admission (candidates, strategy order, keys, sizes, cool-downs) runs against it, and
its ``reserve_first`` decides from the usage it reads instead of charging it. Nothing is
written: no reservation, no count, no turn taken, no refusal remembered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from ._policy.passing import Candidate, Pick, cooling, walk
from ._policy.quota import (
    LEASE_POLL,
    Refusal,
    Reservation,
    RuleUsage,
    crowded,
    later,
    read_now,
    shown,
    too_small,
)
from ._policy.rules import REQUESTS

if TYPE_CHECKING:
    from ._policy.known_limits import Learned
    from ._policy.performance import Performance, Sample
    from ._policy.quota import Cooldown, Cost
    from ._policy.rules import Scope
    from ._stores import QuotaStore


class DryRun:
    """A read-only view of ``store`` for one decision. ``reserve_first`` answers as the store
    would, from the usage and cool-downs it reads now (a refusal's ``retry_at`` is when the
    oldest counted usage frees: it may take longer for a large request); ``turn`` takes no
    turn (a strategy that rotates sees its first turn). Its writes are refused: a decision
    never makes them, and a dry run must not."""

    def __init__(self, store: QuotaStore) -> None:
        self.store = store

    def __repr__(self) -> str:
        return f"DryRun({self.store!r})"

    # -- the decision --------------------------------------------------------------------

    def reserve(
        self,
        endpoint: str,
        scopes: Sequence[Scope],
        cost: Cost,
        now: float | Callable[[], float],
        flight: float = 0.0,
    ) -> Reservation | Refusal:
        pick = self.reserve_first([Candidate(endpoint, scopes, cost)], now, flight)
        return pick.reservation or pick.refusals[0]

    def reserve_first(
        self,
        candidates: Iterable[Candidate],
        now: float | Callable[[], float],
        flight: float = 0.0,
    ) -> Pick:
        at = read_now(now)
        resting = self.store.cooldowns(at)

        def one(candidate: Candidate, _: bool) -> Reservation | Refusal:
            return cooling(candidate, resting, at) or self._judge(candidate, at)

        return walk(candidates, None, at, one)

    def _judge(self, candidate: Candidate, now: float) -> Reservation | Refusal:
        """Would ``candidate`` admit its cost now? The refusal that frees last, or an
        unrecorded reservation (no id, no charges) with what would be left."""
        worst: Refusal | None = None
        left = []
        for usage in self.store.usage(candidate.scopes, now):
            wanted = candidate.cost.of(usage.rule.metric)
            if usage.used + wanted > usage.limit:
                worst = later(worst, _refusal(candidate.endpoint, usage, wanted))
            left.append((usage.scope, usage.rule.name, max(0, usage.limit - usage.used - wanted)))
        held = self.store.in_flight(candidate.scopes, now)
        for scope in candidate.scopes:
            if scope.key in held:  # a count, not expiries: a poll's retry time
                leases = [now + LEASE_POLL] * held[scope.key]
                worst = later(
                    worst, crowded(candidate.endpoint, scope, leases, candidate.cost, now)
                )
        if worst is not None:
            return worst
        cost = candidate.cost
        return Reservation("", candidate.endpoint, cost.tokens, now, (), tuple(left), (), cost.usd)

    # -- reads: the store's own -----------------------------------------------------------

    def cooldowns(self, now: float) -> dict[str, Cooldown]:
        return self.store.cooldowns(now)

    def usage(self, scopes: Sequence[Scope], now: float) -> list[RuleUsage]:
        return self.store.usage(scopes, now)

    def performance(self, endpoints: Sequence[str]) -> dict[str, Performance]:
        return self.store.performance(endpoints)

    def in_flight(self, scopes: Sequence[Scope], now: float) -> dict[str, int]:
        return self.store.in_flight(scopes, now)

    def learned(self, scopes: Sequence[str]) -> dict[str, dict[str, Learned]]:
        return self.store.learned(scopes)

    def counted_scopes(self, since: float) -> set[str]:
        return self.store.counted_scopes(since)

    def turn(self, key: str) -> int:
        return 1

    # -- writes: never in a dry run -------------------------------------------------------

    def settle(
        self,
        reservation_id: str,
        tokens: int,
        now: float,
        sample: Sample | None = None,
        usd: int | None = None,
    ) -> bool:
        raise _writes("settle")

    def release(self, reservation_id: str, now: float) -> bool:
        raise _writes("release")

    def absorb(self, scope: str, window: str, requests: int, tokens: int, now: float) -> None:
        raise _writes("absorb")

    def declare(self, limits: Mapping[str, str], now: float) -> dict[str, str]:
        raise _writes("declare")

    def cool_down(self, scope: str, until: float, reason: str, kind: str, now: float) -> None:
        raise _writes("cool_down")

    def record(self, endpoint: str, sample: Sample) -> None:
        raise _writes("record")

    def learn(self, scope: str, limits: Mapping[str, int], now: float, source: str) -> None:
        raise _writes("learn")

    def reset(self, scope: str | None = None) -> None:
        raise _writes("reset")

    def close(self) -> None:
        """The store is the router's: it stays open."""


def _refusal(endpoint: str, usage: RuleUsage, wanted: int) -> Refusal:
    """The refusal of ``usage``'s rule, worded as a store's."""
    rule = usage.rule
    reason = f"{rule.name} {shown(rule, usage.used)}/{shown(rule, rule.limit)} used"
    if rule.metric != REQUESTS:
        reason += f", {shown(rule, wanted)} more needed"
    retry_at = usage.next_free_at if wanted <= rule.limit else None
    if retry_at is None:
        reason = too_small(rule, wanted)
    return Refusal(
        endpoint, usage.scope, rule.name, usage.used, rule.limit, wanted, retry_at, reason
    )


def _writes(operation: str) -> TypeError:
    return TypeError(f"a dry run writes nothing to the store, so it has no {operation}()")
