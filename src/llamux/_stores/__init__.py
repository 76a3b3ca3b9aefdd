"""Quota stores: where usage is counted. The store only counts; strategies decide the order.

``store_from_url`` opens ``memory://``, ``sqlite:///path`` (or a bare path) and, with the
``[redis]`` extra, ``redis://host:port/db`` and ``redis+cluster://host:port[,...]`` (a Redis
Cluster). Back-ends are imported only when opened.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from .._errors import StoreError
from .._policy.known_limits import Learned
from .._policy.passing import Candidate, Pick
from .._policy.performance import Performance, Sample
from .._policy.quota import Cooldown, Cost, Refusal, Reservation, RuleUsage
from .._policy.rules import Scope


@runtime_checkable
class QuotaStore(Protocol):
    """Counts usage per scope and admits or refuses reservations atomically."""

    def reserve(
        self,
        endpoint: str,
        scopes: Sequence[Scope],
        cost: Cost,
        now: float | Callable[[], float],
        flight: float = 0.0,
    ) -> Reservation | Refusal:
        """Charge ``cost`` to every rule of every scope in one atomic step, or nothing.

        ``now`` may be a clock's ``now``: it is then read inside the atomic step (after any
        wait for a lock). With ``flight`` the charge is held in flight, in the bucket of
        ``now + flight``, until :meth:`settle` tells when the outcome was known."""
        ...

    def reserve_first(
        self,
        candidates: Iterable[Candidate],
        now: float | Callable[[], float],
        flight: float = 0.0,
    ) -> Pick:
        """:meth:`reserve` on the first of ``candidates`` (in order, taken one at a time: the
        rest are never made) that admits, in one atomic step (Redis: one per candidate, each
        on its own slot); the refusals of those passed. A candidate cooling down is refused
        without reading its buckets. The admitted candidate's ``ready`` is called before its
        charge is written."""
        ...

    def settle(
        self,
        reservation_id: str,
        tokens: int,
        now: float,
        sample: Sample | None = None,
        usd: int | None = None,
    ) -> bool:
        """Move the reservation's charges to the buckets of ``now``, the moment its outcome
        was known (a stream's first chunk: maybe before this call), with ``tokens`` in place
        of the estimate; False if unknown (settled, released or expired). ``sample``: the
        call's speed, folded into its endpoint's averages in the same step. ``usd``: the
        real price in micro-dollars in place of the estimated one (None: keep it)."""
        ...

    def release(self, reservation_id: str, now: float) -> bool:
        """Give the whole reservation back (the provider never accepted the call)."""
        ...

    def absorb(self, scope: str, window: str, requests: int, tokens: int, now: float) -> None:
        """Count usage llamux did not reserve (the provider says it happened) in ``scope``'s
        ``window`` (a window key such as ``minute``), as if charged at ``now``."""
        ...

    def declare(self, limits: Mapping[str, str], now: float) -> dict[str, str]:
        """Record the limits this config gives each scope (``limits_text``); returns, for
        the scopes whose recorded limits differed (another config on this store), those."""
        ...

    def counted_scopes(self, since: float) -> set[str]:
        """The scopes that hold usage charged at ``since`` or later."""
        ...

    def cool_down(self, scope: str, until: float, reason: str, kind: str, now: float) -> None:
        """Keep ``scope`` out of rotation until ``until`` (a later deadline wins)."""
        ...

    def cooldowns(self, now: float) -> dict[str, Cooldown]:
        """The cool-downs still in force at ``now``, by scope."""
        ...

    def usage(self, scopes: Sequence[Scope], now: float) -> list[RuleUsage]:
        """Every rule's usage at ``now``."""
        ...

    def in_flight(self, scopes: Sequence[Scope], now: float) -> dict[str, int]:
        """The live leases (requests in flight) of each of ``scopes`` that has a
        concurrency limit, by scope key."""
        ...

    def record(self, endpoint: str, sample: Sample) -> None:
        """Fold one call's measurements into the endpoint's moving averages."""
        ...

    def performance(self, endpoints: Sequence[str]) -> dict[str, Performance]:
        """The moving averages of the endpoints that have any."""
        ...

    def turn(self, key: str) -> int:
        """Atomically increment the counter ``key`` and return its new value (first: 1)."""
        ...

    def learn(self, scope: str, limits: Mapping[str, int], now: float, source: str) -> None:
        """Record limits the provider stated for ``scope`` (by rule name: rpm ... tpd), each
        replacing what was learned before, with ``now`` and ``source`` (headers, 429, ...)."""
        ...

    def learned(self, scopes: Sequence[str]) -> dict[str, dict[str, Learned]]:
        """What was learned for each of ``scopes`` that has anything: scope -> rule -> it."""
        ...

    def reset(self, scope: str | None = None) -> None:
        """Forget usage, reservations, cool-downs, measurements and learned limits of
        ``scope`` (or of all)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ReportsLosses(Protocol):
    """A store that can notice it lost data (Redis: a restart without persistence, a
    failover to a replica that lagged) and remembers it for a while."""

    def losses(self) -> list[str]:
        """A line for each loss of data noticed and still remembered, the oldest first."""
        ...


def default_store_url() -> str:
    """``LLAMUX_STORE`` if set, else an SQLite file in the user state directory."""
    url = os.environ.get("LLAMUX_STORE")
    if url:
        return url
    import platformdirs

    state = Path(platformdirs.user_state_dir("llamux", appauthor=False))
    return f"sqlite:///{state / 'quota.db'}"


def store_from_url(url: str | None = None) -> QuotaStore:
    """Open the store named by ``url`` (default: :func:`default_store_url`)."""
    url = url or default_store_url()
    if url == "memory://" or url == "memory":
        from .memory import MemoryStore

        return MemoryStore()
    if url.startswith(("redis+cluster://", "rediss+cluster://")):
        from .redis_cluster import RedisClusterStore  # type: ignore[import-not-found, unused-ignore]

        cluster: QuotaStore = RedisClusterStore(url)
        return cluster
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisStore  # type: ignore[import-not-found, unused-ignore]

        store: QuotaStore = RedisStore(url)
        return store
    if url.startswith("sqlite://"):
        # Like file URLs: sqlite:///tmp/q.db is /tmp/q.db, sqlite://q.db is ./q.db.
        path = url.removeprefix("sqlite://")
        from .sqlite import SQLiteStore

        return SQLiteStore(path or ":memory:")
    if "://" in url:
        from .redis_connect import masked

        raise StoreError(
            f"unknown store URL scheme in {masked(url)!r}; use memory://, "
            "sqlite:///path/to/file.db, redis://host:port/db or "
            "redis+cluster://host:port[,host:port...] (a Redis Cluster)"
        )
    from .sqlite import SQLiteStore

    return SQLiteStore(url)


def open_store(store: str | QuotaStore | None) -> QuotaStore:
    """``store`` itself if it is a store, else the store its URL names (default if None)."""
    if store is None or isinstance(store, str):
        return store_from_url(store)
    return store


__all__ = ["QuotaStore", "ReportsLosses", "default_store_url", "open_store", "store_from_url"]
