"""The ``query`` side of a router: what a reservation the caller sends itself answers
(``query_props``), and what the router remembers of it until the caller settles it
(``Queries``): the lease of a gated endpoint and the prices of a budgeted one."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from .._policy.money import MICRO, usage_price
from .._policy.quota import SETTLE_DEADLINE, UNSETTLED_KEPT, Reservation
from .._policy.rules import UNLIMITED, Scope, in_units
from .._policy.tokens import usage_tokens

if TYPE_CHECKING:
    from .._clock import Clock
    from .._config.load import Endpoint
    from .._stores import QuotaStore
    from .quotas import Quotas

log = logging.getLogger("llamux")

QUERIED_KEPT = 10_000
"""``query`` reservations on gated endpoints remembered for their settle, at most."""


def query_props(
    ep: Endpoint, own: Scope, reservation: Reservation, dry_run: bool, budgeted: bool
) -> dict[str, Any]:
    """What ``query`` answers besides provider, model and endpoint: where to send, the
    endpoint's own limits and what they have left after this request, the reservation to
    settle (None for a dry run), its estimate, its pool and its estimated price."""
    props: dict[str, Any] = {
        "base_url": ep.base_url,
        "api_key_env": ep.api_key_env,
        "limits": {
            rule.name: in_units(rule, rule.limit) for rule in own.rules if rule.limit != UNLIMITED
        },
        "remaining": {
            rule: in_units(own.named[rule], left)
            for scope, rule, left in reservation.remaining
            if scope == own.key and own.named[rule].limit != UNLIMITED
        },
        "reservation": None if dry_run else reservation.id,
        "tokens": reservation.tokens,
    }
    if ep.pool:
        props["pool"] = ep.pool
    if budgeted:
        props["usd"] = reservation.usd / MICRO
    return props


class Queries:
    """The ``query`` reservations one router remembers until they are settled or released:
    on a gated endpoint (its lease is given back then), on a budgeted one (the settle prices
    it from the real usage). A settle or release that finds nothing is said once."""

    def __init__(self, store: QuotaStore, quotas: Quotas, clock: Clock) -> None:
        self.store = store
        self.quotas = quotas
        self.clock = clock
        self._queried: dict[str, str] = {}
        """Reservations on gated endpoints: reservation id -> endpoint id."""
        self._priced: dict[str, Endpoint] = {}
        """Reservations on budgeted endpoints: ``settle`` re-prices them."""
        self._missed = False
        """Whether a settle or release found no reservation yet (warned once)."""
        self._lock = threading.Lock()

    def admitted(self, ep: Endpoint, reservation: Reservation, dry_run: bool) -> None:
        """``query`` reserved ``reservation`` on ``ep`` (or, with ``dry_run``, only looked)."""
        if dry_run:
            self.quotas.unlease(ep.id)  # a gated endpoint's lease: nothing holds it
            return
        with self._lock:
            if ep.id in self.quotas.gated:  # its lease is given back by settle() or release()
                if len(self._queried) >= QUERIED_KEPT:
                    self._queried.clear()
                self._queried[reservation.id] = ep.id
            if ep.id in self.quotas.budgeted:
                if len(self._priced) >= QUERIED_KEPT:
                    self._priced.clear()
                self._priced[reservation.id] = ep

    def settle(self, reservation: str, usage: Any) -> bool:
        """See ``Router.settle``."""
        tokens = usage_tokens(usage)
        if tokens is None:
            raise TypeError("settle() needs a token count or a response/usage with total_tokens")
        self._unlease(reservation)
        ep = self._priced.pop(reservation, None)
        usd = None if ep is None else usage_price(usage, ep.input_cost, ep.output_cost)
        return self._found(self.store.settle(reservation, tokens, self.clock.now(), None, usd))

    def release(self, reservation: str) -> bool:
        """See ``Router.release``."""
        self._unlease(reservation)
        return self._found(self.store.release(reservation, self.clock.now()))

    def _found(self, found: bool) -> bool:
        """``found``, with a warning the first time a reservation was not found."""
        if not found and not self._missed:
            self._missed = True
            log.warning(
                "llamux: settle() or release() found no such reservation: it was settled or "
                "released already, or it is older than the settle deadline (%d s after the "
                "query), or more than %d unsettled ones were made on its endpoint since. Its "
                "estimate stays counted; settle within the deadline to correct it. (Said once.)",
                SETTLE_DEADLINE,
                UNSETTLED_KEPT,
            )
        return found

    def _unlease(self, reservation: str) -> None:
        """A reservation on a gated endpoint gives its lease back when settled."""
        endpoint = self._queried.pop(reservation, None)
        if endpoint is not None:
            self.quotas.unlease(endpoint)
