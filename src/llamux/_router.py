"""The router: strategy -> reserve -> call -> settle, with failover.

``Router.query`` picks an endpoint and reserves its quota (the caller calls the provider);
``Router.completion`` does the whole path through the ``openai`` SDK.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._clock import Clock, SystemClock
from ._config import Config, Endpoint, Pool, load, load_table
from ._errors import ConfigError, NoEndpointAvailable, ProviderError, RequestTooLarge
from ._feedback import classify
from ._quota import Cooldown, Cost, Refusal, Reservation, RuleUsage, Scope, never_fits
from ._quota import rules_from_limits as _rules
from ._served import Attempt, Served, attach
from ._strategies import Request, Strategy, strategy_from
from ._tokens import output_budget, prompt_tokens, usage_tokens

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion

    from ._stores import QuotaStore
    from ._transport import Transport

log = logging.getLogger("llamux")

ROUTER_PARAMS = frozenset({"wait", "strategy"})
"""Keyword arguments llamux consumes itself; every other one goes to the provider."""


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    """One endpoint's state for ``llamux status``: key, usage per rule, cool-down."""

    endpoint: Endpoint
    has_key: bool
    usage: tuple[RuleUsage, ...]
    cooldown: Cooldown | None


@dataclass(frozen=True, slots=True)
class _Admitted:
    endpoint: Endpoint
    reservation: Reservation
    api_key: str


class Router:
    """Routes chat requests across endpoints so that no quota is ever crossed.

    ``store`` is a URL (``memory://``, ``sqlite:///path``, ``redis://host:port/db``) or a
    store object; by default ``LLAMUX_STORE``, else SQLite in the user state directory.
    ``timeout`` bounds each provider call in seconds (default 120).
    """

    def __init__(
        self,
        endpoints: Iterable[Endpoint] | Config,
        *,
        pools: Iterable[Pool] = (),
        store: str | QuotaStore | None = None,
        strategy: str | Strategy | None = None,
        clock: Clock | None = None,
        transport: Transport | None = None,
        timeout: float | None = None,
    ) -> None:
        if isinstance(endpoints, Config):
            config = endpoints
            endpoints, pools = config.endpoints, (*config.pools, *pools)
            store = store if store is not None else config.store
            strategy = strategy if strategy is not None else config.strategy
        self.endpoints: tuple[Endpoint, ...] = tuple(endpoints)
        if not self.endpoints:
            raise ConfigError("a Router needs at least one endpoint; add rows to your table")
        self._scopes = _scopes(self.endpoints, {pool.name: pool for pool in pools})
        self.strategy = strategy_from(strategy)
        self.clock: Clock = clock or SystemClock()
        self._own_store = not _is_store(store)
        self.store: QuotaStore = _open_store(store)
        self._transport = transport
        self._timeout = timeout
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str], **kwargs: Any) -> Router:
        """A router for the endpoints of a markdown pipe table or CSV file."""
        return cls(load_table(path), **kwargs)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str], **kwargs: Any) -> Router:
        """A router for a TOML config (``.toml``) or a table file."""
        return cls(load(path), **kwargs)

    def __repr__(self) -> str:
        ids = ", ".join(e.id for e in self.endpoints)
        return f"Router([{ids}], store={self.store!r}, strategy={self.strategy!r})"

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the transport's connections and the store, if the router opened it."""
        if self._transport is not None and hasattr(self._transport, "close"):
            self._transport.close()
        if self._own_store:
            self.store.close()

    # -- the public calls --------------------------------------------------------------

    def query(
        self, messages: Sequence[Mapping[str, Any]], **params: Any
    ) -> tuple[str, str, str, dict[str, Any]]:
        """Pick an endpoint and reserve its quota; you call the provider.

        Returns ``(provider, model, endpoint id, props)``; ``props`` has ``base_url``,
        ``api_key_env``, ``limits``, ``remaining``, ``reservation`` and ``tokens``.
        Report the real usage with :meth:`settle` (else the estimate stays charged).
        """
        attempts: list[Attempt] = []
        admitted = next(self._admissions(messages, params, attempts))
        ep, reservation = admitted.endpoint, admitted.reservation
        props: dict[str, Any] = {
            "base_url": ep.base_url,
            "api_key_env": ep.api_key_env,
            "limits": dict(ep.limits.items()),
            "remaining": {
                rule: left for scope, rule, left in reservation.remaining if scope == ep.id
            },
            "reservation": reservation.id,
            "tokens": reservation.tokens,
        }
        if ep.pool:
            props["pool"] = ep.pool
        return ep.provider, ep.model, ep.id, props

    def settle(self, reservation: str, usage: Any) -> bool:
        """Correct a reservation with the real usage: a token count, a usage object or dict,
        or a whole response. Returns False if the reservation is unknown or settled."""
        tokens = usage_tokens(usage)
        if tokens is None:
            raise TypeError("settle() needs a token count or a response/usage with total_tokens")
        return self.store.settle(reservation, tokens, self.clock.now())

    def release(self, reservation: str) -> bool:
        """Give a reservation back entirely: the call never reached the provider."""
        return self.store.release(reservation, self.clock.now())

    def completion(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> ChatCompletion:
        """Serve a chat completion from the best endpoint with quota, failing over on errors.

        OpenAI chat parameters pass through unchanged; ``model`` selects endpoints (an
        endpoint id or an upstream model name; ``auto`` or absent: all). ``wait=SECONDS``
        waits up to that long for capacity instead of raising ``NoEndpointAvailable``.
        """
        attempts: list[Attempt] = []
        for admitted in self._admissions(messages, params, attempts):
            ep = admitted.endpoint
            call = {k: v for k, v in params.items() if k not in ROUTER_PARAMS}
            call.update(model=ep.model, messages=list(messages))
            try:
                reply = self.transport.complete(ep, admitted.api_key, call)
            except ProviderError as error:
                if not self._failed(admitted, error, attempts):
                    raise
                continue
            tokens = usage_tokens(reply.completion)
            if tokens is not None:
                self.store.settle(admitted.reservation.id, tokens, self.clock.now())
            attempts.append(Attempt(ep.id, "served", latency=reply.latency))
            attach(
                reply.completion,
                Served(
                    ep.id,
                    ep.provider,
                    ep.model,
                    admitted.reservation.id,
                    admitted.reservation.tokens,
                    tokens,
                    tuple(attempts),
                ),
            )
            return reply.completion
        raise AssertionError("unreachable: _admissions raises when exhausted")

    def status(self) -> list[EndpointStatus]:
        """Every endpoint's usage per rule, key presence and cool-down, now."""
        now = self.clock.now()
        cooling = self.store.cooldowns(now)
        rows = []
        for ep in self.endpoints:
            usage = self.store.usage(self._scopes[ep.id], now)
            cool = cooling.get(ep.id) or next(
                (cooling[s.key] for s in self._scopes[ep.id][1:] if s.key in cooling), None
            )
            rows.append(EndpointStatus(ep, self._api_key(ep) is not None, tuple(usage), cool))
        return rows

    def reset(self, endpoint: str | None = None) -> None:
        """Forget recorded usage and cool-downs of one endpoint (by id) or of all."""
        if endpoint is not None and endpoint not in self._scopes:
            raise ConfigError(f"no endpoint is named {endpoint!r}; use one of: {self._ids()}")
        self.store.reset(endpoint)

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            from ._transport import DEFAULT_TIMEOUT, OpenAITransport

            self._transport = OpenAITransport(self._timeout or DEFAULT_TIMEOUT)
        return self._transport

    # -- the path ----------------------------------------------------------------------

    def _admissions(
        self,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        attempts: list[Attempt],
    ) -> Iterator[_Admitted]:
        """Reserve endpoints in strategy order, one at a time, as the caller asks for more.

        When none is left: ``RequestTooLarge`` if nothing could ever fit, else
        ``NoEndpointAvailable`` (after waiting up to ``wait`` seconds for capacity).
        """
        prompt = prompt_tokens(messages, params)
        request = Request(messages, params, prompt)
        candidates = self._candidates(params.get("model"))
        deadline = self.clock.now() + float(params.get("wait") or 0)
        tried: set[str] = set()
        while True:
            now = self.clock.now()
            refusals: list[Refusal] = []
            too_large = 0
            for ep in self.strategy.order(candidates, request, now):
                if ep.id in tried:
                    continue
                cost = Cost(prompt + output_budget(params, ep.max_output))
                skip = self._skip_reason(ep, cost)
                if skip is not None:
                    too_large += skip.startswith("too large")
                    attempts.append(Attempt(ep.id, "skipped", skip))
                    continue
                outcome = self.store.reserve(ep.id, self._scopes[ep.id], cost, now)
                if isinstance(outcome, Refusal):
                    refusals.append(outcome)
                    attempts.append(Attempt(ep.id, "refused", outcome.reason))
                    continue
                tried.add(ep.id)
                yield _Admitted(ep, outcome, self._api_key(ep) or "")
            retry = _soonest(refusals, now)
            if retry is not None and now + retry <= deadline:
                self.clock.sleep(retry)
                attempts[:] = [a for a in attempts if a.outcome == "failed"]
                continue
            if too_large == len(candidates):
                raise RequestTooLarge(
                    f"the request needs about {prompt} prompt tokens plus its output budget "
                    "and fits no endpoint's context or token limits; shorten it, lower "
                    "max_tokens, or add an endpoint with larger limits",
                    tokens=prompt,
                )
            raise _exhausted(attempts, refusals, retry)

    def _skip_reason(self, ep: Endpoint, cost: Cost) -> str | None:
        if self._api_key(ep) is None:
            self._warn_no_key(ep)
            return f"no key: set the environment variable {ep.api_key_env}"
        if "{" in ep.base_url:
            from ._transport import missing_url_vars

            missing = missing_url_vars(ep)
            if missing:
                return f"no key: set the environment variable {', '.join(missing)}"
        if ep.context is not None and cost.tokens > ep.context:
            return f"too large: about {cost.tokens} tokens, context is {ep.context}"
        blocked = never_fits(ep.id, self._scopes[ep.id], cost)
        if blocked is not None:
            return f"too large: {blocked.reason}"
        return None

    def _failed(self, admitted: _Admitted, error: ProviderError, attempts: list[Attempt]) -> bool:
        """Carry out the failover verdict; True to try the next endpoint."""
        now = self.clock.now()
        verdict = classify(error, now)
        rid = admitted.reservation.id
        if verdict.usage == "release":
            self.store.release(rid, now)
        elif verdict.usage == "requests":
            self.store.settle(rid, 0, now)
        ep = admitted.endpoint
        if verdict.rest > 0:
            self.store.cool_down(ep.id, now + verdict.rest, verdict.reason, verdict.kind, now)
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
        attempts.append(Attempt(ep.id, "failed", verdict.reason, error.status))
        return verdict.failover

    def _candidates(self, model: Any) -> list[Endpoint]:
        if model is None or model == "auto":
            return list(self.endpoints)
        chosen = [e for e in self.endpoints if model in (e.id, e.model)]
        if not chosen:
            raise ConfigError(
                f"no endpoint serves model {model!r}; pass an endpoint id or model name "
                f"({self._ids()}), or 'auto' for all"
            )
        return chosen

    def _api_key(self, ep: Endpoint) -> str | None:
        return os.environ.get(ep.api_key_env) or None

    def _warn_no_key(self, ep: Endpoint) -> None:
        with self._lock:
            if ep.id in self._warned:
                return
            self._warned.add(ep.id)
        log.warning(
            "endpoint %s is skipped: the environment variable %s is not set; export it "
            "or remove the endpoint from your table",
            ep.id,
            ep.api_key_env,
        )

    def _ids(self) -> str:
        return ", ".join(e.id for e in self.endpoints)


def _scopes(endpoints: Sequence[Endpoint], pools: Mapping[str, Pool]) -> dict[str, list[Scope]]:
    scopes: dict[str, list[Scope]] = {}
    for ep in endpoints:
        if ep.id in scopes:
            raise ConfigError(f"two endpoints are named {ep.id!r}; give each a unique name")
        own = [Scope(ep.id, _rules(ep.limits.items(), dict(ep.resets)))]
        if ep.pool:
            pool = pools.get(ep.pool) or _catalog_pool(ep.pool)
            if pool is None:
                raise ConfigError(
                    f"endpoint {ep.id} draws on pool {ep.pool!r}, which is not defined; "
                    f"define [pools.{ep.pool}] in a TOML config or remove the pool"
                )
            own.append(Scope(f"pool:{pool.name}", _rules(pool.limits.items(), dict(pool.resets))))
        scopes[ep.id] = own
    return scopes


def _catalog_pool(name: str) -> Pool | None:
    from ._catalog import pool

    return pool(name)


def _is_store(store: object) -> bool:
    return store is not None and not isinstance(store, str)


def _open_store(store: str | QuotaStore | None) -> QuotaStore:
    if store is None or isinstance(store, str):
        from ._stores import store_from_url

        return store_from_url(store)
    return store


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
