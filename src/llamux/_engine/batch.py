"""A batch's items, one at a time: :class:`Batcher` serves an item (waiting for capacity on
the router's clock, trying it again after failures within ``max_attempts``), sizes how many
to keep in flight, keeps the counts a progress view shows, and stops when told to.

The sync and async drivers (``batch_run``) keep that many items going and yield each as it
completes; ``Router.batch`` and ``abatch`` return them.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .._errors import LlamuxError
from .._policy.batch_retry import retry_in
from .._policy.concurrency import MOST, Lane, concurrency, per_minute
from .._policy.rules import UNLIMITED
from .batch_item import BatchItem, batch_item
from .served import attach

if TYPE_CHECKING:
    from .._clock import Clock
    from .._config.load import Endpoint, Route
    from .._stores import QuotaStore
    from .call import Call
    from .quotas import Quotas

SLICE = 0.5
"""Real seconds a waiting item sleeps before it looks whether the batch was stopped."""


class Stopped:
    """What an item that the batch's stop interrupted before it was sent returns."""

    def __repr__(self) -> str:
        return "STOPPED"


STOPPED = Stopped()


class BatchRouter(Protocol):
    """What a batch needs of the router."""

    clock: Clock
    store: QuotaStore
    quotas: Quotas

    def call(self, messages: Any, params: Mapping[str, Any], kind: str = ...) -> Call: ...

    async def acall(
        self, messages: Any, params: Mapping[str, Any], *, raw: bool = ..., kind: str = ...
    ) -> Call: ...

    def candidates(
        self, model: Any, kind: str = ...
    ) -> tuple[tuple[Endpoint, ...], Route | None]: ...


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """A batch now: items started, done (answered or ended in an error), ended in an error,
    waiting for capacity, and being sent per endpoint id."""

    started: int
    done: int
    errors: int
    waiting: int
    sending: Mapping[str, int] = field(default_factory=dict)


class Batcher:
    """Serves a batch's items on ``router``; thread-safe (one instance per batch)."""

    def __init__(self, router: BatchRouter, max_attempts: int, cap: int | None) -> None:
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"max_attempts must be a whole number >= 1, not {max_attempts!r}")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ValueError(f"concurrency must be a whole number >= 1 or None, not {cap!r}")
        self.router = router
        self.max_attempts = max_attempts
        self.cap = cap
        """``concurrency=``: the most items in flight (None: sized from the endpoints)."""
        self.speed = float(getattr(router.clock, "speed", 1.0))
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._calls: dict[int, Call | None] = {}
        self._ids = itertools.count()
        self._counts: Counter[str] = Counter()
        self._lanes: tuple[str, ...] = ()

    # -- the batch -------------------------------------------------------------------

    def stop(self) -> None:
        """Take no new item; items waiting for capacity end as ``STOPPED``; items being
        sent finish."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def size(self, first: Any = None) -> int:
        """Items to keep in flight: ``concurrency=``, else Little's law over the endpoints
        that serve the first item's model and kind (see ``_policy/concurrency``)."""
        if self.cap is not None:
            return self.cap
        if first is not None:
            try:
                item = batch_item(first)
                self._lanes = tuple(e.id for e in self.router.candidates(item.model, item.kind)[0])
            except LlamuxError:
                self._lanes = ()
        if not self._lanes:
            return 1
        return concurrency(self._measured(self._lanes), speed=self.speed)

    @property
    def most(self) -> int:
        """The most items ever in flight (a thread pool's size)."""
        return self.cap if self.cap is not None else MOST

    def progress(self) -> BatchProgress:
        """The counts now (read from any thread)."""
        with self._lock:
            calls = list(self._calls.values())
            counts = dict(self._counts)
        sending = Counter(c.admission.current for c in calls if c and c.admission.current)
        waiting = len(calls) - sum(sending.values())
        return BatchProgress(
            counts.get("started", 0),
            counts.get("done", 0),
            counts.get("errors", 0),
            waiting,
            {k: v for k, v in sending.items() if k is not None},
        )

    # -- one item --------------------------------------------------------------------

    def run(self, value: Any) -> Any:
        """Serve one item: its response (with how it was served, see ``served_by``), its
        error (a ``LlamuxError``), or ``STOPPED``."""
        slot = self._begin()
        try:
            item, failures = batch_item(value), 0
            while not self.stopped:
                call = None
                try:
                    call = self.router.call(item.input, item.params, kind=item.kind)
                    self._track(slot, call)
                    call.most_failures = self.max_attempts - failures
                    answer = call.answer()
                    body = answer.reply.body
                    attach(body, call.served(answer, getattr(body, "usage", None)))
                    return self._end(body)
                except LlamuxError as error:
                    failures += call.failures if call is not None else 0
                    wait = retry_in(error, failures, self.max_attempts)
                    if wait is None:
                        return self._end(error)
                self._track(slot, None)
                self._sleep(wait)
            return STOPPED
        except LlamuxError as error:
            return self._end(error)
        finally:
            self._finish(slot)

    async def arun(self, value: Any) -> Any:
        """The async twin of :meth:`run` (store work off the event loop)."""
        slot = self._begin()
        try:
            item, failures = batch_item(value), 0
            while not self.stopped:
                call = None
                try:
                    call = await self.router.acall(item.input, item.params, kind=item.kind)
                    self._track(slot, call)
                    call.most_failures = self.max_attempts - failures
                    answer = await call.aanswer()
                    body = answer.reply.body
                    usage = getattr(body, "usage", None)
                    attach(body, await call.offload(call.served, answer, usage))
                    return self._end(body)
                except LlamuxError as error:
                    failures += call.failures if call is not None else 0
                    wait = retry_in(error, failures, self.max_attempts)
                    if wait is None:
                        return self._end(error)
                self._track(slot, None)
                await self._asleep(wait)
            return STOPPED
        except LlamuxError as error:
            return self._end(error)
        finally:
            self._finish(slot)

    # -- the parts -------------------------------------------------------------------

    def _measured(self, ids: Sequence[str]) -> list[Lane]:
        performance = self.router.store.performance(list(ids))
        lanes = []
        for key in ids:
            limits = [
                (rule.metric, rule.limit)
                for scope in self.router.quotas.scopes[key]
                for rule in scope.rules
                if rule.limit != UNLIMITED
            ]
            measured = performance.get(key)
            lanes.append(Lane(per_minute(limits), measured.latency if measured else None))
        return lanes

    def _begin(self) -> int:
        with self._lock:
            slot = next(self._ids)
            self._calls[slot] = None
            self._counts["started"] += 1
        return slot

    def _track(self, slot: int, call: Call | None) -> None:
        with self._lock:
            self._calls[slot] = call

    def _finish(self, slot: int) -> None:
        with self._lock:
            self._calls.pop(slot, None)

    def _end(self, outcome: Any) -> Any:
        with self._lock:
            self._counts["done"] += 1
            if isinstance(outcome, LlamuxError):
                self._counts["errors"] += 1
        return outcome

    def _sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` on the router's clock, in slices, until the batch stops."""
        step, left = SLICE * self.speed, seconds
        while left > 0 and not self.stopped:
            self.router.clock.sleep(min(step, left))
            left -= step

    async def _asleep(self, seconds: float) -> None:
        step, left = SLICE * self.speed, seconds
        while left > 0 and not self.stopped:
            await self.router.clock.asleep(min(step, left))
            left -= step


__all__ = ["STOPPED", "BatchItem", "BatchProgress", "BatchRouter", "Batcher", "Stopped"]
