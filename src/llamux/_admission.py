"""Admission: for one request, reserve endpoints one at a time in strategy order.

Each call to :meth:`Admission.next` reserves the next endpoint that admits the request
(or says how long to wait for capacity, or raises when nothing is left). The router calls it
directly (sync) or from a worker thread (async), so store I/O never blocks an event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import NoEndpointAvailable, RequestTooLarge
from ._quota import Cost, Refusal, Reservation, Scope, never_fits
from ._served import Attempt
from ._strategies import Request, Strategy
from ._tokens import output_budget, prompt_tokens

if TYPE_CHECKING:
    from ._clock import Clock
    from ._config import Endpoint
    from ._stores import QuotaStore


@dataclass(frozen=True, slots=True)
class Admitted:
    """An endpoint whose quota is reserved for the request, and the key to call it with."""

    endpoint: Endpoint
    reservation: Reservation
    api_key: str


class Admission:
    """The reservation state of one request: what was tried, what was refused, until when
    to wait. Not thread-safe: one request, one caller at a time."""

    def __init__(
        self,
        *,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        candidates: Sequence[Endpoint],
        scopes: Mapping[str, Sequence[Scope]],
        store: QuotaStore,
        strategy: Strategy,
        clock: Clock,
        skip_reason: Callable[[Endpoint, Cost], str | None],
        api_key: Callable[[Endpoint], str | None],
    ) -> None:
        self.prompt = prompt_tokens(messages, params)
        self.request = Request(messages, params, self.prompt)
        self.params = params
        self.candidates = list(candidates)
        self.scopes = scopes
        self.store = store
        self.strategy = strategy
        self.clock = clock
        self.skip_reason = skip_reason
        self.api_key = api_key
        self.deadline = clock.now() + float(params.get("wait") or 0)
        self.tried: set[str] = set()
        self.attempts: list[Attempt] = []

    def next(self) -> Admitted | float:
        """Reserve the next endpoint, or return seconds to sleep before calling again.

        Raises ``RequestTooLarge`` if nothing could ever fit, else ``NoEndpointAvailable``.
        """
        now = self.clock.now()
        refusals: list[Refusal] = []
        too_large = 0
        for ep in self.strategy.order(self.candidates, self.request, now):
            if ep.id in self.tried:
                continue
            cost = Cost(self.prompt + output_budget(self.params, ep.max_output))
            skip = self.skip_reason(ep, cost)
            if skip is not None:
                too_large += skip.startswith("too large")
                self.attempts.append(Attempt(ep.id, "skipped", skip))
                continue
            outcome = self.store.reserve(ep.id, self.scopes[ep.id], cost, now)
            if isinstance(outcome, Refusal):
                refusals.append(outcome)
                self.attempts.append(Attempt(ep.id, "refused", outcome.reason))
                continue
            self.tried.add(ep.id)
            return Admitted(ep, outcome, self.api_key(ep) or "")
        retry = _soonest(refusals, now)
        if retry is not None and now + retry <= self.deadline:
            self.attempts[:] = [a for a in self.attempts if a.outcome == "failed"]
            return retry
        if too_large == len(self.candidates):
            raise RequestTooLarge(
                f"the request needs about {self.prompt} prompt tokens plus its output budget "
                "and fits no endpoint's context or token limits; shorten it, lower "
                "max_tokens, or add an endpoint with larger limits",
                tokens=self.prompt,
            )
        raise _exhausted(self.attempts, refusals, retry)


def skip_reason(ep: Endpoint, cost: Cost, scopes: Sequence[Scope], has_key: bool) -> str | None:
    """Why ``ep`` cannot take the request at all (no key, too large), or ``None``."""
    if not has_key:
        return f"no key: set the environment variable {ep.api_key_env}"
    if "{" in ep.base_url:
        from ._transport import missing_url_vars

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
        f"capacity returns in {retry:.1f} s (pass wait= to wait for it)"
        if retry is not None
        else "none will admit it before a reset or a fix"
    )
    return NoEndpointAvailable(
        f"no endpoint can serve this request now ({lines}); {when}",
        retry_after=retry,
        refusals=refusals,
    )
