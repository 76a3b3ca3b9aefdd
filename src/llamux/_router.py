"""The router: strategy -> reserve -> call -> settle, with failover.

``Router.query`` picks an endpoint and reserves its quota (the caller calls the provider);
``Router.completion`` (and ``acompletion``) does the whole path through the ``openai`` SDK.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ._admission import Admission, Admitted, check_params, skip_reason
from ._clock import Clock, SystemClock
from ._config import Config, Endpoint, Pool, Route, load, load_table
from ._disagreements import declare_limits, unowned_usage
from ._endpoint import DEFAULT_TIMEOUT
from ._errors import ConfigError, InvalidRequest, ProviderError
from ._performance import Performance
from ._quota import Cooldown, Cost, RuleUsage
from ._scoping import scopes_for
from ._served import Attempt, attach, served_record
from ._settler import Settler
from ._stores import open_store
from ._strategies import Strategy, strategy_from
from ._stream import afirst_chunk, asked_usage, async_chunk_stream, chunk_stream, first_chunk
from ._tokens import usage_tokens

if TYPE_CHECKING:
    from ._stores import QuotaStore
    from ._transport import Reply, Transport

log = logging.getLogger("llamux")
T = TypeVar("T")

ROUTER_PARAMS = frozenset({"wait", "strategy"})
"""Keyword arguments llamux consumes itself; every other one goes to the provider."""


@dataclass(frozen=True, slots=True)
class Answer:
    """An endpoint's successful answer to one call: for a stream, with its first chunk."""

    got: Admitted
    reply: Reply
    first: Any
    started: float
    """When the call began (``time.perf_counter``)."""
    stream: bool


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    """One endpoint's state for ``llamux status``: key, usage per rule, cool-down."""

    endpoint: Endpoint
    has_key: bool
    usage: tuple[RuleUsage, ...]
    cooldown: Cooldown | None
    performance: Performance | None = None
    """Measured latency, tokens/s and time to first token (moving averages), if any."""
    quota: str = ""
    """The key its own quota is counted by in the store (``q:SERVER|MODEL|KEY_VARIABLE``)."""


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
        routes: Iterable[Route] = (),
        store: str | QuotaStore | None = None,
        strategy: str | Strategy | None = None,
        clock: Clock | None = None,
        transport: Transport | None = None,
        timeout: float | None = None,
    ) -> None:
        if isinstance(endpoints, Config):
            config = endpoints
            endpoints, pools = config.endpoints, (*config.pools, *pools)
            routes = (*config.routes, *routes)
            store = store if store is not None else config.store
            strategy = strategy if strategy is not None else config.strategy
        self.endpoints: tuple[Endpoint, ...] = tuple(endpoints)
        if not self.endpoints:
            raise ConfigError("a Router needs at least one endpoint; add rows to your table")
        self._scopes = scopes_for(self.endpoints, {pool.name: pool for pool in pools})
        self.routes = {route.name: route for route in routes}
        self.strategy = strategy_from(strategy)
        self._strategies: dict[str, Strategy] = {}
        self.clock: Clock = clock or SystemClock()
        self._own_store = store is None or isinstance(store, str)
        self.store: QuotaStore = open_store(store)
        self._transport = transport
        self._timeout = timeout
        self._flight = 2 * (timeout or DEFAULT_TIMEOUT)
        """The longest a call can take to show its outcome (the connect and the read phase
        are each bounded by the timeout): how far ahead an in-flight charge is recorded."""
        self._settler = Settler(self.store, self.clock, self._scopes)
        self._conflicts = declare_limits(self.store, self._scopes.values(), self.clock.now())
        for line in self._conflicts:
            log.warning("%s", line)
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

    async def __aenter__(self) -> Router:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def close(self) -> None:
        """Close the transport's connections and the store, if the router opened it."""
        if self._transport is not None and hasattr(self._transport, "close"):
            self._transport.close()
        if self._own_store:
            self.store.close()

    async def aclose(self) -> None:
        """Close the async connections of the running event loop, then as :meth:`close`."""
        if self._transport is not None and hasattr(self._transport, "aclose"):
            await self._transport.aclose()
        self.close()

    # -- the public calls --------------------------------------------------------------

    def query(
        self, messages: Sequence[Mapping[str, Any]], **params: Any
    ) -> tuple[str, str, str, dict[str, Any]]:
        """Pick an endpoint and reserve its quota; you call the provider.

        Returns ``(provider, model, endpoint id, props)``; ``props`` has ``base_url``,
        ``api_key_env``, ``limits``, ``remaining``, ``reservation`` and ``tokens``.
        Report the real usage with :meth:`settle` (else the estimate stays charged).
        """
        admission = self._admission(messages, params, mode=None)
        while isinstance(got := admission.next(), float):
            self.clock.sleep(got)
        ep, reservation = got.endpoint, got.reservation
        own = self._scopes[ep.id][0]
        props: dict[str, Any] = {
            "base_url": ep.base_url,
            "api_key_env": ep.api_key_env,
            "limits": {rule.name: rule.limit for rule in own.rules},
            "remaining": {
                rule: left for scope, rule, left in reservation.remaining if scope == own.key
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

    def completion(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> Any:
        """Serve a chat completion from the best endpoint with quota, failing over on errors.

        OpenAI chat parameters pass through unchanged; ``model`` selects endpoints (an
        endpoint id or an upstream model name; ``auto`` or absent: all). ``wait=SECONDS``
        waits up to that long for capacity instead of raising ``NoEndpointAvailable``.
        Returns the SDK's ``ChatCompletion``, or with ``stream=True`` an iterator of its
        ``ChatCompletionChunk`` (fail-over happens only before the first chunk).
        """
        admission = self._admission(messages, params, mode="sync")
        while True:
            got = admission.next()
            if isinstance(got, float):
                self.clock.sleep(got)
                continue
            call = self._call_params(got.endpoint, messages, params)
            started = time.perf_counter()
            try:
                reply = self.transport.complete(got.endpoint, got.api_key, call)
                first = first_chunk(reply.body, got) if call.get("stream") else None
            except ProviderError as error:
                if not self._settler.failed(got, error, admission.attempts):
                    raise
                continue
            except Exception as exc:
                refusal = self._settler.refused(got, exc)
                raise refusal from (None if refusal is exc else exc)
            self._settler.learn(got, reply.headers)
            if not call.get("stream"):
                return self._done(got, reply, admission.attempts)
            hide = not asked_usage(params)
            return chunk_stream(self._settler, got, reply, first, admission.attempts, hide, started)

    async def acompletion(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> Any:
        """The awaitable twin of :meth:`completion`; with ``stream=True`` the awaited result
        is an async iterator of chunks. Store I/O runs in worker threads, never on the loop."""

        admission = await self._aadmission(messages, params, "async")
        answer = await self._aanswer(admission, messages, params, afirst_chunk)
        got, reply = answer.got, answer.reply
        await self._offload(self._settler.learn, got, reply.headers)
        if not answer.stream:
            return await self._offload(self._done, got, reply, admission.attempts)
        hide = not asked_usage(params)
        return async_chunk_stream(
            self._settler, got, reply, answer.first, admission.attempts, hide, answer.started
        )

    async def _offload(self, function: Callable[..., T], *args: Any) -> T:
        """Run store work off the event loop (a worker thread), unless the store says its
        operations never block (the memory store: a few microseconds of CPU)."""
        if getattr(self.store, "inline", False):
            return function(*args)
        import asyncio

        return await asyncio.to_thread(function, *args)

    async def _aanswer(
        self,
        admission: Admission,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        first_of: Callable[[Any, Admitted], Awaitable[Any]],
        *,
        raw: bool = False,
    ) -> Answer:
        """Reserve, call and fail over until an endpoint answers; for a stream, its first
        chunk is read (by ``first_of``) before it counts as answered. ``raw``: the
        provider's HTTP response, unparsed (the proxy relays its bytes)."""

        while True:
            got = await self._offload(admission.next)
            if isinstance(got, float):
                await self.clock.asleep(got)
                continue
            call = self._call_params(got.endpoint, messages, params)
            started = time.perf_counter()
            try:
                reply = await self.transport.acomplete(got.endpoint, got.api_key, call, raw=raw)
                first = await first_of(reply.body, got) if call.get("stream") else None
            except ProviderError as error:
                failover = await self._offload(self._settler.failed, got, error, admission.attempts)
                if not failover:
                    raise
                continue
            except Exception as exc:
                refusal = await self._offload(self._settler.refused, got, exc)
                raise refusal from (None if refusal is exc else exc)
            return Answer(got, reply, first, started, bool(call.get("stream")))

    def status(self) -> list[EndpointStatus]:
        """Every endpoint's usage per rule, key presence and cool-down, now."""
        now = self.clock.now()
        cooling = self.store.cooldowns(now)
        measured = self.store.performance([ep.id for ep in self.endpoints])
        rows = []
        for ep in self.endpoints:
            scopes = self._scopes[ep.id]
            usage = self.store.usage(scopes, now)
            cool = next((cooling[s.key] for s in scopes if s.key in cooling), None)
            has_key = self._api_key(ep) is not None
            perf = measured.get(ep.id)
            rows.append(EndpointStatus(ep, has_key, tuple(usage), cool, perf, scopes[0].key))
        return rows

    def warnings(self) -> list[str]:
        """What the store holds that this config disagrees with: usage no configured
        endpoint or pool owns (a quota renamed or removed, a file shared with another
        config), and quotas another config gave other limits (each process keeps its own)."""
        return [
            *unowned_usage(self.store, self._scopes.values(), self.clock.now()),
            *self._conflicts,
        ]

    def reset(self, endpoint: str | None = None) -> None:
        """Forget recorded usage and cool-downs of one endpoint (by id) or of all."""
        if endpoint is None:
            self.store.reset(None)
            return
        if endpoint not in self._scopes:
            raise ConfigError(f"no endpoint is named {endpoint!r}; use one of: {self._ids()}")
        self.store.reset(self._scopes[endpoint][0].key)
        self.store.reset(endpoint)  # its measured speed and its reservations

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            from ._transport import OpenAITransport

            self._transport = OpenAITransport(self._timeout or DEFAULT_TIMEOUT)
        return self._transport

    # -- the path ----------------------------------------------------------------------

    async def _aadmission(
        self, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any], mode: str
    ) -> Admission:
        """:meth:`_admission` for a call made on this event loop (its async clients)."""
        import asyncio

        return self._admission(messages, params, mode=mode, loop=asyncio.get_running_loop())

    def _admission(
        self,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        *,
        mode: str | None,
        loop: Any = None,
    ) -> Admission:
        """The reservation state of one request. ``mode`` is how llamux will call the
        provider (``sync``, ``async``, ``raw``; ``None``: the caller calls, as for ``query``):
        its client is readied before each reservation and the charge is held in flight."""
        check_params(params, messages)
        candidates, route = self._candidates(params.get("model"))
        prepare = None
        if mode is not None:
            ready = getattr(self.transport, "prepare", None)
            if ready is not None:

                def prepare(ep: Endpoint, key: str) -> None:
                    ready(ep, key, mode, loop) if loop is not None else ready(ep, key, mode)

        return Admission(
            messages=messages,
            params=params,
            candidates=candidates,
            scopes=self._scopes,
            store=self.store,
            strategy=self._strategy(params.get("strategy"), route),
            clock=self.clock,
            skip_reason=self._skip_reason,
            api_key=self._api_key,
            route=route.name if route else str(params.get("model") or "auto"),
            flight=self._flight if mode is not None else 0.0,
            prepare=prepare,
        )

    def _strategy(self, asked: Any, route: Route | None) -> Strategy:
        """The call's ``strategy=``, else its route's, else the router's."""
        name = asked if asked is not None else (route.strategy if route else None)
        if name is None:
            return self.strategy
        if not isinstance(name, str):
            return strategy_from(name)
        with self._lock:
            if name not in self._strategies:
                self._strategies[name] = strategy_from(name)
            return self._strategies[name]

    def _skip_reason(self, ep: Endpoint, cost: Cost) -> str | None:
        has_key = self._api_key(ep) is not None
        if not has_key:
            self._warn_no_key(ep)
        return skip_reason(ep, cost, self._scopes[ep.id], has_key)

    def _call_params(
        self, ep: Endpoint, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
    ) -> dict[str, Any]:
        call = {k: v for k, v in params.items() if k not in ROUTER_PARAMS}
        call.update(model=ep.model, messages=list(messages))
        if call.get("stream"):
            call["stream_options"] = {**(call.get("stream_options") or {}), "include_usage": True}
        return call

    def _done(self, got: Admitted, reply: Reply, attempts: list[Attempt]) -> Any:
        usage = getattr(reply.body, "usage", None)
        tokens = usage_tokens(usage)
        self._settler.settle(got, tokens)
        self._settler.record(got, reply.latency, usage, None)
        attempts.append(Attempt(got.endpoint.id, "served", latency=reply.latency))
        attach(reply.body, served_record(got, tokens, attempts))
        return reply.body

    def _candidates(self, model: Any) -> tuple[list[Endpoint], Route | None]:
        """The endpoints a ``model`` value selects: all (none or ``auto``), an endpoint id,
        a route name, or every endpoint serving that upstream model."""
        if model is None or model == "auto":
            return list(self.endpoints), None
        if not isinstance(model, str):
            raise InvalidRequest(f"model must be a string, not {type(model).__name__}")
        route = self.routes.get(model)
        if route is not None:
            by_id = {e.id: e for e in self.endpoints}
            return [by_id[i] for i in route.endpoints if i in by_id], route
        chosen = [e for e in self.endpoints if e.id == model] or [
            e for e in self.endpoints if e.model == model
        ]
        if not chosen:
            names = ", ".join([*self.routes, *(e.id for e in self.endpoints)])
            raise ConfigError(
                f"no endpoint or route serves model {model!r}; pass one of: {names}, "
                "an upstream model name, or 'auto' for all"
            )
        return chosen, None

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
