"""Streams of chunks relayed to the caller, settled with the usage the stream reports.

llamux asks the provider for usage in the stream (``stream_options.include_usage``); the
usage-only last chunk is passed on only if the caller asked for it too. When the stream
ends, ``on_end(usage, error)`` settles the reservation (``usage`` is the stream's usage
object, ``None`` when the provider sent none: the estimate stays). An error after the
first chunk is raised to the caller and never retried elsewhere: the provider may already
bill for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from .._errors import ProviderError
from .._policy.kinds import CHAT
from .served import attach

if TYPE_CHECKING:
    from .._providers.transport import Reply
    from .admission import Admitted
    from .call import Answer, Call

OnEnd = Callable[[Any, ProviderError | None], None]
AsyncOnEnd = Callable[[Any, ProviderError | None], Awaitable[None]]
Translate = Callable[[Exception], ProviderError]
UsageOf = Callable[[Any], Any]
"""The usage a stream item carries, if any (``Kind.stream_usage``)."""


class _Relay:
    """What both stream flavours share: usage capture and the usage-chunk filter."""

    def __init__(
        self, first: Any, hide_usage: bool, translate: Translate, usage_of: UsageOf
    ) -> None:
        self._pending: list[Any] = [] if first is None else [first]
        self._hide_usage = hide_usage
        self._translate = translate
        self._usage_of = usage_of
        self.usage: Any = None
        self.ended = False

    def keep(self, chunk: Any) -> bool:
        """Record the chunk's usage; True if the caller should see the chunk."""
        usage = self._usage_of(chunk)
        if usage is not None:
            self.usage = usage
        return not (self._hide_usage and not getattr(chunk, "choices", None))


class ChunkStream(_Relay):
    """A sync iterator of ``ChatCompletionChunk`` (also a context manager)."""

    def __init__(
        self,
        sdk_stream: Any,
        first: Any,
        *,
        hide_usage: bool,
        translate: Translate,
        on_end: OnEnd,
        usage_of: UsageOf = CHAT.stream_usage,
    ) -> None:
        super().__init__(first, hide_usage, translate, usage_of)
        self._stream = sdk_stream
        self._chunks: Iterator[Any] = iter(sdk_stream)
        self._on_end = on_end

    def __iter__(self) -> ChunkStream:
        return self

    def __next__(self) -> Any:
        while True:
            if self._pending:
                chunk = self._pending.pop()
            else:
                error: ProviderError | None = None
                try:
                    chunk = next(self._chunks)
                except StopIteration:
                    self._end(None)
                    raise
                except Exception as exc:
                    error = self._translate(exc)
                if error is not None:  # raised outside the except: the SDK's error (whose
                    self._end(error)  # request carries the key) is not its context
                    raise error
            if self.keep(chunk):
                return chunk

    def _end(self, error: ProviderError | None) -> None:
        if not self.ended:
            self.ended = True
            self._on_end(self.usage, error)

    def close(self) -> None:
        """Stop reading; the provider may bill the whole answer, so the estimate stays."""
        self._stream.close()
        self._end(None)

    def __enter__(self) -> ChunkStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncChunkStream(_Relay):
    """An async iterator of ``ChatCompletionChunk`` (also an async context manager)."""

    def __init__(
        self,
        sdk_stream: Any,
        first: Any,
        *,
        hide_usage: bool,
        translate: Translate,
        on_end: AsyncOnEnd,
        usage_of: UsageOf = CHAT.stream_usage,
    ) -> None:
        super().__init__(first, hide_usage, translate, usage_of)
        self._stream = sdk_stream
        self._chunks: AsyncIterator[Any] = sdk_stream.__aiter__()
        self._on_end = on_end

    def __aiter__(self) -> AsyncChunkStream:
        return self

    async def __anext__(self) -> Any:
        while True:
            if self._pending:
                chunk = self._pending.pop()
            else:
                error: ProviderError | None = None
                try:
                    chunk = await self._chunks.__anext__()
                except StopAsyncIteration:
                    await self._end(None)
                    raise
                except Exception as exc:
                    error = self._translate(exc)
                if error is not None:  # outside the except, as in ChunkStream
                    await self._end(error)
                    raise error
            if self.keep(chunk):
                return chunk

    async def _end(self, error: ProviderError | None) -> None:
        if not self.ended:
            self.ended = True
            await self._on_end(self.usage, error)

    async def aclose(self) -> None:
        """Stop reading; the provider may bill the whole answer, so the estimate stays."""
        await self._stream.close()
        await self._end(None)

    async def __aenter__(self) -> AsyncChunkStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def translator(got: Admitted) -> Translate:
    """Turns an error raised mid-stream into a ProviderError (the call was accepted)."""

    def translate(exc: Exception) -> ProviderError:
        return _stream_error(exc, got)

    return translate


def _stream_error(exc: Exception, got: Admitted) -> ProviderError:
    from .._providers.boundary import stream_error

    return stream_error(exc, got.endpoint, got.api_key)


def chunk_stream(call: Call, answer: Answer[Reply], end: OnEnd) -> ChunkStream:
    """The caller's stream of an answered call; ``end`` settles it when it ends."""
    stream = ChunkStream(
        answer.reply.body,
        answer.first,
        hide_usage=call.hide_usage,
        translate=translator(answer.got),
        on_end=end,
        usage_of=call.admission.kind.stream_usage,
    )
    attach(stream, call.record(answer))
    return stream


def async_chunk_stream(call: Call, answer: Answer[Reply], end: OnEnd) -> AsyncChunkStream:
    """The async twin of :func:`chunk_stream`: ``end`` runs off the event loop by the
    call's one policy."""

    async def aend(usage: Any, error: ProviderError | None) -> None:
        await call.offload(end, usage, error)

    stream = AsyncChunkStream(
        answer.reply.body,
        answer.first,
        hide_usage=call.hide_usage,
        translate=translator(answer.got),
        on_end=aend,
        usage_of=call.admission.kind.stream_usage,
    )
    attach(stream, call.record(answer))
    return stream
