"""The HTTP side of the fake provider: routes, authentication, holds, sending answers, the server.

Admission, limits and stats live in :mod:`llamux.testing._state` (its ``_EndpointState``);
each kind's parsing and answers in :mod:`llamux.testing._kinds`; this module only turns
requests into calls on an endpoint's state and verdicts into answers, the same way for every
kind. Routes under ``/{name}/v1``: ``POST chat/completions``, ``POST embeddings``,
``POST responses``, ``POST completions``, ``GET models`` and, for an ``openrouter`` endpoint,
``GET key``.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol

from ._dialects import error_body
from ._ingress import FakeHold, _Entry
from ._kinds import ROUTES, Kind
from ._requests import Ask, Reply, _BadRequest, _Request, load_body, milliseconds

if TYPE_CHECKING:
    import threading

    from ._endpoint import FakeEndpoint


class _EndpointState(Protocol):
    """What the server needs of an endpoint's state (``_fake_provider`` keeps it): its
    endpoint, its lock and delay, and the atomic steps that admit or fail a request."""

    endpoint: FakeEndpoint
    lock: threading.Lock
    delay: float

    def take_hold(self, asked: float | None) -> float: ...

    def take_fault(
        self, clock: Callable[[], float], entry: _Entry, kind: str = ...
    ) -> _Fault | None: ...

    def admit(
        self,
        clock: Callable[[], float],
        chat: _Request,
        completion: int,
        entry: _Entry | None = None,
    ) -> _Verdict: ...

    def unsupported(self, clock: Callable[[], float], request: _Request, entry: _Entry) -> None: ...

    def key_info(self, clock: Callable[[], float], key: str) -> dict[str, Any]: ...


DROP = 0  # inject(): close the connection without answering
CUT = -1  # inject(): cut the answer mid-way
INGRESS_HEADER = "x-fake-ingress-ms"  # hold this request so many milliseconds before counting


@dataclass(frozen=True)
class _Fault:
    status: int
    body: str | None
    headers: Mapping[str, str]
    kind: str | None = None  # None: a request of any kind

    def hits(self, kind: str) -> bool:
        return self.kind is None or self.kind == kind


@dataclass(frozen=True)
class _Verdict:
    now: float
    headers: dict[str, str]
    refusal: bytes | None = None  # the 429 body
    cut: bool = False


class _Server(ThreadingHTTPServer):
    """Tracks its connections and handler threads so that ``stop()`` can end them cleanly."""

    daemon_threads = True
    request_queue_size = 1024  # the listen backlog: benchmarks open hundreds of connections

    def __init__(
        self,
        address: tuple[str, int],
        states: Mapping[str, _EndpointState],
        clock: Callable[[], float],
        hold: Callable[[FakeHold], None] | None = None,
    ) -> None:
        self.states, self.clock, self.hold = states, clock, hold
        self.stopping = threading.Event()
        self._waker, self._wake = socket.socketpair()  # ends serve() at once, unlike shutdown()
        self._conns: set[socket.socket] = set()
        self._workers: list[threading.Thread] = []
        self._guard = threading.Lock()
        super().__init__(address, _Handler)

    def serve(self) -> None:
        """Accept connections until :meth:`halt` (``serve_forever`` would poll for that)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self, selectors.EVENT_READ)
            selector.register(self._waker, selectors.EVENT_READ)
            while not self.stopping.is_set():
                ready = selector.select()
                if self.stopping.is_set():
                    break
                if any(key.fileobj is self for key, _ in ready):
                    self.handle_request()  # the listening socket is ready: does not block
                self.service_actions()

    def halt(self) -> None:
        """End :meth:`serve` and wake the handlers sleeping on a delay."""
        self.stopping.set()
        with contextlib.suppress(OSError):
            self._wake.send(b"!")

    def server_close(self) -> None:
        super().server_close()
        self._waker.close()
        self._wake.close()

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

    def _route(self, method: str) -> tuple[_EndpointState, str, str] | None:
        """The endpoint state, route and key of an authorised request, or None once an error
        is sent. ``GET key`` is OpenRouter's: only an ``openrouter`` endpoint has it."""
        parts = self.path.split("?")[0].strip("/").split("/")
        route = (method, "/".join(parts[2:])) if len(parts) > 2 and parts[1] == "v1" else None
        state = self.server.states.get(parts[0])
        routes = [("POST", path) for path in ROUTES] + [("GET", "models")]
        if state is not None and state.endpoint.dialect == "openrouter":
            routes.append(("GET", "key"))
        if route not in routes or state is None or route is None:
            msg = f"Invalid URL ({method} {self.path}): no such route or endpoint"
            self._send(404, error_body(msg, "invalid_request_error", "unknown_url"))
            return None
        auth = self.headers.get("Authorization") or ""
        key = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        if not key or (state.endpoint.api_key is not None and key != state.endpoint.api_key):
            msg = "Incorrect API key provided."
            self._send(401, error_body(msg, "invalid_request_error", "invalid_api_key"))
            return None
        return state, route[1], key

    def _dispatch(self, method: str) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        routed = self._route(method)
        if routed is None:
            return None
        state, route, key = routed
        if route == "key":  # not a request: nothing is counted, held or traced
            body = state.key_info(self.server.clock, key)
            return self._send(200, json.dumps(body).encode())
        if method == "GET":
            model = {"id": state.endpoint.model or "fake-model", "object": "model", "created": 0}
            body = {"object": "list", "data": [{**model, "owned_by": "llamux-fake"}]}
            return self._send(200, json.dumps(body).encode())
        kind = ROUTES[route]
        try:
            ask = kind.parse(load_body(raw), state.endpoint)
            asked = milliseconds(self.headers.get(INGRESS_HEADER), INGRESS_HEADER)
        except _BadRequest as exc:
            return self._send(400, error_body(str(exc), "invalid_request_error", None, exc.param))
        asked_model = ask.request.model
        if state.endpoint.model is not None and asked_model != state.endpoint.model:
            msg = f"The model `{asked_model}` does not exist or you do not have access to it."
            return self._send(404, error_body(msg, "invalid_request_error", "model_not_found"))
        entry = self._hold(state, asked if asked is not None else ask.request.ingress)
        if entry is not None:
            self._serve(state, kind, ask, entry)

    def _hold(self, state: _EndpointState, asked: float | None) -> _Entry | None:
        """Hold the request before it is counted; None when the server stopped meanwhile."""
        server, seconds = self.server, state.take_hold(asked)
        entry = _Entry(server.clock(), seconds, f"req_{uuid.uuid4().hex}")
        if seconds <= 0:
            return entry
        if server.hold is not None:
            server.hold(FakeHold(state.endpoint.name, seconds, entry.entered))
        else:
            server.stopping.wait(seconds)
        if server.stopping.is_set():  # stopped during the hold: hang up, count nothing
            self.close_connection = True
            return None
        return entry

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

    def _stream(
        self, frames: Sequence[str], headers: Mapping[str, str], *, cut: int | None, pause: float
    ) -> None:
        """Server-sent events in chunked encoding; ``cut``: send only so many, then hang up.

        ``pause`` seconds pass (really, cut short by stop) between one event and the next.
        """
        sse = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
        self._start(200, {**sse, "Transfer-Encoding": "chunked", **headers})
        cut_short = cut is not None
        for index, text in enumerate(frames[:cut] if cut is not None else frames):
            if index and pause > 0 and self.server.stopping.wait(pause):
                cut_short = True
                break
            payload = text.encode()
            self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        if cut_short:
            self.close_connection = True
        else:
            self.wfile.write(b"0\r\n\r\n")

    def _fault(self, fault: _Fault) -> None:
        if fault.status == DROP:
            self.close_connection = True
            return
        type_ = "server_error" if fault.status >= 500 else "invalid_request_error"
        msg = f"Injected fault: HTTP {fault.status}"
        body = fault.body.encode() if fault.body is not None else error_body(msg, type_, None)
        self._send(fault.status, body, fault.headers)

    def _serve(self, state: _EndpointState, kind: Kind, ask: Ask, entry: _Entry) -> None:
        """Answer a request of any kind: refuse a kind the endpoint does not serve, fail as
        injected, check and charge the limits, wait the delay, send the kind's answer."""
        request, clock = ask.request, self.server.clock
        ids = {"x-request-id": entry.request_id}
        if request.kind not in state.endpoint.serves:
            state.unsupported(clock, request, entry)
            return self._send(404, kind.unsupported(request.model), ids)
        fault = state.take_fault(clock, entry, request.kind)
        if fault is not None:
            return self._fault(fault)
        output = ask.output(state.endpoint)
        verdict = state.admit(clock, request, output.tokens * request.items, entry)
        headers = {**verdict.headers, **ids}
        if verdict.refusal is not None:
            return self._send(429, verdict.refusal, headers)
        with state.lock:
            delay = state.delay
        if delay > 0 and self.server.stopping.wait(delay):
            return
        answer = ask.answer(Reply(int(verdict.now), output, state.endpoint.usage))
        if answer.frames is None:
            return self._send(200, answer.body.encode(), headers, cut=verdict.cut)
        cut = answer.cut_at if verdict.cut else None
        self._stream(answer.frames, headers, cut=cut, pause=state.endpoint.chunk_delay)
