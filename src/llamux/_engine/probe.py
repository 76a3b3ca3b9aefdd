"""Probing an endpoint: learn the limits its provider reports, at the least cost.

Where the provider has an endpoint that reports a key's quota (OpenRouter's ``GET /key``:
the day's ``:free`` requests), that is asked and no request is spent. Otherwise the smallest
chat request (one short message, one output token) goes through the router like any other:
reserved first (so a probe never crosses a limit), settled, and its answer's headers learned.
What the provider stated is recorded in the store (see ``Quotas``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .._errors import LlamuxError, NoEndpointAvailable
from .._policy.key_info import key_hints
from .._policy.ratelimits import Hint, parse_headers

if TYPE_CHECKING:
    from .._clock import Clock
    from .._config.load import Endpoint
    from .._policy.known_limits import Known
    from .._providers.transport import Transport
    from .call import Call
    from .quotas import Quotas
    from .settler import Settler

PROBE_MESSAGES = ({"role": "user", "content": "Hi"},)
KEY_PATH = "key"
"""OpenRouter's key endpoint, under its base URL (``https://openrouter.ai/api/v1/key``)."""


@dataclass(frozen=True, slots=True)
class Probe:
    """What probing one endpoint found."""

    endpoint: str
    outcome: str
    """``ok``, ``skipped`` (no key), ``refused`` (no capacity now) or ``failed``."""
    detail: str
    via: str
    """``request`` (one was spent), ``key endpoint`` (none was) or empty (nothing sent)."""
    hints: tuple[Hint, ...] = ()
    """What the provider reported: each limit, what remains, when it resets."""
    known: tuple[Known, ...] = ()
    """What llamux enforces for the endpoint's rules after the probe."""


class Prober(Protocol):
    """What probing needs of a router."""

    clock: Clock
    quotas: Quotas

    @property
    def settler(self) -> Settler: ...

    @property
    def transport(self) -> Transport: ...

    def key_of(self, ep: Endpoint) -> str | None: ...

    def call(self, messages: Any, params: Mapping[str, Any]) -> Call: ...


def spends_request(ep: Endpoint) -> bool:
    """Whether probing ``ep`` costs a request (its provider has no key endpoint)."""
    return ep.dialect != "openrouter"


def probe(router: Prober, ep: Endpoint) -> Probe:
    """Probe ``ep`` through ``router``; never raises for what the provider answers."""
    key = router.key_of(ep)
    if key is None:
        return Probe(ep.id, "skipped", f"no key: set {ep.api_key_env}", "")
    try:
        if not spends_request(ep):
            return _by_key_endpoint(router, ep, key)
        return _by_request(router, ep)
    except NoEndpointAvailable as refused:
        return _done(router, ep, "refused", str(refused), "")
    except LlamuxError as error:
        return _done(router, ep, "failed", str(error), "request")


def _by_key_endpoint(router: Prober, ep: Endpoint, key: str) -> Probe:
    body: Any = router.transport.get_json(ep, key, KEY_PATH)  # type: ignore[attr-defined]
    now = router.clock.now()
    hints = key_hints(body, now)
    router.settler.stated(ep, hints, now, "key endpoint", pool=bool(ep.pool))
    detail = "asked the key endpoint: no request spent"
    return _done(router, ep, "ok", detail, "key endpoint", hints)


def _by_request(router: Prober, ep: Endpoint) -> Probe:
    call = router.call(list(PROBE_MESSAGES), {"model": ep.id, "max_tokens": 1})
    answer = call.answer()
    headers = answer.reply.headers
    served = call.served(answer, getattr(answer.reply.body, "usage", None))
    hints = parse_headers(ep.dialect, headers, router.clock.now())
    tokens = "?" if served.tokens is None else str(served.tokens)
    detail = f"1 request, {tokens} tokens"
    return _done(router, ep, "ok", detail, "request", hints)


def _done(
    router: Prober, ep: Endpoint, outcome: str, detail: str, via: str, hints: tuple[Hint, ...] = ()
) -> Probe:
    return Probe(ep.id, outcome, detail, via, hints, router.quotas.known.get(ep.id, ()))
