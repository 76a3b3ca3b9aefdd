"""The router: strategy -> reserve -> call -> settle, with failover.

``Router.query`` picks an endpoint and reserves its quota (the caller calls the provider);
``Router.completion`` (and ``acompletion``) does the whole path through the ``openai`` SDK.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ._clock import Clock, SystemClock
from ._config.endpoint import CHAT, DEFAULT_TIMEOUT
from ._config.load import Config, Endpoint, Pool, Route, load, load_table
from ._disagreements import declare_limits, store_losses, unowned_usage
from ._dry_run import DryRun
from ._engine.admission import Admission
from ._engine.call import Call
from ._engine.inputs import check_input, check_params
from ._engine.keys import Keys
from ._engine.queries import Queries, query_props
from ._engine.quotas import Quotas
from ._engine.selection import Selection
from ._engine.served import attach
from ._engine.settler import Settler
from ._engine.stream import async_chunk_stream, chunk_stream
from ._engine.walk import Prefix
from ._errors import ConfigError, InvalidRequest
from ._limit_notes import limit_warnings
from ._policy.kinds import KIND
from ._policy.scoping import scopes_for
from ._policy.strategies import Strategy, strategy_from
from ._status import EndpointStatus, endpoint_statuses
from ._stores import open_store

if TYPE_CHECKING:
    from ._engine.batch_item import BatchItem
    from ._engine.batch_run import AsyncBatchRun, BatchRun
    from ._engine.probe import Probe
    from ._providers.transport import Transport
    from ._stores import QuotaStore

log = logging.getLogger("llamux")

WARNINGS_EVERY = 30.0
"""Seconds between two reads of what the store holds that the config disagrees with."""
T = TypeVar("T")


class Router:
    """Routes chat requests across endpoints so that no quota is ever crossed.

    ``store`` is a URL (``memory://``, ``sqlite:///path``, ``redis://host:port/db``,
    ``redis+cluster://host:port,...``) or a store object; by default ``LLAMUX_STORE``, else
    SQLite in the user state directory.
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
        scopes_for(self.endpoints, {pool.name: pool for pool in pools})  # config errors first
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
        pooled = {pool.name: pool for pool in pools}
        self.quotas = Quotas(self.endpoints, pooled, self.store, self.clock.now())
        """Each endpoint's scopes, with the limits known now (configured, learned, catalog)."""
        self._settler = Settler(self.store, self.clock, self.quotas)
        self._unowned: tuple[float, list[str]] | None = None
        self._conflicts = declare_limits(self.store, self.quotas.declared(), self.clock.now())
        for line in self._conflicts:
            log.warning("%s", line)
        self._keys = Keys()
        self._sdk_imported = False
        self._prefixes: dict[tuple[object, ...], Prefix] = {}
        """Refused prefixes learned by decisions, for the next ones (see ``_engine/walk``)."""
        self._selection = Selection(self.endpoints, self.routes)
        self._queries = Queries(self.store, self.quotas, self.clock)
        """What ``query`` reservations need at their settle (see ``_engine/queries``)."""
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
        self, messages: Sequence[Mapping[str, Any]], *, dry_run: bool = False, **params: Any
    ) -> tuple[str, str, str, dict[str, Any]]:
        """Pick an endpoint and reserve its quota; you call the provider.

        Returns ``(provider, model, endpoint id, props)``; ``props`` has ``base_url``,
        ``api_key_env``, ``limits``, ``remaining``, ``reservation`` and ``tokens``.
        Report the real usage with :meth:`settle` (else the estimate stays charged), or give
        it back with :meth:`release` if you do not send it.

        ``dry_run=True`` reserves nothing: the endpoint that would be chosen now (or the
        same ``NoEndpointAvailable``), ``remaining`` as it would be after this request, and
        ``reservation`` None. Nothing is written: no count, no reservation, no turn of a
        rotating strategy (it answers with its first turn). Another request may take that
        capacity before yours: only a real reservation holds it.
        """
        admission = self._admission(messages, params, mode=None, dry_run=dry_run)
        while isinstance(got := admission.next(), float):
            self.clock.sleep(got)
        ep, reservation = got.endpoint, got.reservation
        self._queries.admitted(ep, reservation, dry_run)
        own, budgeted = self.quotas.scopes[ep.id][0], ep.id in self.quotas.budgeted
        return ep.provider, ep.model, ep.id, query_props(ep, own, reservation, dry_run, budgeted)

    def settle(self, reservation: str, usage: Any) -> bool:
        """Correct a reservation with the real usage: a token count, a usage object or dict,
        or a whole response, within ``SETTLE_DEADLINE`` (10 minutes) of the query. Returns
        False if the reservation is unknown, settled, released or past its deadline: its
        estimate then stays counted (a warning is logged the first time)."""
        return self._queries.settle(reservation, usage)

    def release(self, reservation: str) -> bool:
        """Give a reservation back entirely: the call never reached the provider. Returns
        False if the reservation is unknown, settled, released or past its deadline."""
        return self._queries.release(reservation)

    def completion(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> Any:
        """Serve a chat completion from the best endpoint with quota, failing over on errors.

        OpenAI chat parameters pass through unchanged; ``model`` selects endpoints (an
        endpoint id or an upstream model name; ``auto`` or absent: all). ``wait=SECONDS``
        waits up to that long for capacity instead of raising ``NoEndpointAvailable``.
        Returns the SDK's ``ChatCompletion``, or with ``stream=True`` an iterator of its
        ``ChatCompletionChunk`` (fail-over happens only before the first chunk).
        """
        return _served(self.call(messages, params))

    async def acompletion(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> Any:
        """The awaitable twin of :meth:`completion`; with ``stream=True`` the awaited result
        is an async iterator of chunks. Store I/O runs off the event loop (see :meth:`acall`)."""
        return await _aserved(await self.acall(messages, params))

    def embeddings(self, input: Any, **params: Any) -> Any:
        """Embeddings of ``input`` (a string, a list of strings, token ids or lists of token
        ids) from the best endpoint that serves embeddings, failing over as ``completion``
        does; parameters (``dimensions``, ``encoding_format``, ...) pass through. Returns the
        SDK's ``CreateEmbeddingResponse``. A list longer than every endpoint's
        ``max_inputs`` raises ``InvalidRequest``: llamux never splits a request."""
        return _served(self.call(input, params, kind="embeddings"))

    async def aembeddings(self, input: Any, **params: Any) -> Any:
        """The awaitable twin of :meth:`embeddings`."""
        return await _aserved(await self.acall(input, params, kind="embeddings"))

    def responses(self, input: Any, **params: Any) -> Any:
        """A Responses API request (``input``: a string or input items) to the best endpoint
        that serves it; parameters pass through. Returns the SDK's ``Response``, or with
        ``stream=True`` an iterator of its typed events (settled from
        ``response.completed``; fail-over only before the first event)."""
        return _served(self.call(input, params, kind="responses"))

    async def aresponses(self, input: Any, **params: Any) -> Any:
        """The awaitable twin of :meth:`responses`."""
        return await _aserved(await self.acall(input, params, kind="responses"))

    def text_completion(self, prompt: Any, **params: Any) -> Any:
        """A legacy text completion (``/v1/completions``) of ``prompt``; returns the SDK's
        ``Completion``, or with ``stream=True`` an iterator of them."""
        return _served(self.call(prompt, params, kind="completions"))

    async def atext_completion(self, prompt: Any, **params: Any) -> Any:
        """The awaitable twin of :meth:`text_completion`."""
        return await _aserved(await self.acall(prompt, params, kind="completions"))

    def batch(
        self,
        requests: Iterable[BatchItem | Mapping[str, Any]],
        *,
        concurrency: int | None = None,
        max_attempts: int = 5,
    ) -> BatchRun:
        """Serve many requests of any kind at the quotas' full speed; an iterator of
        ``(index, result_or_error)`` as each completes (``index``: its position in
        ``requests``, from 0). A request is a :class:`BatchItem` or an OpenAI Batch line
        (``{"url": "/v1/embeddings", "body": {...}}``; without ``url``: chat). Items wait
        for capacity on the router's clock (quota never fails one); 429s, 5xx and timeouts
        fail over, each item making at most ``max_attempts`` failed provider calls; what the
        provider refuses as invalid (400, 404, 422) is the item's error, not retried. The
        result is the SDK's response (``served_by`` says which endpoint), the error a
        ``LlamuxError``. ``concurrency`` caps the items in flight (default: sized from what
        the endpoints admit and their latency). ``stop()`` ends it after the items being
        sent; ``progress()`` counts."""
        from ._engine.batch import Batcher
        from ._engine.batch_run import BatchRun

        return BatchRun(Batcher(self, max_attempts, concurrency), requests)

    def abatch(
        self,
        requests: Iterable[BatchItem | Mapping[str, Any]] | AsyncIterable[Any],
        *,
        concurrency: int | None = None,
        max_attempts: int = 5,
    ) -> AsyncBatchRun:
        """The async twin of :meth:`batch`: ``async for index, result in router.abatch(...)``."""
        from ._engine.batch import Batcher
        from ._engine.batch_run import AsyncBatchRun

        return AsyncBatchRun(Batcher(self, max_attempts, concurrency), requests)

    def call(self, messages: Any, params: Mapping[str, Any], kind: str = CHAT) -> Call:
        """The request engine for one request that llamux sends itself, synchronously:
        ``answer()`` reserves, calls and fails over; ``served()`` / ``streaming()`` settle.
        ``completion`` is a driver over it. ``kind``: chat (``messages``), embeddings or
        responses (``messages`` is its ``input``), completions (its ``prompt``). Raises
        ``InvalidRequest`` for malformed input."""
        return Call(self._admission(messages, params, mode="sync", kind=kind), *self._engine())

    async def acall(
        self, messages: Any, params: Mapping[str, Any], *, raw: bool = False, kind: str = CHAT
    ) -> Call:
        """The async twin of :meth:`call`, for this event loop (``raw``: the provider's HTTP
        answer unparsed, as the proxy relays it). Its ``offload`` runs store work in a
        worker thread, or inline for a store whose operations never block."""
        import asyncio

        if not self._sdk_imported:  # ~0.4 s the first time: not on the event loop
            await asyncio.to_thread(importlib.import_module, "openai")
            self._sdk_imported = True
        mode, loop = ("raw" if raw else "async"), asyncio.get_running_loop()
        admission = self._admission(messages, params, mode=mode, loop=loop, kind=kind)
        return Call(admission, *self._engine())

    def _engine(self) -> tuple[Settler, Transport, Clock, bool, Any]:
        inline = bool(getattr(self.store, "inline", False))
        return (
            self._settler,
            self.transport,
            self.clock,
            inline,
            getattr(self.store, "nowait", None),
        )

    def probe(self, endpoint: str) -> Probe:
        """Ask ``endpoint``'s provider for its limits at the least cost: its key endpoint
        where it has one (OpenRouter), else one chat request of one output token (reserved
        and settled like any other). What it states is learned; see ``Probe``."""
        if endpoint not in self.quotas.scopes:
            raise ConfigError(f"no endpoint is named {endpoint!r}; use one of: {self._ids()}")
        from ._engine.probe import probe

        by_id = {ep.id: ep for ep in self.endpoints}
        return probe(self, by_id[endpoint])

    def key_of(self, ep: Endpoint) -> str | None:
        """``ep``'s API key from the environment (None if unset); never shown anywhere."""
        return self._keys.get(ep)

    @property
    def settler(self) -> Settler:
        """What turns provider answers into store updates (settles, learned limits)."""
        return self._settler

    def status(self) -> list[EndpointStatus]:
        """Every endpoint's usage per rule, key presence and cool-down, now."""
        return endpoint_statuses(
            self.endpoints, self.quotas, self.store, self._keys, self.clock.now()
        )

    def warnings(self) -> list[str]:
        """What the store holds that this config disagrees with: usage no configured
        endpoint or pool owns (a quota renamed or removed, a file shared with another
        config), quotas another config gave other limits (each process keeps its own),
        limits the table sets above what the provider reported or the catalog says, and
        data the store noticed it lost (a Redis restarted without persistence: its usage
        from before is forgotten). Read from the store at most every ``WARNINGS_EVERY``
        seconds (the dashboard polls)."""
        now = self.clock.now()
        if self._unowned is None or now - self._unowned[0] >= WARNINGS_EVERY:
            scopes = self.quotas.scopes.values()
            found = [*store_losses(self.store), *unowned_usage(self.store, scopes, now)]
            self._unowned = (now, found)
        limits = limit_warnings(self.quotas, datetime.fromtimestamp(now, UTC).date())
        return [*self._unowned[1], *self._conflicts, *limits]

    def reset(self, endpoint: str | None = None) -> None:
        """Forget recorded usage and cool-downs of one endpoint (by id) or of all."""
        if endpoint is None:
            self.store.reset(None)
            return
        if endpoint not in self.quotas.scopes:
            raise ConfigError(f"no endpoint is named {endpoint!r}; use one of: {self._ids()}")
        self.store.reset(self.quotas.scopes[endpoint][0].key)
        self.quotas.refresh(float("inf"))  # what it had learned is forgotten too
        self.store.reset(endpoint)  # its measured speed and its reservations

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            from ._providers.transport import OpenAITransport

            self._transport = OpenAITransport(self._timeout or DEFAULT_TIMEOUT)
        return self._transport

    # -- the path ----------------------------------------------------------------------

    def _admission(
        self,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        *,
        mode: str | None,
        loop: Any = None,
        kind: str = CHAT,
        dry_run: bool = False,
    ) -> Admission:
        """The reservation state of one request. ``mode`` is how llamux will call the
        provider (``sync``, ``async``, ``raw``; ``None``: the caller calls, as for ``query``):
        its client is readied before each reservation and the charge is held in flight.
        ``dry_run``: decided against a read-only view of the store (``DryRun``)."""
        if kind == CHAT:
            check_params(params, messages)
        elif kind in KIND:
            check_input(kind, messages, params)
        else:
            raise InvalidRequest(f"unknown kind of request {kind!r}; use one of {', '.join(KIND)}")
        candidates, route = self.candidates(params.get("model"), kind)
        prepare = None
        if mode is not None:
            transport = self.transport

            def prepare(ep: Endpoint, key: str) -> None:
                transport.prepare(ep, key, mode, loop)

        return Admission(
            messages=messages,
            params=params,
            candidates=candidates,
            quotas=self.quotas,
            prefixes=None if dry_run else self._prefixes,
            store=DryRun(self.store) if dry_run else self.store,
            strategy=self._strategy(params.get("strategy"), route),
            clock=self.clock,
            keys=self._keys,
            route=route.name if route else str(params.get("model") or "auto"),
            flight=self._flight if mode is not None else 0.0,
            prepare=prepare,
            kind=KIND[kind],
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

    def candidates(self, model: Any, kind: str = CHAT) -> tuple[tuple[Endpoint, ...], Route | None]:
        """The endpoints of ``kind`` (chat, embeddings, ...) a ``model`` value selects: all
        (none or ``auto``), an endpoint id or key list, a route name, or every endpoint
        serving that upstream model; the same tuple each time (see ``Selection``)."""
        return self._selection.candidates(model, kind)

    def _ids(self) -> str:
        return ", ".join(e.id for e in self.endpoints)


def _served(call: Call) -> Any:
    """Drive a sync call: its answer with how it was served, or its stream."""
    answer = call.answer()
    if answer.stream:
        return chunk_stream(call, answer, call.streaming(answer))
    body = answer.reply.body
    attach(body, call.served(answer, getattr(body, "usage", None)))
    return body


async def _aserved(call: Call) -> Any:
    """The async twin of :func:`_served` (store work off the event loop)."""
    answer = await call.aanswer()
    if answer.stream:
        return async_chunk_stream(call, answer, await call.offload(call.streaming, answer))
    body = answer.reply.body
    attach(body, await call.offload(call.served, answer, getattr(body, "usage", None)))
    return body
