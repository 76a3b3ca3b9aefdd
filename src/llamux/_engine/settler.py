"""After the call: settle the reservation, carry out failover verdicts, learn from headers.

Sync store I/O only; the async router runs these methods in a worker thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._errors import InvalidRequest, ProviderError, StoreError
from .._policy.feedback import classify, debits, exhausted, rule_name
from .._policy.money import usage_price
from .._policy.performance import Sample, measured
from .._policy.tokens import usage_tokens
from .._policy.window import WINDOW_SECONDS, Window
from .._stores.waiting import WouldBlock
from .served import Attempt

if TYPE_CHECKING:
    from .._clock import Clock
    from .._config.load import Endpoint
    from .._policy.ratelimits import Hint
    from .._stores import QuotaStore
    from .admission import Admitted
    from .quotas import Quotas

log = logging.getLogger("llamux")


PENDING_LIMIT = 10_000
"""Reservation updates kept while the store is unreachable; beyond this the oldest are
dropped (their estimates stay charged: conservative)."""

Pending = tuple[str, str, int, float, Sample | None, int | None]
"""A store update to apply later: operation, reservation id, tokens, when it happened, the
call's speed, its real price in micro-dollars (None: keep the estimate's)."""


class Settler:
    """Turns what a provider answered into store updates for one router.

    An answer the provider gave always reaches the caller: when the store cannot be reached
    to settle it (Redis down, say), the update is kept (bounded) and applied, once, when the
    store answers again; each is idempotent in the store (a reservation settles once)."""

    def __init__(self, store: QuotaStore, clock: Clock, quotas: Quotas) -> None:
        self.store = store
        self.clock = clock
        self.quotas = quotas
        self._pending: deque[Pending] = deque()
        self._lock = threading.Lock()
        self._told: set[str] = set()
        """Endpoints already said to take no such request (one warning each)."""

    def settle(
        self,
        admitted: Admitted,
        tokens: int | None,
        known: float | None = None,
        sample: Sample | None = None,
        usage: Any = None,
    ) -> None:
        """Replace the estimate by the real usage (``None``: keep the estimate); the charge
        moves to ``known``, when the outcome was known (default: now; for a stream, its
        first chunk: the provider had the request by then). ``sample``, the call's speed,
        goes to the store in the same step. ``usage`` (the usage object) re-prices a
        request on a budgeted endpoint from its prompt and completion tokens."""
        reservation = admitted.reservation
        actual = reservation.tokens if tokens is None else tokens
        at = self.clock.now() if known is None else known
        self.quotas.unlease(admitted.endpoint.id)
        self._apply(("settle", reservation.id, actual, at, sample, self.priced(admitted, usage)))

    def priced(self, admitted: Admitted, usage: Any) -> int | None:
        """The real price of a request on a budgeted endpoint, in micro-dollars, from the
        prompt and completion tokens of ``usage`` (None: not budgeted, or not told apart:
        the estimate's price stays)."""
        ep = admitted.endpoint
        if ep.id not in self.quotas.budgeted:
            return None
        return usage_price(usage, ep.input_cost, ep.output_cost)

    @property
    def pending(self) -> int:
        """How many reservation updates wait for the store to come back."""
        return len(self._pending)

    def _apply(self, update: Pending) -> None:
        """Apply ``update`` (after any kept ones), or keep it if the store is unreachable."""
        if self._pending and not self._flush():
            self._keep(update)
            return
        try:
            self._run(update)
        except StoreError as error:
            self._keep(update, error)

    def _run(self, update: Pending) -> None:
        operation, rid, tokens, now, sample, usd = update
        if operation == "settle":
            self.store.settle(rid, tokens, now, sample, usd)
        else:
            self.store.release(rid, now)

    def _flush(self) -> bool:
        """Apply the kept updates in order; False if the store is still unreachable."""
        while True:
            with self._lock:
                if not self._pending:
                    return True
                update = self._pending.popleft()
            try:
                self._run(update)
            except (StoreError, WouldBlock) as error:
                with self._lock:
                    self._pending.appendleft(update)
                if isinstance(error, WouldBlock):
                    raise  # kept: applied when the work is repeated off the loop
                return False

    def _keep(self, update: Pending, error: StoreError | None = None) -> None:
        with self._lock:
            first = not self._pending
            if len(self._pending) >= PENDING_LIMIT:
                self._pending.popleft()
                log.warning("the quota store is still unreachable; an update was dropped")
            self._pending.append(update)
        if first and error is not None:
            log.warning(
                "the quota store is unreachable (%s); the answer is delivered and its usage "
                "is kept here until the store is back (at most %d updates)",
                error,
                PENDING_LIMIT,
            )

    def ender(
        self, admitted: Admitted, started: float
    ) -> Callable[[Any, ProviderError | None], Attempt | None]:
        """What to do when a stream ends: settle with its usage, its charge moved to the
        moment of its first chunk (now), and record its speed (``started``: when the call
        began, by ``time.perf_counter``); or, cut by ``error``, carry out its verdict and
        return the failed attempt."""
        ttft = time.perf_counter() - started
        first = self.clock.now()

        def end(usage: Any, error: ProviderError | None) -> Attempt | None:
            if error is not None:
                return self.failed(admitted, error)[0]
            elapsed = time.perf_counter() - started
            sample = measured(elapsed, usage, ttft)
            self.settle(admitted, usage_tokens(usage), first, sample, usage)
            return None

        return end

    def refused(self, admitted: Admitted, exc: Exception) -> Exception:
        """An exception that is not the provider's (the SDK refusing the parameters, say):
        the call never left, so the reservation is given back. Returns what to raise."""
        self.quotas.unlease(admitted.endpoint.id)
        self._apply(("release", admitted.reservation.id, 0, self.clock.now(), None, None))
        if isinstance(exc, TypeError):
            return InvalidRequest(f"the request's parameters were refused: {exc}")
        return exc

    def failed(self, admitted: Admitted, error: ProviderError) -> tuple[Attempt, bool]:
        """Carry out the failover verdict for ``error``: the failed attempt, and whether to
        try the next endpoint."""
        now = self.clock.now()
        ep = admitted.endpoint
        self.quotas.unlease(ep.id)
        verdict = classify(error, now, dialect=ep.dialect, day_reset_at=day_end(ep, now))
        if error.status == 429:
            self._stated(admitted, error, now)
        rid = admitted.reservation.id
        if verdict.usage == "release":
            self._apply(("release", rid, 0, now, None, None))
        elif verdict.usage == "requests":  # counted, but no tokens spent: nothing to pay
            self._apply(("settle", rid, 0, now, None, 0))
        else:
            self._apply(("settle", rid, admitted.reservation.tokens, now, None, None))
        if verdict.rest > 0:
            own = self.quotas.scopes[ep.id][0].key
            self.store.cool_down(own, now + verdict.rest, verdict.reason, verdict.kind, now)
        if (
            error.status == 404
            and verdict.failover
            and not verdict.rest
            and ep.id not in self._told
        ):
            self._told.add(ep.id)
            log.warning(
                "endpoint %s does not take this kind of request (%s); llamux tries the next "
                "endpoint each time: correct its serves column",
                ep.id,
                verdict.reason,
            )
        if verdict.kind == "disabled":
            log.warning(
                "endpoint %s disabled for %.0f h: %s. Check %s and the model name, then run "
                "`llamux reset %s`.",
                ep.id,
                verdict.rest / 3600,
                verdict.reason,
                ep.api_key_env,
                ep.id,
            )
        return Attempt(ep.id, "failed", verdict.reason, error.status), verdict.failover

    def learn(self, admitted: Admitted, headers: Mapping[str, str]) -> None:
        """Tighten local state where the provider's headers know better; never loosen it.
        Skipped (with a warning) while the store is unreachable: the answer still goes out."""
        try:
            self._learn(admitted, headers)
        except StoreError as error:
            log.warning("could not record the provider's rate-limit headers: %s", error)

    def _learn(self, admitted: Admitted, headers: Mapping[str, str]) -> None:
        from .._policy.ratelimits import parse_headers

        ep = admitted.endpoint
        now = self.clock.now()
        hints = parse_headers(ep.dialect, headers, now)
        self.quotas.unlease(ep.id)
        if not hints:
            return
        self.quotas.learn(ep, hints, now, "headers")
        own = self.quotas.scopes[ep.id][0]
        believed = {
            rule: left for scope, rule, left in admitted.reservation.remaining if scope == own.key
        }
        rests = exhausted(hints, now, believed)
        fresh: dict[str, int] | None = None
        if rests:  # the reservation's view is older than the answer: ask the store now
            fresh = {u.rule.name: u.remaining for u in self.store.usage([own], now)}
            rests = exhausted(hints, now, fresh)
        for until, kind, reason in rests:
            self.store.cool_down(own.key, until, reason, kind, now)
        if not debits(hints, believed):
            return  # the common case: the provider has at least what llamux counted
        if fresh is None:
            fresh = {u.rule.name: u.remaining for u in self.store.usage([own], now)}
        for name, amount in debits(hints, fresh):
            window = next(r.window for r in own.rules if r.name == name)
            requests, tokens = (amount, 0) if name.startswith("r") else (0, amount)
            self.store.absorb(own.key, window.key, requests, tokens, now)

    def _stated(self, admitted: Admitted, error: ProviderError, now: float) -> None:
        """Learn the limits a 429 states, and the usage it states ("Used 197204")."""
        from .._policy.rate_limited import stated_limits

        ep = admitted.endpoint
        hints = stated_limits(ep.dialect, error.headers, error.body, now)
        self.stated(ep, hints, now, "429")

    def stated(
        self, ep: Endpoint, hints: Sequence[Hint], now: float, source: str, pool: bool = False
    ) -> None:
        """Record the limits ``hints`` state (``pool``: of ``ep``'s pool), and absorb the
        usage they state where llamux counted less. Never fails the caller: a store error
        is logged."""
        if not hints:
            return
        try:
            self.quotas.learn(ep, hints, now, source, pool)
            scopes = self.quotas.scopes[ep.id]
            scope = scopes[-1] if pool and len(scopes) > 1 else scopes[0]
            used = {u.rule.name: u.used for u in self.store.usage([scope], now)}
            for hint in hints:
                if hint.used is None or hint.window not in WINDOW_SECONDS:
                    continue
                name = rule_name(hint)
                rule = scope.named.get(name)
                if rule is None or hint.used <= used.get(name, 0):
                    continue
                amount = hint.used - used.get(name, 0)
                requests, tokens = (amount, 0) if hint.metric == "requests" else (0, amount)
                self.store.absorb(scope.key, rule.window.key, requests, tokens, now)
        except StoreError as exc:
            log.warning("could not record the limits %s stated: %s", ep.id, exc)


def day_end(ep: Endpoint, now: float) -> float | None:
    """When the endpoint's calendar day ends, if its daily limits reset at a fixed time."""
    tz = ep.reset_for("rpd") or ep.reset_for("tpd")
    if tz is None:
        return None
    day = Window("day", tz)
    return day.frees_at(day.charge_bucket(now))
