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
from collections.abc import Callable, Mapping, Sequence

from .._config.endpoint import KINDS
from ._dialects import go_duration
from ._endpoint import FakeEndpoint, FakeStats
from ._ingress import FakeAdmission, FakeHold, check_seconds, hold_on_clock
from ._requests import count_input_tokens, count_prompt_tokens, count_text_tokens
from ._server import CUT, DROP, INGRESS_HEADER, _Fault, _Server
from ._state import _EndpointState

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
