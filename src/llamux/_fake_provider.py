"""A fake OpenAI-compatible provider for tests, the demo and the benchmarks (no internet needed).

It serves ``POST /{name}/v1/chat/completions`` and ``GET /{name}/v1/models`` for each
:class:`FakeEndpoint`, enforces its request and token limits per minute, hour and day exactly
(a sliding log read from the injected ``clock``, see :mod:`llamux._fake_limits`), and answers
with the rate-limit headers and 429 bodies of a real provider's dialect (see
:mod:`llamux._fake_dialects`). Per-day limits are rolling 24 h windows unless ``day_reset``
names a timezone: then they are calendar days that end at local midnight there.

Token counting is the fake's own and deterministic: a message costs ``4 + ceil(utf8_bytes / 4)``
(see :func:`count_prompt_tokens`); the reply costs ``ceil(utf8_bytes / 4)`` unless the endpoint
fixes ``completion_tokens``. For the token limits the output budget (``max_tokens`` /
``max_completion_tokens`` when given, else the completion it will produce) is charged up front,
like Cerebras; an admitted request then records its actual total tokens.

Faults (:meth:`FakeProvider.inject`): an HTTP status answers with an OpenAI error body (or a given
body); status 0 closes the connection without an answer; both are counted as ``failed`` and charge
nothing. Status -1 cuts the answer mid-way (a stream after its first content chunk, a JSON body
after half its bytes): it passes through the limits like a normal request and, when admitted, is
counted as ``failed`` while its tokens are still charged to the window and to the token sums of
:class:`FakeStats`, as a real provider would bill them. A refused request leaves it pending.
"""

from __future__ import annotations

import threading
import time
import zoneinfo
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from . import _fake_dialects as dialects
from ._fake_dialects import DIALECTS, Snapshot, go_duration
from ._fake_limits import SlidingLog, build_limits
from ._fake_server import (
    CUT,
    DROP,
    _Chat,
    _Fault,
    _Server,
    _Verdict,
    count_prompt_tokens,
    count_text_tokens,
)

__all__ = [
    "CUT",
    "DROP",
    "FakeEndpoint",
    "FakeProvider",
    "FakeStats",
    "count_prompt_tokens",
    "count_text_tokens",
    "go_duration",
]


@dataclass(frozen=True)
class FakeEndpoint:
    """One fake endpoint, served under ``/{name}/v1``.

    Limits of None are unlimited: ``rpm`` / ``rph`` / ``rpd`` requests and ``tpm`` / ``tph`` /
    ``tpd`` tokens per minute, hour and day. ``dialect`` is one of ``DIALECTS`` and picks the
    rate-limit headers and 429 bodies. ``day_reset``, an IANA timezone such as
    ``"America/Los_Angeles"`` or ``"UTC"``, makes ``rpd`` and ``tpd`` calendar days there.
    ``delay`` is really slept before answering an admitted request (429s and injected faults
    answer at once). A request that could never fit a limit (for example ``max_tokens`` above
    ``tpm``) gets a 429 "Request too large" without ``retry-after``.
    """

    name: str
    model: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None
    dialect: str = "openai"
    delay: float = 0.0
    reply: str = "Hello from the fake provider."
    completion_tokens: int | None = None
    api_key: str | None = None
    rph: int | None = None
    tph: int | None = None
    tpd: int | None = None
    day_reset: str | None = None

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"endpoint name must be a non-empty path segment: {self.name!r}")
        if self.dialect not in DIALECTS:
            known = ", ".join(repr(d) for d in DIALECTS)
            raise ValueError(f"dialect must be one of {known}, not {self.dialect!r}")
        if self.day_reset is not None:
            try:
                zoneinfo.ZoneInfo(self.day_reset)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"day_reset is not a known timezone: {self.day_reset!r}") from exc


@dataclass(frozen=True)
class FakeStats:
    """What one endpoint did; token sums cover served (and cut) requests."""

    served: int = 0
    refused: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


def _limiter(ep: FakeEndpoint) -> SlidingLog:
    counts = [
        ("requests", "minute", ep.rpm),
        ("requests", "hour", ep.rph),
        ("requests", "day", ep.rpd),
        ("tokens", "minute", ep.tpm),
        ("tokens", "hour", ep.tph),
        ("tokens", "day", ep.tpd),
    ]
    return SlidingLog(build_limits(counts, ep.day_reset))


class _EndpointState:
    """Mutable state of one endpoint; every field is guarded by ``lock``."""

    def __init__(self, endpoint: FakeEndpoint) -> None:
        self.endpoint = endpoint
        self.lock = threading.Lock()
        self.limiter = _limiter(endpoint)
        self.faults: deque[_Fault] = deque()
        self.delay = endpoint.delay
        self.stats = FakeStats()

    def bump(self, **deltas: int) -> None:
        s = self.stats
        self.stats = FakeStats(**{k: getattr(s, k) + deltas.get(k, 0) for k in vars(s)})

    def take_fault(self) -> _Fault | None:
        """Pop the next fault unless there is none or it is a CUT (handled after admission)."""
        with self.lock:
            if not self.faults or self.faults[0].status == CUT:
                return None
            self.bump(failed=1)
            return self.faults.popleft()

    def headers(self, now: float, cost: int = 0) -> dict[str, str]:
        """The dialect's rate-limit headers at ``now`` (``cost``: tokens this request charged)."""
        snapshot = Snapshot(self.limiter.usages(now), cost)
        return dialects.headers(self.endpoint.dialect, snapshot)

    def admit(self, clock: Callable[[], float], chat: _Chat, completion: int) -> _Verdict:
        """Check every limit and record the request if admitted, atomically."""
        charge = chat.prompt_tokens + (chat.cap if chat.cap is not None else completion)
        with self.lock:
            now = clock()  # read under the lock, so the log stays in time order
            block = self.limiter.check(now, charge)
            if block is not None:
                self.bump(refused=1)
                snapshot = Snapshot(self.limiter.usages(now), 0)
                body, headers = dialects.refusal(self.endpoint.dialect, snapshot, chat.model, block)
                return _Verdict(now, headers, body)
            total = chat.prompt_tokens + completion
            self.limiter.record(now, total)
            cut = bool(self.faults) and self.faults[0].status == CUT
            if cut:
                self.faults.popleft()
            tokens = {"prompt_tokens": chat.prompt_tokens, "completion_tokens": completion}
            self.bump(failed=int(cut), served=int(not cut), total_tokens=total, **tokens)
            return _Verdict(now, self.headers(now, total), cut=cut)


class FakeProvider:
    """A threaded local HTTP server speaking the OpenAI chat API for a set of fake endpoints.

    Use as a context manager or call :meth:`start` / :meth:`stop`. Everything time-dependent
    (windows, resets, ``created``) reads ``clock``; only ``delay`` really sleeps.
    """

    def __init__(
        self,
        endpoints: Sequence[FakeEndpoint],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._states = {ep.name: _EndpointState(ep) for ep in endpoints}
        if len(self._states) != len(endpoints):
            raise ValueError("endpoint names must be unique")
        self._clock = clock
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeProvider:
        if self._server is not None:
            raise RuntimeError("FakeProvider is already running")
        self._server = _Server(self._address, self._states, self._clock)
        self._thread = threading.Thread(target=self._server.serve, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        server.halt()
        thread.join()
        server.close_all()
        server.server_close()

    def __enter__(self) -> FakeProvider:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeProvider is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def base_url(self, name: str) -> str:
        self._state(name)
        return f"{self.url}/{name}/v1"

    def _state(self, name: str) -> _EndpointState:
        try:
            return self._states[name]
        except KeyError:
            raise KeyError(f"no fake endpoint named {name!r}") from None

    def stats(self, name: str) -> FakeStats:
        state = self._state(name)
        with state.lock:
            return state.stats

    def inject(
        self,
        name: str,
        status: int,
        count: int = 1,
        *,
        body: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Make the next ``count`` chat requests fail: an HTTP status, 0 = drop, -1 = cut."""
        if status < CUT or 0 < status < 100 or status > 599:
            raise ValueError(f"not an HTTP status, 0 or -1: {status}")
        state = self._state(name)
        with state.lock:
            state.faults.extend([_Fault(status, body, dict(headers or {}))] * count)

    def set_delay(self, name: str, seconds: float) -> None:
        state = self._state(name)
        with state.lock:
            state.delay = seconds

    def reset_stats(self) -> None:
        for state in self._states.values():
            with state.lock:
                state.stats = FakeStats()
