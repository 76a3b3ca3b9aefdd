"""What a store holds that a config disagrees with: usage no configured endpoint or pool
owns, quotas another config (or this one before an edit) gave other limits, and data the
store noticed it lost."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from ._policy.window import BUCKET_SECONDS, WINDOW_SECONDS

if TYPE_CHECKING:
    from ._policy.rules import Scope
    from ._stores import QuotaStore


def declare_limits(store: QuotaStore, limits: Mapping[str, str], now: float) -> list[str]:
    """Record this config's limits of each quota (``limits``: scope -> its configured limits
    as one line); a line for each quota whose recorded limits differed (two processes
    admitting one quota by different limits)."""
    differing = store.declare(limits, now)
    return [
        f"quota {key!r} was last configured with limits {old!r} (by another config on this "
        f"store, or before an edit); this one has {limits[key]!r}: each process admits by "
        "its own, so give every config that shares the store the same limits"
        for key, old in sorted(differing.items())
    ]


def store_losses(store: QuotaStore) -> list[str]:
    """A line for each loss of data the store noticed and still remembers (a Redis server
    restarted without persistence, a failover to a replica that lagged): its usage from
    before is forgotten there."""
    from ._stores import ReportsLosses

    return store.losses() if isinstance(store, ReportsLosses) else []


def unowned_usage(store: QuotaStore, scopes: Iterable[Sequence[Scope]], now: float) -> list[str]:
    """A line for each scope with usage that still counts and no configured endpoint or
    pool draws on (renamed or removed, or another config shares the store)."""
    known = {scope.key for group in scopes for scope in group}
    since = now - WINDOW_SECONDS["day"] - BUCKET_SECONDS["day"]
    return [
        f"the store holds usage of {scope!r}, which no configured endpoint or pool draws on "
        "(renamed or removed, or another config shares this store); it counts for nothing "
        "here"
        for scope in sorted(store.counted_scopes(since) - known)
    ]
