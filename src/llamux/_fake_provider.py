"""A fake OpenAI-compatible provider for tests, the demo and the benchmarks (no internet needed).

It serves ``POST /{name}/v1/chat/completions`` and ``GET /{name}/v1/models`` for each
:class:`FakeEndpoint`, enforces its RPM / RPD / TPM limits exactly over rolling windows (a sliding
log read from the injected ``clock``), and sends rate-limit headers in the OpenAI or Groq dialect.

Token counting is the fake's own and deterministic: a message costs ``4 + ceil(utf8_bytes / 4)``
(see :func:`count_prompt_tokens`); the reply costs ``ceil(utf8_bytes / 4)`` unless the endpoint
fixes ``completion_tokens``. For the TPM check the output budget (``max_tokens`` /
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

import bisect
import contextlib
import json
import math
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "FakeEndpoint",
    "FakeProvider",
    "FakeStats",
    "count_prompt_tokens",
    "count_text_tokens",
    "go_duration",
]

MINUTE = 60.0
DAY = 86_400.0
DROP = 0  # inject(): close the connection without answering
CUT = -1  # inject(): cut the answer mid-way


@dataclass(frozen=True)
class FakeEndpoint:
    """One fake endpoint, served under ``/{name}/v1``.

    Limits of None are unlimited. ``delay`` is really slept before answering an admitted request
    (429s and injected faults answer at once). A request that could never fit a limit (for example
    ``max_tokens`` above ``tpm``) gets a 429 "Request too large" without ``retry-after``.
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

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"endpoint name must be a non-empty path segment: {self.name!r}")
        if self.dialect not in ("openai", "groq"):
            raise ValueError(f"dialect must be 'openai' or 'groq', not {self.dialect!r}")


@dataclass(frozen=True)
class FakeStats:
    """What one endpoint did; token sums cover served (and cut) requests."""

    served: int = 0
    refused: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


def go_duration(seconds: float) -> str:
    """Format like Go's ``time.Duration``, to the millisecond: ``1m30s``, ``2.5s``, ``12ms``."""
    ms = round(seconds * 1000)
    if seconds > 0 and ms == 0:
        ms = 1
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest // 1000}.{rest % 1000:03d}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def count_text_tokens(text: str) -> int:
    """The fake's token count of a text: one token per started group of 4 UTF-8 bytes."""
    return math.ceil(len(text.encode("utf-8")) / 4)


def _message_text(message: object) -> str:
    if not isinstance(message, dict):
        raise _BadRequest("each message must be an object", "messages")
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = [p for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "".join(str(p.get("text") or "") for p in parts)
    raise _BadRequest("message content must be a string, a list of parts or null", "messages")


def count_prompt_tokens(messages: Sequence[Any]) -> int:
    """Sum over messages of ``4 + count_text_tokens(text)`` (text parts only for lists)."""
    return sum(4 + count_text_tokens(_message_text(m)) for m in messages)


class _BadRequest(ValueError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def _error(message: str, type_: str, code: str | None, param: str | None = None) -> bytes:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return json.dumps(body).encode()


@dataclass(frozen=True)
class _Chat:
    model: str
    prompt_tokens: int
    cap: int | None
    stream: bool
    include_usage: bool


def _parse_chat(raw: bytes) -> _Chat:
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _BadRequest("We could not parse the JSON body of your request.")
    model, messages = body.get("model"), body.get("messages")
    if not isinstance(model, str) or not model:
        raise _BadRequest("you must provide a model parameter", "model")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("messages must be a non-empty array", "messages")
    caps = [_positive_int(body, key) for key in ("max_tokens", "max_completion_tokens")]
    given = [c for c in caps if c is not None]
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    prompt = count_prompt_tokens(messages)
    return _Chat(
        model, prompt, min(given) if given else None, body.get("stream") is True, include_usage
    )


def _positive_int(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _BadRequest(f"{key} must be a positive integer", key)
    return value


def _time(event: tuple[float, int, int]) -> float:
    return event[0]


def _running(event: tuple[float, int, int]) -> int:
    return event[2]


@dataclass(frozen=True)
class _Fault:
    status: int
    body: str | None
    headers: Mapping[str, str]


@dataclass(frozen=True)
class _Limit:
    label: str  # as in the 429 message
    kind: str  # "requests" or "tokens"
    window: float
    limit: int


@dataclass(frozen=True)
class _Verdict:
    now: float
    headers: dict[str, str]
    refusal: bytes | None = None  # the 429 body
    cut: bool = False


class _EndpointState:
    """Mutable state of one endpoint; every field is guarded by ``lock``."""

    def __init__(self, endpoint: FakeEndpoint) -> None:
        self.endpoint = endpoint
        self.lock = threading.Lock()
        self.log: list[tuple[float, int, int]] = []  # admitted: (time, tokens, running total)
        self.faults: deque[_Fault] = deque()
        self.delay = endpoint.delay
        self.stats = FakeStats()
        ep = endpoint
        specs = [
            ("requests per minute (RPM)", "requests", MINUTE, ep.rpm),
            ("requests per day (RPD)", "requests", DAY, ep.rpd),
            ("tokens per minute (TPM)", "tokens", MINUTE, ep.tpm),
        ]
        self.limits = [_Limit(lbl, kind, w, n) for lbl, kind, w, n in specs if n is not None]
        self.horizon = max((lim.window for lim in self.limits), default=MINUTE)
        header_window = DAY if ep.dialect == "groq" else MINUTE
        self.header_limits = [
            lim for lim in self.limits if lim.window == header_window or lim.kind == "tokens"
        ]

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

    def _used(self, now: float, lim: _Limit) -> tuple[int, int]:
        """(index of the oldest logged event inside the window, amount of the limit used)."""
        log = self.log
        start = bisect.bisect_right(log, now - lim.window, key=_time)
        if start == len(log):
            return start, 0
        if lim.kind == "requests":
            return start, len(log) - start
        return start, log[-1][2] - log[start][2] + log[start][1]

    def _wait(self, now: float, lim: _Limit, requested: int) -> tuple[int, float | None] | None:
        """(used, seconds until admitted or None if never); None when admitted right now."""
        start, used = self._used(now, lim)
        excess = used + requested - lim.limit
        if excess <= 0:
            return None
        if requested > lim.limit:
            return used, None
        if lim.kind == "requests":  # the excess-th oldest event must leave the window
            return used, self.log[start + excess - 1][0] + lim.window - now
        base = self.log[start][2] - self.log[start][1]
        last = bisect.bisect_left(self.log, base + excess, lo=start, key=_running)
        return used, self.log[last][0] + lim.window - now

    def _record(self, now: float, tokens: int) -> None:
        log = self.log
        at = bisect.bisect_right(log, now, key=_time)  # the end, unless the clock went back
        log.insert(at, (now, tokens, 0))
        for i in range(at, len(log)):
            log[i] = (log[i][0], log[i][1], (log[i - 1][2] if i else 0) + log[i][1])

    def headers(self, now: float) -> dict[str, str]:
        out: dict[str, str] = {}
        for lim in self.header_limits:
            start, used = self._used(now, lim)
            reset = self.log[-1][0] + lim.window - now if start < len(self.log) else 0.0
            out[f"x-ratelimit-limit-{lim.kind}"] = str(lim.limit)
            out[f"x-ratelimit-remaining-{lim.kind}"] = str(max(0, lim.limit - used))
            out[f"x-ratelimit-reset-{lim.kind}"] = go_duration(reset)
        return out

    def admit(self, clock: Callable[[], float], chat: _Chat, completion: int) -> _Verdict:
        """Check every limit and record the request if admitted, atomically."""
        charge = chat.prompt_tokens + (chat.cap if chat.cap is not None else completion)
        with self.lock:
            now = clock()  # read under the lock, so the log stays in time order
            del self.log[: bisect.bisect_right(self.log, now - self.horizon, key=_time)]
            blocked = []
            for lim in self.limits:
                wait = self._wait(now, lim, 1 if lim.kind == "requests" else charge)
                if wait is not None:
                    blocked.append((lim, *wait))
            if blocked:
                self.bump(refused=1)
                return self._refusal(now, chat, charge, blocked)
            total = chat.prompt_tokens + completion
            self._record(now, total)
            cut = bool(self.faults) and self.faults[0].status == CUT
            if cut:
                self.faults.popleft()
            tokens = {"prompt_tokens": chat.prompt_tokens, "completion_tokens": completion}
            self.bump(failed=int(cut), served=int(not cut), total_tokens=total, **tokens)
            return _Verdict(now, self.headers(now), cut=cut)

    def _refusal(
        self, now: float, chat: _Chat, charge: int, blocked: list[tuple[_Limit, int, float | None]]
    ) -> _Verdict:
        never = [b for b in blocked if b[2] is None]
        lim, used, wait = never[0] if never else max(blocked, key=lambda b: b[2] or 0.0)
        requested = 1 if lim.kind == "requests" else charge
        headers = self.headers(now)
        if wait is None:
            message = (
                f"Request too large for model `{chat.model}` on {lim.label}: "
                f"Limit {lim.limit}, Requested {requested}. Please reduce your request."
            )
        else:
            headers["retry-after"] = str(max(1, math.ceil(wait)))
            message = (
                f"Rate limit reached for model `{chat.model}` on {lim.label}: Limit {lim.limit}, "
                f"Used {used}, Requested {requested}. Please try again in {go_duration(wait)}."
            )
        return _Verdict(now, headers, _error(message, lim.kind, "rate_limit_exceeded"))


def _completion(endpoint: FakeEndpoint, cap: int | None) -> tuple[str, int, str]:
    """(reply text, completion tokens, finish reason) for an output cap."""
    text = endpoint.reply
    full = endpoint.completion_tokens
    full = count_text_tokens(text) if full is None else full
    if cap is not None and cap < full:
        return text[: len(text) * cap // full], cap, "length"
    return text, full, "stop"


def _chat_body(base: dict[str, Any], text: str, finish: str, usage: dict[str, int]) -> str:
    message = {"role": "assistant", "content": text}
    choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
    return json.dumps({**base, "object": "chat.completion", "choices": [choice], "usage": usage})


def _sse_events(
    base: dict[str, Any], text: str, finish: str, usage: dict[str, int] | None
) -> list[str]:
    """The ``data:`` payloads of a streamed answer: role, a few pieces, finish, usage, [DONE]."""
    extra = {"usage": None} if usage is not None else {}

    def chunk(delta: dict[str, str], reason: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}
        return json.dumps({**base, "object": "chat.completion.chunk", "choices": [choice], **extra})

    words = text.split(" ")
    pieces = [w + " " for w in words[:-1]] + words[-1:]
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in pieces if piece]
    events.append(chunk({}, finish))
    if usage is not None:
        last = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
        events.append(json.dumps(last))
    return [*events, "[DONE]"]


class _Server(ThreadingHTTPServer):
    """Tracks its connections and handler threads so that ``stop()`` can end them cleanly."""

    daemon_threads = True
    request_queue_size = 1024  # the listen backlog: benchmarks open hundreds of connections

    def __init__(
        self,
        address: tuple[str, int],
        states: Mapping[str, _EndpointState],
        clock: Callable[[], float],
    ) -> None:
        self.states, self.clock = states, clock
        self.stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._workers: list[threading.Thread] = []
        self._guard = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        args = (request, client_address)
        thread = threading.Thread(target=self.process_request_thread, args=args, daemon=True)
        with self._guard:
            self._workers = [t for t in self._workers if t.is_alive()]
            self._workers.append(thread)
            self._conns.add(request)
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._guard:
            self._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up (timeouts, stop()) are business as usual here

    def close_all(self) -> None:
        """Wake sleeping handlers, end kept-alive connections and join the handler threads."""
        self.stopping.set()
        with self._guard:
            conns, threads = list(self._conns), list(self._workers)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout=5.0)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers then body meet delayed ACKs: 40 ms a call
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = self.path.split("?")[0].strip("/").split("/")
        route = (method, "/".join(parts[2:])) if len(parts) > 2 and parts[1] == "v1" else None
        state = self.server.states.get(parts[0])
        if route not in (("POST", "chat/completions"), ("GET", "models")) or state is None:
            msg = f"Invalid URL ({method} {self.path}): no such route or endpoint"
            return self._send(404, _error(msg, "invalid_request_error", "unknown_url"))
        auth = self.headers.get("Authorization") or ""
        key = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        if not key or (state.endpoint.api_key is not None and key != state.endpoint.api_key):
            msg = "Incorrect API key provided."
            return self._send(401, _error(msg, "invalid_request_error", "invalid_api_key"))
        if method == "GET":
            model = {"id": state.endpoint.model or "fake-model", "object": "model", "created": 0}
            body = {"object": "list", "data": [{**model, "owned_by": "llamux-fake"}]}
            return self._send(200, json.dumps(body).encode())
        try:
            chat = _parse_chat(raw)
        except _BadRequest as exc:
            return self._send(400, _error(str(exc), "invalid_request_error", None, exc.param))
        if state.endpoint.model is not None and chat.model != state.endpoint.model:
            msg = f"The model `{chat.model}` does not exist or you do not have access to it."
            return self._send(404, _error(msg, "invalid_request_error", "model_not_found"))
        self._chat(state, chat)

    def _start(self, status: int, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _send(
        self, status: int, body: bytes, headers: Mapping[str, str] = {}, *, cut: bool = False
    ) -> None:
        """A JSON answer with Content-Length; ``cut`` sends half the body and hangs up."""
        json_headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        self._start(status, {**json_headers, **headers})
        self.wfile.write(body[: len(body) // 2] if cut else body)
        self.close_connection = self.close_connection or cut

    def _stream(self, events: list[str], headers: Mapping[str, str], *, cut: bool) -> None:
        """Server-sent events in chunked encoding; ``cut`` stops after the first content chunk."""
        sse = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
        self._start(200, {**sse, "Transfer-Encoding": "chunked", **headers})
        for data in events[:2] if cut else events:
            payload = f"data: {data}\n\n".encode()
            self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        if cut:
            self.close_connection = True
        else:
            self.wfile.write(b"0\r\n\r\n")

    def _fault(self, fault: _Fault) -> None:
        if fault.status == DROP:
            self.close_connection = True
            return
        type_ = "server_error" if fault.status >= 500 else "invalid_request_error"
        msg = f"Injected fault: HTTP {fault.status}"
        body = fault.body.encode() if fault.body is not None else _error(msg, type_, None)
        self._send(fault.status, body, fault.headers)

    def _chat(self, state: _EndpointState, chat: _Chat) -> None:
        fault = state.take_fault()
        if fault is not None:
            return self._fault(fault)
        text, tokens, finish = _completion(state.endpoint, chat.cap)
        verdict = state.admit(self.server.clock, chat, tokens)
        headers = {**verdict.headers, "x-request-id": f"req_{uuid.uuid4().hex}"}
        if verdict.refusal is not None:
            return self._send(429, verdict.refusal, headers)
        with state.lock:
            delay = state.delay
        if delay > 0 and self.server.stopping.wait(delay):
            return
        prompt = chat.prompt_tokens
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": tokens,
            "total_tokens": prompt + tokens,
        }
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "created": int(verdict.now),
            "model": chat.model,
        }
        if chat.stream:
            events = _sse_events(base, text, finish, usage if chat.include_usage else None)
            return self._stream(events, headers, cut=verdict.cut)
        self._send(200, _chat_body(base, text, finish, usage).encode(), headers, cut=verdict.cut)


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
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        server.shutdown()
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
