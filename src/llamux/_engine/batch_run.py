"""The drivers of a batch: keep the items going, as many at once as the ``Batcher`` sizes,
and yield ``(index, result_or_error)`` as each completes. :class:`BatchRun` uses a thread
pool; :class:`AsyncBatchRun` tasks on the running event loop. Both read the items lazily
(a generator of ten million lines is fine) and stop when told to (``stop()``): no new item
is taken, items waiting for capacity are dropped (they were never sent), items being sent
finish and are yielded, then the iteration ends.
"""

from __future__ import annotations

import itertools
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Generator,
    Iterable,
    Iterator,
)
from typing import TYPE_CHECKING, Any

from .batch import STOPPED, Batcher, BatchProgress

if TYPE_CHECKING:
    import asyncio
    from concurrent.futures import Future

RESIZE_EVERY = 50
"""Items completed between two sizings (latencies get measured as the batch runs)."""


class BatchRun:
    """An iterator of ``(index, result_or_error)`` in the order items complete; ``index``
    is the item's position in the requests (from 0). ``stop()`` (from any thread, e.g. a
    signal handler) ends it after the items being sent; ``progress()`` counts."""

    def __init__(self, batcher: Batcher, requests: Iterable[Any]) -> None:
        self.batcher = batcher
        self._items = enumerate(requests)
        self._flow = self._drive()

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        return self

    def __next__(self) -> tuple[int, Any]:
        return next(self._flow)

    def stop(self) -> None:
        self.batcher.stop()

    def close(self) -> None:
        """Stop, and wait for the items being sent (their results are not yielded)."""
        self.batcher.stop()
        self._flow.close()

    def progress(self) -> BatchProgress:
        return self.batcher.progress()

    def _drive(self) -> Generator[tuple[int, Any], None, None]:
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        batcher = self.batcher
        first = next(self._items, None)
        if first is None:
            return
        limit = batcher.size(first[1])
        items, more = itertools.chain([first], self._items), True
        pending: dict[Future[Any], int] = {}
        completed = 0
        with ThreadPoolExecutor(batcher.most, thread_name_prefix="llamux-batch") as pool:
            try:
                while True:
                    while more and not batcher.stopped and len(pending) < limit:
                        item = next(items, None)
                        if item is None:
                            more = False
                            break
                        pending[pool.submit(batcher.run, item[1])] = item[0]
                    if not pending:
                        return
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        index, outcome = pending.pop(future), future.result()
                        completed += 1
                        if outcome is not STOPPED:
                            yield index, outcome
                    if completed >= RESIZE_EVERY:
                        completed, limit = 0, min(batcher.most, batcher.size())
            finally:
                batcher.stop()


class AsyncBatchRun:
    """The async twin of :class:`BatchRun`: ``async for index, result in run``; the
    requests may be an iterable or an async iterable."""

    def __init__(self, batcher: Batcher, requests: Iterable[Any] | AsyncIterable[Any]) -> None:
        self.batcher = batcher
        self._requests = requests
        self._flow = self._drive()

    def __aiter__(self) -> AsyncIterator[tuple[int, Any]]:
        return self

    async def __anext__(self) -> tuple[int, Any]:
        return await anext(self._flow)

    def stop(self) -> None:
        self.batcher.stop()

    async def aclose(self) -> None:
        """Stop, and wait for the items being sent (their results are not yielded)."""
        self.batcher.stop()
        await self._flow.aclose()

    def progress(self) -> BatchProgress:
        return self.batcher.progress()

    async def _drive(self) -> AsyncGenerator[tuple[int, Any], None]:
        import asyncio

        batcher, items = self.batcher, _aenumerate(self._requests)
        first = await anext(items, None)
        if first is None:
            return
        limit = batcher.size(first[1])
        waiting: list[tuple[int, Any]] = [first]
        more = True
        pending: dict[asyncio.Task[Any], int] = {}
        completed = 0
        try:
            while True:
                while more and not batcher.stopped and len(pending) < limit:
                    item = waiting.pop() if waiting else await anext(items, None)
                    if item is None:
                        more = False
                        break
                    pending[asyncio.ensure_future(batcher.arun(item[1]))] = item[0]
                if not pending:
                    return
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    index, outcome = pending.pop(task), task.result()
                    completed += 1
                    if outcome is not STOPPED:
                        yield index, outcome
                if completed >= RESIZE_EVERY:
                    completed, limit = 0, min(batcher.most, batcher.size())
        finally:
            batcher.stop()
            if pending:
                await _settle(pending)


async def _settle(pending: dict[asyncio.Task[Any], int]) -> None:
    """Let the items being sent finish (the stop drops the waiting ones at once)."""
    import asyncio

    await asyncio.gather(*pending, return_exceptions=True)


async def _aenumerate(
    requests: Iterable[Any] | AsyncIterable[Any],
) -> AsyncIterator[tuple[int, Any]]:
    index = 0
    if isinstance(requests, AsyncIterable):
        async for value in requests:
            yield index, value
            index += 1
        return
    for value in requests:
        yield index, value
        index += 1
