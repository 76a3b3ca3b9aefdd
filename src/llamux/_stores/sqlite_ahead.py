"""Requests reserved ahead: a process that keeps calling one endpoint far from its limits
reserves the next few calls' quota in the step of this one, and serves them from memory.

When a reservation the router makes for a call is admitted with every rule of its scopes at
least ``HEADROOM`` times the batch's cost away from its limit, the step charges ``UNITS``
more requests of the same cost to the same in-flight buckets and keeps them here (a lease).
The next calls to that endpoint, with the same cost and scopes, take a unit each without a
transaction: already counted in the file, in every window, a unit cannot let anything cross
a limit, in this process or any other. Its settle is an ordinary settle (held for the next
step, ``sqlite_later``). Every step of the process first gives back what its leases still
hold, so a lease lives until the process's next transaction: when it is used up, when
another request needs a step, on a read of usage, a cool-down, at close, or when the
flusher writes 20 ms later. Meanwhile other processes count the unused units (at most
``UNITS`` requests per endpoint, and only far from every limit), and this process does not
see a cool-down another process recorded until its next step (at most ``UNITS`` calls).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from .._policy.quota import Charge, Cost, Reservation
from .._policy.rules import Scope
from .sqlite_connections import FORKS

UNITS = 3
"""Requests reserved ahead per lease (beyond the one reserved for the call itself)."""
HEADROOM = 8
"""A lease is taken only if every rule has this many times the lease's cost left after it."""


@dataclass(slots=True)
class Lease:
    """Units of quota one step charged ahead for one endpoint, not yet taken."""

    scopes: Sequence[Scope]
    """The scopes it was judged on (by identity: limits learned since make new ones)."""
    cost: Cost
    charges: tuple[Charge, ...]
    remaining: tuple[tuple[str, str, int], ...]
    """What each rule had left once the whole lease was charged (a unit reports it)."""
    units: int


class Ahead:
    """The leases of one store in this process, by endpoint (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: dict[str, Lease] = {}
        self._forks = FORKS[0]

    @property
    def held(self) -> bool:
        return bool(self._leases)

    def take(self, endpoint: str, scopes: Sequence[Scope], cost: Cost) -> Lease | None:
        """A unit of ``endpoint``'s lease for a call of ``cost`` on ``scopes``, if it holds
        one (it is counted down here)."""
        if not self._leases:
            return None
        with self._lock:
            if self._forked():
                return None
            lease = self._leases.get(endpoint)
            if lease is None or lease.units <= 0 or lease.scopes is not scopes:
                return None
            if lease.cost != cost:
                return None
            lease.units -= 1
            return lease

    def grant(self, endpoint: str, lease: Lease) -> None:
        with self._lock:
            self._forked()
            self._leases[endpoint] = lease

    def end_all(self) -> list[Lease]:
        """End every lease: those still holding units, to give them back."""
        if not self._leases:
            return []
        with self._lock:
            if self._forked():
                return []
            leases, self._leases = self._leases, {}
        return [lease for lease in leases.values() if lease.units > 0]

    def _forked(self) -> bool:
        """In a fork's child, the parent's leases are the parent's: drop them."""
        if self._forks == FORKS[0]:
            return False
        self._forks = FORKS[0]
        self._leases = {}
        return True


def lease_for(reservation: Reservation, scopes: Sequence[Scope], cost: Cost) -> Lease | None:
    """The lease to charge beside ``reservation`` (just admitted on ``scopes`` at ``cost``),
    if every rule keeps ``HEADROOM`` times the lease's cost after it and none of the scopes
    limits requests in flight (a unit would need a lease of its own there)."""
    if any(scope.concurrency is not None for scope in scopes):
        return None
    by_key = {scope.key: scope for scope in scopes}
    remaining = []
    for key, name, left in reservation.remaining:
        rule = by_key[key].named.get(name)
        if rule is None:
            return None
        amount = cost.of(rule.metric) * UNITS
        if left - amount < amount * HEADROOM:
            return None
        remaining.append((key, name, left - amount))
    return Lease(scopes, cost, reservation.charges, tuple(remaining), UNITS)


def unit_of(lease: Lease, endpoint: str, at: float) -> Reservation:
    """The reservation of a unit taken from ``lease`` at ``at``: its charges are the lease's."""
    cost = lease.cost
    return Reservation(
        os.urandom(16).hex(),
        endpoint,
        cost.tokens,
        at,
        lease.charges,
        lease.remaining,
        (),
        cost.usd,
    )


def lease_rows(lease: Lease) -> list[tuple[str, str, int, int, int, int]]:
    """What ``lease``'s units add to its buckets (given back as releases, ``_release``)."""
    n, cost = lease.units, lease.cost
    return [
        (c.scope, c.window, c.bucket, cost.requests * n, cost.tokens * n, cost.usd * n)
        for c in lease.charges
    ]
