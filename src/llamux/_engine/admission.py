"""Admission: for one request, reserve endpoints one at a time in strategy order.

Each call to :meth:`Admission.next` reserves the next endpoint that admits the request
(or says how long to wait for capacity, or raises when nothing is left). The router calls it
directly (sync) or from a worker thread (async), so store I/O never blocks an event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._config.load import DEFAULT_MAX_OUTPUT
from .._errors import InvalidRequest, NoEndpointAvailable, RequestTooLarge
from .._policy.kinds import CHAT, EMBEDDINGS, Kind
from .._policy.money import price
from .._policy.passing import Candidate, Pick
from .._policy.quota import Cost, Refusal, Reservation, never_fits
from .._policy.rules import Scope
from .._policy.strategies import HEADROOM, PERFORMANCE, TURN, Facts, Request, Strategy
from .._stores.waiting import WouldBlock
from .inputs import capabilities_needed
from .quotas import LEASE_POLL
from .served import Attempt
from .walk import PREFIXES_KEPT, Prefix, Walk, learned, prefix_key

if TYPE_CHECKING:
    from .._clock import Clock
    from .._config.load import Endpoint
    from .._stores import QuotaStore
    from .keys import Keys
    from .quotas import Quotas

GATED_LEASE = 60.0
"""Seconds a ``query`` holds a gated endpoint's lease if it is never settled."""


@dataclass(frozen=True, slots=True)
class Admitted:
    """An endpoint whose quota is reserved for the request, and the key to call it with."""

    endpoint: Endpoint
    reservation: Reservation
    api_key: str = field(repr=False)


class Admission:
    """The reservation state of one request: what was tried, what was refused, until when
    to wait. Not thread-safe: one request, one caller at a time."""

    def __init__(
        self,
        *,
        messages: Any,
        params: Mapping[str, Any],
        candidates: Sequence[Endpoint],
        quotas: Quotas,
        store: QuotaStore,
        strategy: Strategy,
        clock: Clock,
        keys: Keys,
        prefixes: dict[tuple[object, ...], Prefix] | None = None,
        route: str = "auto",
        flight: float = 0.0,
        prepare: Callable[[Endpoint, str], None] | None = None,
        kind: Kind = CHAT,
    ) -> None:
        self.kind = kind
        """What kind of request it is (chat, embeddings, responses, completions)."""
        self.messages = messages
        """Its input: a chat's messages, an embeddings or Responses ``input``, a prompt."""
        self.prompt, self.request, self.needs, self.inputs = read_request(kind, messages, params)
        self.params = params
        self.route = route
        self.candidates = candidates
        self.quotas = quotas
        """Each endpoint's scopes and reach, with the limits known now (``Quotas``)."""
        self.prefixes = prefixes
        """Refused prefixes learned by earlier decisions (the router's, shared): see ``walk``."""
        self.store = store
        self.strategy = strategy
        self.clock = clock
        self.keys = keys
        self.flight = flight
        """Seconds a call can take to show its outcome: reservations are charged in flight
        (0 for ``query``: the caller sends, and re-stamps by settling)."""
        self.prepare = prepare
        """Readies the client of an endpoint before it is reserved (nothing slow may sit
        between the charge and the send)."""
        self.deadline = clock.now() + float(params.get("wait") or 0)
        self.tried: set[str] = set()
        self.current: str | None = None
        """The endpoint reserved last: the one being called (a batch's progress reads it)."""
        self.attempts: list[Attempt] = []
        self._leased: set[str] = set()
        """Gated endpoints whose lease this decision took (see ``Quotas.lease``)."""
        self._waiting_lease = False
        self.batched: list[int] = []
        """The ``max_inputs`` of each endpoint skipped for carrying fewer inputs."""

    @property
    def scopes(self) -> Mapping[str, Sequence[Scope]]:
        return self.quotas.scopes

    def next(self) -> Admitted | float:
        """Reserve the next endpoint, or return seconds to sleep before calling again.

        Raises ``RequestTooLarge`` if nothing could ever fit, else ``NoEndpointAvailable``.
        """
        mark = len(self.attempts)
        self._waiting_lease = False
        self.batched.clear()
        try:
            return self._next()
        except WouldBlock:  # nothing reserved: forget what this try noted, it is repeated
            del self.attempts[mark:]
            raise

    def _next(self) -> Admitted | float:
        now = self.clock.now()
        self.quotas.refresh(now)
        order = self.strategy.order(self.candidates, self.request, self._facts(now))
        found: dict[str, tuple[Endpoint, str]] = {}
        too_large: list[str] = []
        skip: set[str] = set()
        key = self._prefix_key()
        mark = len(self.attempts)
        rest = self._passable(order, found, too_large, skip)
        first = next(rest, None)
        if first is None:
            return self._nothing_admits(Pick(None, ()), now, too_large)
        if first.ready is not None:  # the SDK import, the shared HTTP client: not in a step
            first.ready()
            first = first._replace(ready=None)
        walk = Walk(first, rest, self._prefix(key), skip)
        try:
            pick = self.store.reserve_first(walk, self.clock.now, self.flight)
        except BaseException:
            self._give_back_leases(None)
            raise
        if self._leased:
            self._give_back_leases(pick.reservation.endpoint if pick.reservation else None)
        skipped = len(self.attempts) - mark
        known = walk.used
        if known is not None:  # passed at once: its attempts are made already
            self.attempts += known.attempts
            fresh = pick.refusals[len(known.refusals) :]
        else:
            fresh = pick.refusals
        self.attempts += [Attempt(r.endpoint, "refused", r.reason) for r in fresh]
        if key is not None and not skipped and self.prefixes is not None:
            self._learn(key, pick)
        if pick.reservation is not None:
            ep, api_key = found[pick.reservation.endpoint]
            self.tried.add(ep.id)
            self.current = ep.id
            return Admitted(ep, pick.reservation, api_key)
        return self._nothing_admits(pick, now, too_large)

    def _give_back_leases(self, keep: str | None) -> None:
        """Give back the leases this decision took, but the admitted endpoint's (``keep``;
        None: a failed step keeps none)."""
        for endpoint in self._leased:
            if endpoint != keep:
                self.quotas.unlease(endpoint)
        self._leased.clear()

    def _prefix_key(self) -> tuple[object, ...] | None:
        """Where this decision's refused prefix is kept: only for a first round (nothing
        tried yet) under a strategy whose order depends on nothing that changes."""
        if self.prefixes is None or self.tried or not getattr(self.strategy, "static", False):
            return None
        made = prefix_key(self.candidates, self.strategy, self.params, self.needs)
        return (*made, self.quotas.version)  # learned limits rebuild the scopes

    def _prefix(self, key: tuple[object, ...] | None) -> Prefix | None:
        known = self.prefixes.get(key) if key is not None and self.prefixes else None
        if known is None or known.candidates is not self.candidates or self.prompt < known.prompt:
            return None
        return known

    def _learn(self, key: tuple[object, ...], pick: Pick) -> None:
        assert self.prefixes is not None
        count = len(pick.refusals)
        made = learned(pick, self.candidates, self.prompt, self.attempts[-count:] if count else [])
        if made is None:
            self.prefixes.pop(key, None)
            return
        if len(self.prefixes) >= PREFIXES_KEPT:
            self.prefixes.clear()
        self.prefixes[key] = made

    def _nothing_admits(self, pick: Pick, now: float, too_large: list[str]) -> float:
        """Seconds to wait for capacity (within ``wait``), else raise why nothing admits."""
        refusals = list(pick.refusals)
        retry = _soonest(refusals, now)
        if self._waiting_lease:  # a gated endpoint may be free again soon
            retry = LEASE_POLL if retry is None else min(retry, LEASE_POLL)
        if retry is not None and now + retry <= self.deadline:
            self.attempts[:] = [a for a in self.attempts if a.outcome == "failed"]
            return retry
        if self.batched and len(self.batched) + len(too_large) >= len(self.candidates):
            raise InvalidRequest(
                f"the request carries {self.inputs} inputs and the endpoints that serve "
                f"{self.kind.name} take at most {max(self.batched)} per request; split it "
                f"into batches of {max(self.batched)} (llamux never splits a request itself)"
            )
        if len(too_large) == len(self.candidates):
            raise RequestTooLarge(
                f"the request needs about {self.prompt} prompt tokens plus its output budget "
                "and fits no endpoint's context or token limits; shorten it, lower "
                "max_tokens, or add an endpoint with larger limits",
                tokens=self.prompt,
            )
        raise _exhausted(self.attempts, refusals, self._rested(retry, now))

    def _passable(
        self,
        order: Sequence[Endpoint],
        found: dict[str, tuple[Endpoint, str]],
        too_large: list[str],
        skip: set[str],
    ) -> Iterator[Candidate]:
        """The endpoints of ``order`` this request may be reserved on, made as the store
        asks for them (it stops at the first that admits); the skipped ones are noted.
        ``found``: each passed endpoint and its key, by id."""
        keys: dict[str, str | None] = {}  # one environment read per key variable
        costs: dict[int, Cost] = {}  # by output default: most endpoints share one
        quotas = self.quotas
        all_scopes, reaches, gated = quotas.scopes, quotas.reach, quotas.gated
        for ep in order:
            if ep.id in self.tried or ep.id in skip:
                continue
            cost = costs.get(ep.max_output)
            if cost is None:
                output = self.kind.output(self.params, ep.max_output)
                cost = costs[ep.max_output] = Cost(self.prompt + output)
            if quotas.budgeted and ep.id in quotas.budgeted:  # priced: a dollar budget counts it
                output = cost.tokens - self.prompt
                usd = price(self.prompt, output, ep.input_cost, ep.output_cost)
                cost = Cost(cost.tokens, cost.requests, usd)
            if ep.api_key_env not in keys:
                keys[ep.api_key_env] = self.keys.get(ep)
            key = keys[ep.api_key_env] or self.keys.lookup(ep)  # warns once if missing
            scopes = all_scopes[ep.id]
            most = reaches.get(ep.id)
            plain = most is not None and cost.tokens <= most[1] and cost.requests <= most[0]
            if plain and key is not None and "{" not in ep.base_url and not self.needs:
                reason = None  # the common case, without building a reason
            else:
                reason = skip_reason(ep, cost, scopes, key is not None) or self._lacks(ep)
            if reason is None and self.inputs and ep.max_inputs and self.inputs > ep.max_inputs:
                reason = f"too many inputs: {self.inputs}, it takes at most {ep.max_inputs}"
                self.batched.append(ep.max_inputs)
            if reason is not None or key is None:
                if reason is not None and reason.startswith("too large"):
                    too_large.append(ep.id)
                self.attempts.append(Attempt(ep.id, "skipped", reason or "no key"))
                continue
            if gated and ep.id in gated and not self._lease(ep):
                continue
            found[ep.id] = (ep, key)
            yield Candidate(ep.id, scopes, cost, self._ready(ep, key))

    def _lease(self, ep: Endpoint) -> bool:
        """Take a gated endpoint's lease for this decision, or note that it is held."""
        now = self.clock.now()
        until = now + (self.flight or GATED_LEASE)
        if self.quotas.lease(ep.id, now, until):
            self._leased.add(ep.id)
            return True
        self._waiting_lease = True
        reason = "limits unknown: one request at a time until the provider states them"
        self.attempts.append(Attempt(ep.id, "skipped", reason))
        return False

    def _ready(self, ep: Endpoint, key: str) -> Callable[[], None] | None:
        """What readies ``ep``'s client: the store calls it when ``ep`` admits, before the
        charge is written (nothing slow may sit between the charge and the send)."""
        prepare = self.prepare
        if prepare is None:
            return None
        return lambda: prepare(ep, key)

    def _rested(self, retry: float | None, now: float) -> float | None:
        """``retry``, or sooner if an endpoint that failed this request rests for less (a
        new request may use it then; this one never retries it)."""
        if not self.tried:
            return retry
        tried = {self.scopes[key][0].key for key in self.tried}
        ends = [c.until - now for k, c in self.store.cooldowns(now).items() if k in tried]
        return min([t for t in (retry, *ends) if t is not None], default=None)

    def _lacks(self, ep: Endpoint) -> str | None:
        missing = self.needs - ep.capabilities if ep.capabilities else frozenset()
        return f"lacks {', '.join(sorted(missing))}" if missing else None

    def _facts(self, now: float) -> Facts:
        """What the strategy asked to know, read from the store now."""
        needs = self.strategy.needs
        if not needs:
            return Facts(now)
        ids = [ep.id for ep in self.candidates if ep.id not in self.tried]
        performance = self.store.performance(ids) if PERFORMANCE in needs else {}
        headroom = self._headroom(ids, now) if HEADROOM in needs else {}
        turn = self.store.turn(f"turn:{self.route}") if TURN in needs and not self.tried else 0
        return Facts(now, performance, headroom, turn)

    def _headroom(self, ids: Sequence[str], now: float) -> dict[str, float]:
        scopes = {scope.key: scope for key in ids for scope in self.scopes[key]}
        left: dict[str, float] = {}
        for usage in self.store.usage(list(scopes.values()), now):
            fraction = usage.remaining / usage.limit if usage.limit else 0.0
            left[usage.scope] = min(left.get(usage.scope, 1.0), fraction)
        return {key: min(left.get(s.key, 1.0) for s in self.scopes[key]) for key in ids}


def read_request(
    kind: Kind, messages: Any, params: Mapping[str, Any]
) -> tuple[int, Request, frozenset[str], int]:
    """What a decision reads of a request: its prompt tokens (estimated), what a strategy
    sees of it, the capabilities an endpoint needs to take it, and how many inputs an
    embeddings request carries (its list's length; 0: one string)."""
    prompt = kind.prompt(messages, params)
    chat = kind is CHAT
    output = kind.output(params, DEFAULT_MAX_OUTPUT)
    request = Request(messages if chat else (), params, prompt, output)
    needs = capabilities_needed(messages, params) if chat else frozenset()
    inputs = len(messages) if kind is EMBEDDINGS and isinstance(messages, list) else 0
    return prompt, request, needs, inputs


def skip_reason(ep: Endpoint, cost: Cost, scopes: Sequence[Scope], has_key: bool) -> str | None:
    """Why ``ep`` cannot take the request at all (no key, too large), or ``None``."""
    if not has_key:
        return f"no key: set the environment variable {ep.api_key_env}"
    if "{" in ep.base_url:
        from .._config.base_url import missing_url_vars

        missing = missing_url_vars(ep)
        if missing:
            return f"no key: set the environment variable {', '.join(missing)}"
    if ep.context is not None and cost.tokens > ep.context:
        return f"too large: about {cost.tokens} tokens, context is {ep.context}"
    blocked = never_fits(ep.id, scopes, cost)
    if blocked is not None:
        return f"too large: {blocked.reason}"
    return None


def _soonest(refusals: Sequence[Refusal], now: float) -> float | None:
    times = [r.retry_at - now for r in refusals if r.retry_at is not None]
    return max(0.0, min(times)) if times else None


def _exhausted(
    attempts: Sequence[Attempt], refusals: Sequence[Refusal], retry: float | None
) -> NoEndpointAvailable:
    lines = "; ".join(f"{a.endpoint}: {a.reason}" for a in attempts) or "no endpoint"
    when = (
        f"capacity returns in {retry:.1f} s"
        if retry is not None
        else "none will admit it before a reset or a fix"
    )
    detail = f"no endpoint can serve this request now ({lines}); {when}"
    hint = " (pass wait= to wait for it)" if retry is not None else ""
    return NoEndpointAvailable(
        detail + hint, retry_after=retry, refusals=refusals, attempts=attempts, detail=detail
    )
