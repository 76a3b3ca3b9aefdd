"""One request through the router, from its reservation to its settle: the request engine.

A :class:`Call` owns the attempt loop (reserve the next endpoint in strategy order, call it,
carry out the failover verdict of a failure), learning from the answer's headers, settling
a served answer and recording its speed. ``Router.completion`` and ``acompletion``, the
stream wrappers and the proxy's relay are drivers over it: the sync and async loops differ
only in how they wait and call.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._errors import ProviderError
from .._policy.kinds import CHAT, CHAT_STREAM
from .._policy.money import MICRO, usage_price
from .._policy.performance import measured
from .._policy.quota import Reservation
from .._policy.tokens import usage_tokens
from .._providers.boundary import stream_error
from .._stores.waiting import WouldBlock
from .served import Attempt, Served

if TYPE_CHECKING:
    from .._clock import Clock
    from .._config.load import Endpoint
    from .._providers.transport import RawReply, Reply, Transport
    from .admission import Admission, Admitted
    from .settler import Settler

T = TypeVar("T")

ROUTER_PARAMS = frozenset({"wait", "strategy"})
"""Keyword arguments llamux consumes itself; every other one goes to the provider."""


R = TypeVar("R", "Reply", "RawReply")
"""An answer as the SDK parsed it, or as HTTP (the proxy's relay)."""


@dataclass(frozen=True, slots=True)
class Answer(Generic[R]):
    """An endpoint's successful answer to one call: for a stream, with its first chunk."""

    got: Admitted
    reply: R
    first: Any
    started: float
    """When the call began (``time.perf_counter``)."""
    stream: bool


class Call:
    """One request: its admission (what was reserved, tried, refused), the settler that
    turns answers into store updates, and the transport. Not thread-safe: one request, one
    caller at a time."""

    def __init__(
        self,
        admission: Admission,
        settler: Settler,
        transport: Transport,
        clock: Clock,
        inline: bool = False,
        nowait: Callable[[], AbstractContextManager[None]] | None = None,
    ) -> None:
        self.admission = admission
        self.settler = settler
        self.transport = transport
        self.clock = clock
        self.inline = inline
        """Whether the store's operations never block (the memory store): the async path
        then runs them on the event loop instead of in a worker thread."""
        self.nowait = nowait
        """The store's ``nowait()``, if it has one (SQLite): the async path tries store work
        on the event loop first and moves it to a thread only if the store is busy."""
        self.most_failures: int | None = None
        """At most this many failed provider calls before the last failure is raised
        instead of failing over (a batch's ``max_attempts``); None: no bound."""

    async def offload(self, function: Callable[..., T], *args: Any) -> T:
        """Run store work without blocking the event loop: the one policy of every async
        path (the library's, the proxy's). Inline for a store that never blocks; on the
        loop for one that can say it would have to wait (``WouldBlock``: nothing was done,
        and the work is repeated in a worker thread); else in a worker thread."""
        if self.inline:
            return function(*args)
        if self.nowait is not None:
            try:
                with self.nowait():
                    return function(*args)
            except WouldBlock:
                pass
        import asyncio

        return await asyncio.to_thread(function, *args)

    @property
    def attempts(self) -> list[Attempt]:
        """What was tried so far: skipped, refused, failed, served."""
        return self.admission.attempts

    def answer(self) -> Answer[Reply]:
        """Reserve, call and fail over until an endpoint answers (sync); for a stream, its
        first chunk is read before it counts as answered (a failure before it fails over)."""
        while True:
            got = self.admission.next()
            if isinstance(got, float):
                self.clock.sleep(got)
                continue
            params = self._provider_params(got.endpoint)
            started = time.perf_counter()
            try:
                reply = self.transport.complete(got.endpoint, got.api_key, params, *self._kind)
                first = first_chunk(reply.body, got) if params.get("stream") else None
            except ProviderError as error:
                if not self._failed(self.settler.failed(got, error)):
                    raise
                continue
            except Exception as exc:
                refusal = self.settler.refused(got, exc)
                raise refusal from (None if refusal is exc else exc)
            return Answer(got, reply, first, started, bool(params.get("stream")))

    async def aanswer(self) -> Answer[Reply]:
        """The async twin of :meth:`answer`."""
        return await self._aloop(self.transport.acomplete, afirst_chunk)

    async def araw(self) -> Answer[RawReply]:
        """:meth:`aanswer` with the provider's HTTP answer unparsed (the proxy relays it);
        for a stream, ``Answer.first`` is its first byte chunk and the iterator of the rest."""
        return await self._aloop(self.transport.araw, first_bytes)

    async def _aloop(
        self,
        send: Callable[..., Awaitable[R]],
        first_of: Callable[[Any, Admitted], Awaitable[Any]],
    ) -> Answer[R]:
        while True:
            got = await self.offload(self.admission.next)
            if isinstance(got, float):
                await self.clock.asleep(got)
                continue
            params = self._provider_params(got.endpoint)
            started = time.perf_counter()
            try:
                reply = await send(got.endpoint, got.api_key, params, *self._kind)
                first = await first_of(reply.body, got) if params.get("stream") else None
            except ProviderError as error:
                if not self._failed(await self.offload(self.settler.failed, got, error)):
                    raise
                continue
            except Exception as exc:
                refusal = await self.offload(self.settler.refused, got, exc)
                raise refusal from (None if refusal is exc else exc)
            return Answer(got, reply, first, started, bool(params.get("stream")))

    def served(self, answer: Answer[Any], usage: Any) -> Served:
        """A whole (not streamed) answer was served with ``usage``: learn from its headers,
        settle it, record its speed; the record of how it was served. Store work only: an
        async driver runs it off the event loop in one hop."""
        got, latency = answer.got, answer.reply.latency
        tokens = usage_tokens(usage)
        self.settler.settle(got, tokens, sample=measured(latency, usage, None), usage=usage)
        self.settler.learn(got, answer.reply.headers)  # after: repeated, a settle is a no-op
        self.attempts.append(Attempt(got.endpoint.id, "served", latency=latency))
        return self.record(answer, tokens, usage)

    def record(self, answer: Answer[Any], tokens: int | None = None, usage: Any = None) -> Served:
        """How the request was served: by which endpoint, ``tokens`` its settled usage if
        known (``usage``, its usage object, prices it), after which attempts (so far)."""
        ep, reservation = answer.got.endpoint, answer.got.reservation
        return Served(
            ep.id,
            ep.provider,
            ep.model,
            reservation.id,
            reservation.tokens,
            tokens,
            tuple(self.attempts),
            spend(ep, reservation, usage),
        )

    def streaming(self, answer: Answer[Any]) -> Callable[[Any, ProviderError | None], None]:
        """A stream was served (its first chunk is here): learn from its headers; what to do
        when it ends (settle at its first chunk's moment with its usage, record its speed;
        or carry out the verdict of a failure). Store work only, as :meth:`served`."""
        got = answer.got
        self.settler.learn(got, answer.reply.headers)
        self.attempts.append(Attempt(got.endpoint.id, "served", latency=answer.reply.latency))
        settle = self.settler.ender(got, answer.started)

        def end(usage: Any, error: ProviderError | None) -> None:
            failed = settle(usage, error)
            if failed is not None:
                self.attempts.append(failed)

        return end

    def _failed(self, verdict: tuple[Attempt, bool]) -> bool:
        """Note a failed attempt; whether to try the next endpoint."""
        attempt, failover = verdict
        self.attempts.append(attempt)
        if failover and self.most_failures is not None:
            return self.failures < self.most_failures
        return failover

    @property
    def failures(self) -> int:
        """How many provider calls of this request failed so far."""
        return sum(a.outcome == "failed" for a in self.attempts)

    @property
    def hide_usage(self) -> bool:
        """Whether the usage-only last chunk is llamux's (the caller did not ask for it);
        a kind whose stream reports usage in an event of its own has none to hide."""
        if self.admission.kind.streams != CHAT_STREAM:
            return False
        options = self.admission.params.get("stream_options") or {}
        return not options.get("include_usage")

    @property
    def _kind(self) -> tuple[str, ...]:
        """The kind argument of a transport call: none for chat (a transport written before
        other kinds existed keeps working), else the kind's name."""
        kind = self.admission.kind
        return () if kind is CHAT else (kind.name,)

    def _provider_params(self, ep: Endpoint) -> dict[str, Any]:
        """The parameters sent to ``ep``: the caller's, its model, its input, and usage in
        streams that report it in a last chunk."""
        admission = self.admission
        params: Mapping[str, Any] = admission.params
        call = {k: v for k, v in params.items() if k not in ROUTER_PARAMS}
        kind = admission.kind
        given = admission.messages
        call["model"] = ep.model
        call[kind.field] = list(given) if kind is CHAT else given
        if call.get("stream") and kind.streams == CHAT_STREAM:
            call["stream_options"] = {**(call.get("stream_options") or {}), "include_usage": True}
        return call


def first_chunk(stream: Any, got: Admitted) -> Any:
    """Read an SDK stream's first chunk, so that a failure before it can still fail over."""
    try:
        return next(iter(stream), None)
    except Exception as exc:
        error = stream_error(exc, got.endpoint, got.api_key)
    raise error  # outside the except: no SDK exception (with the key) as its context


async def afirst_chunk(stream: Any, got: Admitted) -> Any:
    """The async twin of :func:`first_chunk`."""
    try:
        async for chunk in stream:
            return chunk
        return None
    except Exception as exc:
        error = stream_error(exc, got.endpoint, got.api_key)
    raise error


async def first_bytes(response: Any, got: Admitted) -> tuple[bytes, AsyncIterator[bytes]]:
    """Read an HTTP response's first byte chunk, so that a failure before it can still fail
    over; returns it and the iterator of the rest."""
    chunks: AsyncIterator[bytes] = response.aiter_bytes()
    try:
        return await anext(chunks, b""), chunks
    except Exception as exc:
        error = stream_error(exc, got.endpoint, got.api_key)
    await response.aclose()
    raise error  # outside the except: the HTTP library's error (with the key) is not kept


def spend(ep: Endpoint, reservation: Reservation, usage: Any) -> float | None:
    """What a request served by ``ep`` cost in dollars: priced from ``usage``'s prompt and
    completion tokens, else its reservation's estimate (priced on a budgeted endpoint);
    None if ``ep`` has no prices or nothing prices it."""
    if ep.input_cost is None and ep.output_cost is None:
        return None
    paid = usage_price(usage, ep.input_cost, ep.output_cost)
    if paid is None:
        return reservation.usd / MICRO if reservation.usd else None
    return paid / MICRO
