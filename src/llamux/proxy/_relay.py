"""The proxy's request path: route one chat request, relay the provider's own bytes.

:func:`arelay` is ``Router.acompletion`` with the provider's HTTP answer in place of parsed
SDK objects: the same request engine (``Router.acall``: admission, failover, settling), then
the body relayed unchanged. A stream fails over only before its first byte chunk reaches the
client; a cut after that ends the client's stream (with an SSE error event) and is never
retried elsewhere. Streams settle when they end, however they end: a client that hangs up
still settles (the estimate stays when no usage arrived).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import anyio

from .._engine.served import Attempt, Served
from .._errors import LlamuxError, ProviderError
from .._policy.tokens import usage_tokens
from .._providers.sse import UsageScanner, json_usage

if TYPE_CHECKING:
    from .._engine.admission import Admitted
    from .._engine.call import Answer, Call
    from .._engine.stream import OnEnd
    from .._providers.transport import RawReply
    from .._router import Router

Done = Callable[[Sequence[Attempt], Served | None], None]
"""Told once how a request ended: its attempts, and how it was served (``None``: it failed).
For a stream, when the stream ends; ``Served.tokens`` is then the settled usage."""

FORWARDED = ("content-type", "cache-control")
"""Response headers passed on from the provider (the body is re-framed by the proxy)."""


@dataclass(frozen=True, slots=True)
class Relayed:
    """A provider's answer to pass on: status, headers, and the body or the byte stream."""

    status: int
    headers: dict[str, str]
    served: Served
    body: bytes | None = None
    stream: ByteStream | None = None
    remaining: tuple[tuple[str, str, int], ...] = ()
    """What its reservation left of each rule: (scope, rule, remaining)."""


async def arelay(
    router: Router,
    messages: Any,
    params: Mapping[str, Any],
    done: Done | None = None,
    kind: str = "chat",
) -> Relayed:
    """Serve a request of ``kind`` (chat: ``messages``; embeddings, responses: its input;
    completions: its prompt) from the best endpoint with quota; relay its answer's bytes.

    Raises what ``Router.acompletion`` raises (``NoEndpointAvailable``, ``RequestTooLarge``,
    ``ProviderError`` for errors another endpoint would repeat, ``ConfigError``).
    """
    call = await router.acall(messages, params, raw=True, kind=kind)
    try:
        return await _serve(call, done)
    except LlamuxError:
        if done is not None:
            done(tuple(call.attempts), None)
        raise


async def _serve(call: Call, done: Done | None) -> Relayed:
    """``Router.acompletion``'s path (the same request engine), delivering bytes instead."""
    answer = await call.araw()
    if not answer.stream:
        return await call.offload(_answer, call, answer, done)
    response = answer.reply.body
    end = await call.offload(call.streaming, answer)
    stream = ByteStream(
        response,
        *answer.first,
        scanner=UsageScanner(hide_usage=call.hide_usage),
        got=answer.got,
        attempts=call.attempts,
        on_end=end,
        served=call.record(answer),
        done=done,
        offload=call.offload,
    )
    left = answer.got.reservation.remaining
    return Relayed(
        response.status_code, _forwarded(response), stream.served, stream=stream, remaining=left
    )


def _answer(call: Call, answer: Answer[RawReply], done: Done | None) -> Relayed:
    """A whole JSON answer: learn, settle with its usage, record the speed, pass the bytes
    on (one worker-thread hop for all the store I/O)."""
    response = answer.reply.body
    body: bytes = response.content
    served = call.served(answer, json_usage(body))
    if done is not None:
        done(served.attempts, served)
    left = answer.got.reservation.remaining
    return Relayed(response.status_code, _forwarded(response), served, body=body, remaining=left)


class ByteStream:
    """The provider's stream as bytes for the client, settled when it ends however it ends.

    Iterate it once; :meth:`aclose` when done (also when never iterated): it closes the
    provider's response and settles, shielded from cancellation.
    """

    def __init__(
        self,
        response: Any,
        first: bytes,
        rest: AsyncIterator[bytes],
        *,
        scanner: UsageScanner,
        got: Admitted,
        attempts: list[Attempt],
        on_end: OnEnd,
        served: Served,
        done: Done | None,
        offload: Callable[..., Awaitable[Any]],
    ) -> None:
        self._offload = offload
        self._response = response
        self._first = first
        self._rest = rest
        self._scanner = scanner
        self._got = got
        self._attempts = attempts
        self._on_end = on_end
        self.served = served
        self._done = done
        self._settled = False
        self._chunks = self._relay()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks

    async def _relay(self) -> AsyncGenerator[bytes, None]:
        error: ProviderError | None = None
        try:
            if out := await self._take(self._first):
                yield out
            async for chunk in self._rest:
                if out := await self._take(chunk):
                    yield out
            if out := self._scanner.rest():
                yield out
        except Exception as exc:  # the provider broke off: tell the client, never retry
            if not self._scanner.finished:
                error = _cut(exc, self._got)
                yield _error_event(error)
        finally:
            await self._end(error)

    async def _take(self, chunk: bytes) -> bytes:
        """The bytes of ``chunk`` to pass on; settles as soon as the answer is complete,
        before the client sees its end."""
        out = self._scanner.feed(chunk)
        if self._scanner.finished:
            await self._settle(None)
        return out

    async def aclose(self) -> None:
        """Stop relaying (the client is gone or done) and settle, if not done yet."""
        with anyio.CancelScope(shield=True):
            await self._chunks.aclose()
            await self._end(None)

    async def _end(self, error: ProviderError | None) -> None:
        with anyio.CancelScope(shield=True):
            await self._response.aclose()
            await self._settle(error)

    async def _settle(self, error: ProviderError | None) -> None:
        if self._settled:
            return
        self._settled = True
        usage = self._scanner.usage
        with anyio.CancelScope(shield=True):
            await self._offload(self._on_end, usage, error)
        if self._done is not None:
            tokens = usage_tokens(usage)
            served = replace(self.served, tokens=tokens, attempts=tuple(self._attempts))
            self._done(served.attempts, served if error is None else None)


def _cut(exc: Exception, got: Admitted) -> ProviderError:
    """A provider error for a stream that broke after its head (it may bill the request)."""
    from .._providers.boundary import stream_error

    return stream_error(exc, got.endpoint, got.api_key)


def _error_event(error: ProviderError) -> bytes:
    """The SSE event that tells an OpenAI client its stream failed mid-way."""
    body = {"error": {"message": str(error), "type": "upstream_error", "code": "stream_cut"}}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _forwarded(response: Any) -> dict[str, str]:
    return {name: response.headers[name] for name in FORWARDED if name in response.headers}
