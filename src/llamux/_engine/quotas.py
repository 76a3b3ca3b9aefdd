"""The quotas of a router's endpoints, with each limit as best llamux knows it now.

A limit cell is a number, ``auto`` or empty (see ``_policy/known_limits``). What a provider
states (its answers' headers, a 429 that names a limit, a probe) is recorded in the store,
shared by every process and machine on it; each router reads it back at most every
``REFRESH`` seconds and at once when it learns something itself. The scopes a decision uses
are rebuilt whenever what is known changes (``version`` counts the changes).

An endpoint whose ``auto`` limits are all still unknown is *gated*: this router sends it at
most one request at a time (a lease, given back when the outcome is known) until an answer
states something, so an unknown endpoint is never hit with a burst. The lease is per router
(one process); other processes each hold their own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .._config.endpoint import Limits, limit_name
from .._errors import StoreError
from .._policy.known_limits import (
    TIGHTENED,
    Known,
    Learned,
    declared,
    enforced,
    gated,
    known_limits,
)
from .._policy.rules import UNLIMITED, Scope
from .._policy.scoping import catalog_pool, limits_text, quota_key, scopes_for
from .._policy.window import WINDOW_SECONDS

if TYPE_CHECKING:
    from .._config.catalog import ModelLimits
    from .._config.load import Endpoint, Pool
    from .._policy.ratelimits import Hint
    from .._stores import QuotaStore

log = logging.getLogger("llamux")

REFRESH = 5.0
"""Seconds between two reads of what other processes learned."""
LEASE_POLL = 0.25
"""Seconds after which a request waiting for a gated endpoint's lease looks again."""
WINDOWS = tuple(WINDOW_SECONDS)
"""The windows a stated limit may name to be learned: every window llamux counts."""


def catalog_entry(ep: Endpoint) -> ModelLimits | None:
    """The catalog's entry for ``ep``'s provider and model, if it has one."""
    from .._config.catalog import model_limits

    return model_limits(ep.provider, ep.model)


class Quotas:
    """Each endpoint's scopes (its own quota, then its pool's) with the limits known now."""

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        pools: Mapping[str, Pool],
        store: QuotaStore,
        now: float,
        catalog: Callable[[Endpoint], ModelLimits | None] = catalog_entry,
    ) -> None:
        self.endpoints = tuple(endpoints)
        self.pools = dict(pools)
        self.store = store
        self.entries = {ep.id: catalog(ep) for ep in self.endpoints}
        """Each endpoint's catalog entry (its provider's and model's), if any."""
        self.catalog = {k: e.known if e is not None else None for k, e in self.entries.items()}
        self.own = {ep.id: quota_key(ep) for ep in self.endpoints}
        self._lock = threading.Lock()
        self._changing = threading.Lock()
        """Held while what is known is read, merged and rebuilt."""
        self._leases: dict[str, float] = {}
        """Gated endpoints with a request in flight, by id: until when the lease holds."""
        self.version = 0
        self._learned: dict[str, dict[str, Learned]] = {}
        self._read_at = now
        self.scopes: dict[str, list[Scope]] = {}
        self.reach: dict[str, tuple[int, int]] = {}
        self.known: dict[str, tuple[Known, ...]] = {}
        self.gated: frozenset[str] = frozenset()
        self.budgeted: frozenset[str] = frozenset()
        """The endpoints one of whose scopes has a dollar budget: their requests are priced."""
        self._told: set[tuple[str, str, int]] = set()
        self._build(self._read())

    # -- what is known --------------------------------------------------------------

    def learned(self, endpoint: str) -> dict[str, Learned]:
        """What the provider stated for ``endpoint``'s own quota, by rule name."""
        return dict(self._learned.get(self.own[endpoint], {}))

    def declared(self) -> dict[str, str]:
        """Each scope's configured limits as one line (``auto`` kept as such): what every
        process with this config declares, whatever each has learned."""
        configured = scopes_for(self.endpoints, self.pools)
        texts = {scope.key: limits_text(scope) for group in configured.values() for scope in group}
        for ep in self.endpoints:
            texts[self.own[ep.id]] = declared(ep.limits, dict(ep.resets))
        return texts

    def refresh(self, now: float) -> None:
        """Read what other processes learned, if ``REFRESH`` seconds have passed."""
        if now - self._read_at < REFRESH:
            return
        self._read_at = now
        try:
            fresh = self._read()
        except StoreError:
            return  # the decision's own store step says what is wrong
        with self._changing:
            if fresh != self._learned:
                self._build(fresh)

    def learn(
        self, ep: Endpoint, hints: Iterable[Hint], now: float, source: str, pool: bool = False
    ) -> None:
        """Record the limits ``hints`` state for ``ep``'s own quota, or with ``pool`` for its
        pool's (an account-wide limit, such as OpenRouter's daily ``:free`` requests); the
        first hint per rule wins (the dialects list the binding one first). Only what
        changed is written."""
        stated: dict[str, int] = {}
        for hint in hints:
            if hint.limit is not None and hint.window in WINDOWS:
                stated.setdefault(limit_name(hint.metric, hint.window), hint.limit)
        own = f"pool:{ep.pool}" if pool and ep.pool else self.own[ep.id]
        have = self._learned.get(own, {})
        changed = {n: v for n, v in stated.items() if n not in have or have[n].limit != v}
        if not changed:
            return
        self.store.learn(own, changed, now, source)
        with self._changing:  # one change at a time: none is lost to another thread's
            fresh = {key: dict(rules) for key, rules in self._learned.items()}
            rules = fresh.setdefault(own, {})
            for name, limit in changed.items():
                rules[name] = Learned(limit, now, source)
            self._build(fresh)
        self._report(ep)

    # -- one request at a time while nothing is known ------------------------------------

    def lease(self, endpoint: str, now: float, until: float) -> bool:
        """Whether a request may go to ``endpoint`` now: always, unless it is gated and
        another request holds its lease (one that lapsed at ``until`` is taken over)."""
        if endpoint not in self.gated:
            return True
        with self._lock:
            held = self._leases.get(endpoint)
            if held is not None and held > now:
                return False
            self._leases[endpoint] = until
            return True

    def unlease(self, endpoint: str) -> None:
        """The request holding ``endpoint``'s lease (if any) has its outcome."""
        if self._leases:
            with self._lock:
                self._leases.pop(endpoint, None)

    # -- building ------------------------------------------------------------------------

    def _read(self) -> dict[str, dict[str, Learned]]:
        pools = {f"pool:{ep.pool}" for ep in self.endpoints if ep.pool}
        return self.store.learned(sorted({*self.own.values(), *pools}))

    def _pools(self, learned: dict[str, dict[str, Learned]]) -> dict[str, Pool]:
        """The pools the endpoints draw on, each limit lowered to what the provider stated."""
        found: dict[str, Pool] = {}
        for ep in self.endpoints:
            if not ep.pool or ep.pool in found:
                continue
            pool = self.pools.get(ep.pool) or catalog_pool(ep.pool)
            if pool is None:
                continue  # scopes_for says what is wrong
            told = learned.get(f"pool:{pool.name}", {})
            lowered: dict[str, Any] = {
                name: min(limit, told[name].limit) if name in told else limit
                for name, limit in pool.limits.items()
            }
            found[ep.pool] = replace(pool, limits=Limits(**lowered))
        return found

    def _build(self, learned: dict[str, dict[str, Learned]]) -> None:
        known = {
            ep.id: known_limits(ep.limits, self.catalog[ep.id], learned.get(self.own[ep.id], {}))
            for ep in self.endpoints
        }
        limits = {key: enforced(rows) for key, rows in known.items()}
        scopes = scopes_for(self.endpoints, {**self.pools, **self._pools(learned)}, limits)
        gates = frozenset(
            ep.id for ep in self.endpoints if gated(known[ep.id], learned.get(self.own[ep.id], {}))
        )
        with self._lock:
            self._learned = learned
            self.known = known
            self.scopes = scopes
            self.reach = {ep.id: reach_of(ep, scopes[ep.id]) for ep in self.endpoints}
            self.gated = gates
            self.budgeted = frozenset(
                ep.id for ep in self.endpoints if any(s.budgeted for s in scopes[ep.id])
            )
            self.version += 1

    def _report(self, ep: Endpoint) -> None:
        """Say once per value when the provider states less than the table allows."""
        for row in self.known[ep.id]:
            if row.origin != TIGHTENED or row.learned is None:
                continue
            told = (ep.id, row.name, row.learned.limit)
            if told in self._told:
                continue
            self._told.add(told)
            log.warning(
                "endpoint %s: your table says %s %s; the provider states %d (%s): llamux keeps "
                "to %d. Lower the table's value, or write auto",
                ep.id,
                row.name,
                row.configured,
                row.learned.limit,
                row.learned.source,
                row.learned.limit,
            )


def reach_of(ep: Endpoint, scopes: Sequence[Scope]) -> tuple[int, int]:
    """The most requests and tokens one request may ever cost on ``ep``: its scopes'
    smallest limits and its context."""
    requests = min((scope.ceiling[0] for scope in scopes), default=UNLIMITED)
    tokens = min((scope.ceiling[1] for scope in scopes), default=UNLIMITED)
    return requests, tokens if ep.context is None else min(tokens, ep.context)
