"""One fake endpoint's state: its limits' sliding log, the faults and holds injected, its
trace and stats, and how it admits a request (``FakeProvider`` serves it; ``_server`` reads
it through a protocol)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from .._config.endpoint import LIMIT_RULES
from . import _dialects as dialects
from ._dialects import Snapshot
from ._endpoint import FakeEndpoint, FakeStats
from ._ingress import FakeAdmission, _Entry
from ._limits import Block, SlidingLog, build_limits
from ._openrouter_key import openrouter_key
from ._requests import _Request
from ._server import CUT, _Fault, _Verdict


def _limiter(ep: FakeEndpoint) -> SlidingLog:
    counts = [(metric, window, getattr(ep, name)) for name, (metric, window) in LIMIT_RULES.items()]
    return SlidingLog(build_limits(counts, ep.day_reset))


class _EndpointState:
    """Mutable state of one endpoint; every field is guarded by ``lock``."""

    def __init__(self, endpoint: FakeEndpoint, trace_limit: int = 100_000) -> None:
        self.endpoint = endpoint
        self.lock = threading.Lock()
        self.limiter = _limiter(endpoint)
        self.faults: deque[_Fault] = deque()
        self.delay = endpoint.delay
        self.stats = FakeStats()
        self.kinds: dict[str, FakeStats] = {}  # the stats of each kind of request
        self.ingress = endpoint.ingress  # the hold of every request ...
        self.first: tuple[int, float] = (0, 0.0)  # ... but the next count are held seconds
        self.trace: deque[FakeAdmission] = deque(maxlen=trace_limit)

    def bump(self, kind: str, **deltas: int) -> None:
        """Add ``deltas`` to the endpoint's stats and to those of ``kind`` (under ``lock``)."""
        self.stats = self.stats.plus(deltas)
        self.kinds[kind] = self.kinds.get(kind, FakeStats()).plus(deltas)

    def take_hold(self, asked: float | None) -> float:
        """The seconds to hold the next request (``asked``: its own, if it names one).

        It takes one of the "next K" holds of :meth:`FakeProvider.set_ingress` even when it
        names its own hold.
        """
        with self.lock:
            seconds = self.ingress
            count, first = self.first
            if count > 0:
                self.first, seconds = (count - 1, first), first
        return seconds if asked is None else asked

    def _next_fault(self, kind: str) -> int | None:
        """The index of the next fault for a request of ``kind`` (under ``lock``)."""
        return next((i for i, f in enumerate(self.faults) if f.hits(kind)), None)

    def take_fault(
        self, clock: Callable[[], float], entry: _Entry, kind: str = "chat"
    ) -> _Fault | None:
        """Pop the next fault for ``kind`` unless there is none or it is a CUT (handled after
        admission)."""
        with self.lock:
            at = self._next_fault(kind)
            if at is None or self.faults[at].status == CUT:
                return None
            fault = self.faults[at]
            del self.faults[at]
            self.bump(kind, failed=1)
            self.note(entry, clock(), fault.status, 0, kind)
            return fault

    def _take_cut(self, kind: str) -> bool:
        """Pop the next fault for ``kind`` if it is a CUT (under ``lock``)."""
        at = self._next_fault(kind)
        if at is None or self.faults[at].status != CUT:
            return False
        del self.faults[at]
        return True

    def unsupported(self, clock: Callable[[], float], request: _Request, entry: _Entry) -> None:
        """Count and trace a request of a kind the endpoint does not serve (a 404)."""
        with self.lock:
            self.bump(request.kind, unsupported=1)
            self.note(entry, clock(), 404, 0, request.kind)

    def note(
        self,
        entry: _Entry,
        now: float,
        status: int,
        tokens: int,
        kind: str,
        *,
        block: Block | None = None,
        cut: bool = False,
    ) -> None:
        """Add a row to the trace (under ``lock``)."""
        limit = block.usage.limit.name if block is not None else None
        retry_in = block.wait if block is not None else None
        self.trace.append(
            FakeAdmission(
                self.endpoint.name,
                now,
                status,
                limit,
                tokens,
                entry.entered,
                entry.held,
                entry.request_id,
                cut,
                retry_in,
                kind,
            )
        )

    def headers(self, now: float, cost: int = 0) -> dict[str, str]:
        """The rate-limit headers at ``now`` (``cost``: tokens this request charged)."""
        ep = self.endpoint
        if not (ep.rate_headers or ep.standard_headers):
            return {}
        snapshot = Snapshot(self.limiter.usages(now), cost)
        return dialects.headers(ep.dialect, snapshot, own=ep.rate_headers, std=ep.standard_headers)

    def _refuse(self, now: float, chat: _Request, block: Block) -> tuple[bytes, dict[str, str]]:
        ep, snapshot = self.endpoint, Snapshot(self.limiter.usages(now), 0)
        switches = {
            "rate_headers": ep.rate_headers,
            "retry_after": ep.retry_after,
            "standard_headers": ep.standard_headers,
        }
        return dialects.refusal(ep.dialect, snapshot, chat.model, block, **switches)

    def key_info(self, clock: Callable[[], float], key: str) -> dict[str, Any]:
        """OpenRouter's ``GET /api/v1/key`` for this endpoint, from its own counters at the
        clock's now; counts nothing."""
        with self.lock:
            now = clock()
            day = next((u for u in self.limiter.usages(now) if u.limit.name == "rpd"), None)
        return openrouter_key(key, day)

    def admit(
        self,
        clock: Callable[[], float],
        chat: _Request,
        completion: int,
        entry: _Entry | None = None,
    ) -> _Verdict:
        """Check every limit and record the request if admitted, atomically (``completion``:
        the output tokens it produces, over all its items)."""
        entry = entry or _Entry(clock(), 0.0, "")
        charge, kind = chat.charge(completion), chat.kind
        with self.lock:
            now = clock()  # read under the lock, so the log stays in time order
            block = self.limiter.check(now, charge)
            if block is not None:
                self.bump(kind, refused=1)
                self.note(entry, now, 429, charge, kind, block=block)
                body, headers = self._refuse(now, chat, block)
                return _Verdict(now, headers, body)
            total = chat.prompt_tokens + completion
            self.limiter.record(now, total)
            cut = self._take_cut(kind)
            tokens = {"prompt_tokens": chat.prompt_tokens, "completion_tokens": completion}
            self.bump(kind, failed=int(cut), served=int(not cut), total_tokens=total, **tokens)
            self.note(entry, now, 200, total, kind, cut=cut)
            return _Verdict(now, self.headers(now, total), cut=cut)
