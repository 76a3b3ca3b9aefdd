"""Admission: for one request, reserve endpoints one at a time in strategy order.

Each call to :meth:`Admission.next` reserves the next endpoint that admits the request
(or says how long to wait for capacity, or raises when nothing is left). The router calls it
directly (sync) or from a worker thread (async), so store I/O never blocks an event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._config import DEFAULT_MAX_OUTPUT
from ._errors import InvalidRequest, NoEndpointAvailable, RequestTooLarge
from ._quota import Cost, Refusal, Reservation, Scope, never_fits
from ._served import Attempt
from ._strategies import HEADROOM, PERFORMANCE, TURN, Facts, Request, Strategy
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
        route: str = "auto",
    ) -> None:
        self.prompt = prompt_tokens(messages, params)
        self.request = Request(
            messages, params, self.prompt, output_budget(params, DEFAULT_MAX_OUTPUT)
        )
        self.needs = capabilities_needed(messages, params)
        self.params = params
        self.route = route
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
        for ep in self.strategy.order(self.candidates, self.request, self._facts(now)):
            if ep.id in self.tried:
                continue
            cost = Cost(self.prompt + output_budget(self.params, ep.max_output))
            skip = self.skip_reason(ep, cost) or self._lacks(ep)
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
        raise _exhausted(self.attempts, refusals, self._rested(retry, now))

    def _rested(self, retry: float | None, now: float) -> float | None:
        """``retry``, or sooner if an endpoint that failed this request rests for less (a
        new request may use it then; this one never retries it)."""
        if not self.tried:
            return retry
        ends = [c.until - now for k, c in self.store.cooldowns(now).items() if k in self.tried]
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


def check_params(params: Mapping[str, Any]) -> None:
    """Raise ``InvalidRequest`` for parameters llamux counts with that are malformed, before
    anything is reserved (a negative ``max_tokens`` would otherwise free others' quota)."""
    for key in ("max_tokens", "max_completion_tokens", "n"):
        value = params.get(key)
        if value is not None and (type(value) is not int or value < 1):
            raise InvalidRequest(f"{key} must be a whole number >= 1, not {_shown(value)}")
    wait = params.get("wait")
    if wait is not None and (type(wait) not in (int, float) or not 0 <= wait < float("inf")):
        raise InvalidRequest(f"wait must be a number of seconds >= 0, not {_shown(wait)}")
    options = params.get("stream_options")
    if options is not None and not isinstance(options, Mapping):
        raise InvalidRequest(
            f"stream_options must be an object such as {{'include_usage': True}}, "
            f"not {_shown(options)}"
        )
    model = params.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidRequest(
            f"model must be a string (an endpoint, route or model name), not {_shown(model)}"
        )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def capabilities_needed(
    messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
) -> frozenset[str]:
    """What an endpoint must support to take the request: tools, vision, json."""
    needed = set()
    if params.get("tools") or params.get("functions"):
        needed.add("tools")
    response_format = params.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") != "text":
        needed.add("json")
    for message in messages:
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(part, Mapping) and part.get("type") in ("image_url", "input_image")
            for part in content
        ):
            needed.add("vision")
    return frozenset(needed)


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
