"""A fake OpenAI-compatible provider for tests, the demo and the benchmarks (no internet needed).

It serves, under ``/{name}/v1`` for each :class:`FakeEndpoint`, four kinds of request in the
real OpenAI wire format, so that the ``openai`` SDK parses every answer into its typed
objects: ``POST chat/completions`` (kind ``chat``), ``POST embeddings`` (``embeddings``),
``POST responses`` (``responses``, the Responses API) and ``POST completions``
(``completions``, legacy text completions), each as JSON or, but embeddings, as SSE (see
:mod:`llamux.testing._kinds`); and ``GET models``. An endpoint serves the kinds in its
``serves`` (default all four): another kind answers 404 "The model `m` does not support ...",
charging nothing, traced with status 404 and counted in :attr:`FakeStats.unsupported`.

Every kind takes the same steps: its body parsed (400 if malformed, or over ``max_inputs``),
the model checked (404), the request held (ingress), its kind checked, failed as injected,
checked and charged against the limits, delayed, answered. It enforces the endpoint's
request and token limits per minute, hour and day exactly, whatever the kind (a sliding log
read from the injected ``clock``, see :mod:`llamux.testing._limits`), and answers with the
rate-limit headers and 429 bodies of a real provider's dialect (see
:mod:`llamux.testing._dialects`), and with the IETF ``RateLimit-Policy`` / ``RateLimit``
fields when the endpoint sets ``standard_headers``. Per-day limits are rolling 24 h windows
unless ``day_reset`` names a timezone: then they are calendar days ending at local midnight.

OpenRouter's key endpoint: an endpoint of dialect ``openrouter`` also answers
``GET /{name}/v1/key``, the path a client derives from the base URL as it derives
``https://openrouter.ai/api/v1/key`` from ``https://openrouter.ai/api/v1``, with the real
answer's JSON shape, ``{"data": {"label", "limit", "usage", "is_free_tier",
"limit_remaining", "free_model_daily_requests": {"limit", "remaining", "used"}, ...}}``,
computed from the endpoint's own per-day request counter at the clock's now (null when it
sets no ``rpd``). It is authenticated like any request (401 for a wrong key) and is not a
request: it charges nothing, is not held, traced or counted in :class:`FakeStats`, and takes
no injected fault.

Token counting is the fake's own and deterministic. Chat: a message costs
``4 + ceil(utf8_bytes / 4)`` (see :func:`count_prompt_tokens`); the Responses API: its input
messages the same, its ``instructions`` their text's ``ceil(utf8_bytes / 4)``; embeddings
and text completions: each text input or prompt ``ceil(utf8_bytes / 4)``, a token-id list
its length (:func:`count_input_tokens`). The reply costs ``ceil(utf8_bytes / 4)`` unless the
endpoint fixes ``completion_tokens`` (per prompt for text completions; embeddings have no
output). For the token limits the output budget (chat's ``max_tokens`` /
``max_completion_tokens``, the Responses API's ``max_output_tokens``, text completions'
``max_tokens`` once per prompt, when given; else the output it will produce) is charged up
front, like Cerebras; an admitted request then records its actual total tokens.

Faults (:meth:`FakeProvider.inject`, for requests of any kind or of one): an HTTP status
answers with an OpenAI error body (or a given body); status 0 closes the connection without
an answer; both are counted as ``failed`` and charge nothing. Status -1 cuts the answer
mid-way (a stream after its first content event, a JSON body after half its bytes): it
passes through the limits like a normal request and, when admitted, is counted as ``failed``
while its tokens are still charged to the window and to the token sums of
:class:`FakeStats`, as a real provider would bill them. A refused request leaves it pending.

Ingress latency: a request can be **held before it is counted** (``FakeEndpoint.ingress`` for
every request, :meth:`FakeProvider.set_ingress` for all or the next K, the request header
``x-fake-ingress-ms`` or ``metadata={"fake_ingress_ms": "400"}`` in the body for one request).
The limits read the clock *after* the hold, as a provider counts a request when it arrives. The
hold is a real wait, cut short by :meth:`FakeProvider.stop`, unless the provider was given a
``hold`` hook: then the hook runs instead, e.g. :func:`hold_on_clock` moves a shared
:class:`~llamux.testing.FakeClock` forward by the hold, so no test sleeps.

Trace: :meth:`FakeProvider.trace` lists, per endpoint and in order, a :class:`FakeAdmission` for
each request it admitted, refused (429, or 404 for a kind it does not serve) or failed on
purpose: its kind, when it was counted (the fake's clock), its status, the limit that refused
it, its tokens, and its hold. :meth:`FakeProvider.stats` sums them, for every kind or one.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._config.endpoint import KINDS, LIMIT_RULES
from . import _dialects as dialects
from ._dialects import Snapshot, go_duration
from ._endpoint import FakeEndpoint, FakeStats
from ._ingress import FakeAdmission, FakeHold, _Entry, check_seconds, hold_on_clock
from ._limits import Block, SlidingLog, build_limits
from ._openrouter_key import openrouter_key
from ._requests import _Request, count_input_tokens, count_prompt_tokens, count_text_tokens
from ._server import CUT, DROP, INGRESS_HEADER, _Fault, _Server, _Verdict

__all__ = [
    "CUT",
    "DROP",
    "INGRESS_HEADER",
    "FakeAdmission",
    "FakeEndpoint",
    "FakeHold",
    "FakeProvider",
    "FakeStats",
    "count_input_tokens",
    "count_prompt_tokens",
    "count_text_tokens",
    "go_duration",
    "hold_on_clock",
]


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


class FakeProvider:
    """A threaded local HTTP server speaking the OpenAI chat API for a set of fake endpoints.

    Use as a context manager or call :meth:`start` / :meth:`stop`. Everything time-dependent
    (windows, resets, ``created``) reads ``clock``; only ``delay`` and ingress holds really
    sleep, and a hold runs ``hold`` instead when given (see :func:`hold_on_clock`): a hook may
    also block, e.g. on an event, until the test has moved its clock. The trace keeps the
    last ``trace_limit`` rows of each endpoint.

    Example: the first two requests of a window arrive 0.4 s after they were sent::

        clock = FakeClock()
        fake = FakeProvider([FakeEndpoint("a", rpm=2)], clock=clock.now,
                            hold=hold_on_clock(clock))
        fake.set_ingress("a", 0.4, first=2)
        ...  # drive a Router(..., clock=clock) at fake.base_url("a")
        assert [row.status for row in fake.trace("a")] == [200, 200]
        assert fake.trace("a")[0].at == fake.trace("a")[0].entered + 0.4
    """

    def __init__(
        self,
        endpoints: Sequence[FakeEndpoint],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        hold: Callable[[FakeHold], None] | None = None,
        trace_limit: int = 100_000,
    ) -> None:
        self._states = {ep.name: _EndpointState(ep, trace_limit) for ep in endpoints}
        if len(self._states) != len(endpoints):
            raise ValueError("endpoint names must be unique")
        self._clock, self._hold = clock, hold
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeProvider:
        if self._server is not None:
            raise RuntimeError("FakeProvider is already running")
        self._server = _Server(self._address, self._states, self._clock, self._hold)
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

    def stats(self, name: str, kind: str | None = None) -> FakeStats:
        """What endpoint ``name`` did: with requests of every kind, or of ``kind`` only."""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        state = self._state(name)
        with state.lock:
            return state.stats if kind is None else state.kinds.get(kind, FakeStats())

    def inject(
        self,
        name: str,
        status: int,
        count: int = 1,
        *,
        body: str | None = None,
        headers: Mapping[str, str] | None = None,
        kind: str | None = None,
    ) -> None:
        """Make the next ``count`` requests fail: an HTTP status, 0 = drop, -1 = cut.

        ``kind`` (``"embeddings"``, ...) aims them at requests of that kind only; the others
        pass them by. A request of a kind the endpoint does not serve takes no fault.
        """
        if status < CUT or 0 < status < 100 or status > 599:
            raise ValueError(f"not an HTTP status, 0 or -1: {status}")
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)} or None, not {kind!r}")
        state = self._state(name)
        with state.lock:
            state.faults.extend([_Fault(status, body, dict(headers or {}), kind)] * count)

    def set_delay(self, name: str, seconds: float) -> None:
        state = self._state(name)
        with state.lock:
            state.delay = seconds

    def set_ingress(self, name: str, seconds: float, *, first: int | None = None) -> None:
        """Hold requests ``seconds`` before counting them: all of them from now on, or
        only the next ``first`` (then the endpoint's own hold again). A request's own
        ``x-fake-ingress-ms`` (or ``metadata.fake_ingress_ms``) replaces the hold it gets.
        """
        check_seconds("seconds", seconds)
        if first is not None and (isinstance(first, bool) or first < 0):
            raise ValueError(f"first must be a count >= 0 or None, not {first!r}")
        state = self._state(name)
        with state.lock:
            if first is None:
                state.ingress, state.first = seconds, (0, 0.0)
            else:
                state.first = (first, seconds)

    def trace(self, name: str | None = None) -> tuple[FakeAdmission, ...]:
        """What the fake did with each request of ``name`` (of all endpoints if None),
        in the order it counted them."""
        names = [name] if name is not None else list(self._states)
        rows: list[FakeAdmission] = []
        for each in names:
            state = self._state(each)
            with state.lock:
                rows += state.trace
        return tuple(rows) if name is not None else tuple(sorted(rows, key=lambda r: r.at))

    def reset_stats(self) -> None:
        """Zero the stats and empty the trace of every endpoint (limits keep their log)."""
        for state in self._states.values():
            with state.lock:
                state.stats = FakeStats()
                state.kinds.clear()
                state.trace.clear()
