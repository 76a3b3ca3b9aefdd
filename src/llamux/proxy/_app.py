"""An OpenAI-compatible HTTP proxy in front of a :class:`~llamux.Router`, with a live dashboard.

Point any OpenAI client at it (``base_url="http://127.0.0.1:8080/v1"``): requests are routed
across the router's endpoints without crossing a quota, the provider's bytes relayed
unchanged. Needs the ``[proxy]`` extra (Starlette and uvicorn).

Routes: ``POST /v1/chat/completions`` (JSON or SSE; ``model`` picks a route, an endpoint or
``auto``; an optional ``"llamux": {"strategy": ..., "wait": ...}`` object steers llamux and is
never forwarded), ``GET /v1/models``, ``GET /v1/llamux/status`` (as ``llamux status --json``),
``GET /v1/llamux/history`` (requests and tokens per minute, last hour),
``GET /v1/llamux/requests`` (counts per endpoint and the last requests), ``GET /metrics``
(Prometheus), ``GET /`` (the dashboard) and ``GET /healthz``. Answers name the endpoint that
served them in an ``x-llamux-endpoint`` header. Each request is logged in one line (``_log``).

With a proxy key every route but ``/healthz`` needs ``Authorization: Bearer KEY`` (or
``x-api-key: KEY``); the dashboard signs in once through a form and keeps a cookie that is
good for reading (GET) only. Provider keys never leave the server.

Against web pages (see ``_gate``): a ``Host`` that is not the proxy's own or allowed
(``--allow-host``) is refused (421), an ``Origin`` that is not its own or allowed (``--cors``)
too (403), a POST that is not JSON as well (415); CORS headers go to ``--cors`` origins only.
Every error is answered in the OpenAI error shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from .._config.proxy_defaults import (
    DEFAULT_HOST,
    DEFAULT_LOG_FORMAT,
    DEFAULT_MAX_BODY,
    DEFAULT_PORT,
    KEY_VARIABLE,
    LOG_FORMATS,
)
from .._errors import ConfigError, LlamuxError, NoEndpointAvailable, ProviderError, redact
from .._status import status_data
from ._auth import CSP, Guard, login, require_key
from ._gate import Gate, http_problem, read_body, respond, server_problem
from ._log import ENTRY, Entry, RequestLog, fields, level, log, log_config, plain
from ._metrics import Metrics
from ._quota import QuotaHeaders
from ._relay import ByteStream, Done, Relayed, arelay
from ._wire import Problem, failure, parse_request

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from .._router import Router


def create_app(
    router: Router,
    *,
    proxy_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    close_router: bool = True,
    bound_host: str | None = None,
    allow_hosts: Sequence[str] = (),
    cors_origins: Sequence[str] = (),
) -> Starlette:
    """The proxy as a Starlette app. With ``proxy_key``, every route but ``/healthz`` needs
    it; ``close_router``: close the router when the app shuts down (lifespan).

    Browser protection (see ``_gate``): requests must name as ``Host`` the address the
    proxy listens on (``bound_host``, else the one the client connected to), ``localhost``,
    ``127.0.0.1``, ``[::1]`` or one of ``allow_hosts`` (``"*"``: any); an ``Origin`` header
    must be the proxy's own or one of ``cors_origins``, which alone get CORS headers; a POST
    must be JSON."""
    proxy = _Proxy(router, max_body_bytes, proxy_key)
    routes = [
        *(Route(path, proxy.handler(kind), methods=["POST"]) for kind, path in PATHS.items()),
        Route("/v1/models", proxy.models, methods=["GET"]),
        Route("/v1/llamux/status", proxy.status, methods=["GET"]),
        Route("/v1/llamux/history", proxy.history, methods=["GET"]),
        Route("/v1/llamux/requests", proxy.requests, methods=["GET"]),
        Route("/metrics", proxy.metrics, methods=["GET"]),
        Route("/healthz", proxy.healthz, methods=["GET"]),
        Route("/", proxy.dashboard, methods=["GET"]),
    ]
    middleware = [
        Middleware(RequestLog, finished=proxy.finished, clock=router.clock.now),
        Middleware(Gate, bound_host=bound_host, allow_hosts=allow_hosts, cors_origins=cors_origins),
    ]
    if proxy_key:
        routes.append(Route("/login", login(proxy_key), methods=["POST"]))
        middleware.append(Middleware(Guard, key=proxy_key))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if close_router:
            await router.aclose()

    handlers = {HTTPException: http_problem, Exception: server_problem}
    return Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers=handlers,
    )


class _Proxy:
    """The route handlers, over one router."""

    def __init__(self, router: Router, max_body_bytes: int, proxy_key: str | None) -> None:
        self.router = router
        self.max_body = max_body_bytes
        self.proxy_key = proxy_key
        self.counters = Metrics(router.clock.now)
        self.quota = QuotaHeaders(router)
        self.page = resources.files("llamux.proxy").joinpath("dashboard.html").read_text("utf-8")

    def handler(self, kind: str) -> Callable[[Request], Awaitable[Response]]:
        """The route handler of requests of ``kind`` (chat, embeddings, ...)."""

        async def serve(request: Request) -> Response:
            return await self.serve(request, kind)

        return serve

    async def serve(self, request: Request, kind: str) -> Response:
        started = time.perf_counter()
        entry = request.scope.get(ENTRY) or Entry("POST", request.url.path, None, 0.0)
        params: dict[str, Any] = {}
        try:
            given, params = parse_request(await read_body(request, self.max_body), kind)
            _asked(entry, params)
            self._check_model(params.get("model"), kind)
            done = self._observer(started, entry)
            relayed = await arelay(self.router, given, params, done, kind)
        except Problem as problem:
            return self._refuse(entry, problem, own=True)
        except LlamuxError as error:
            if isinstance(error, NoEndpointAvailable):
                entry.retry_after = error.retry_after
                if not error.providers_failed:  # quota, not the providers: a refusal
                    self.counters.no_endpoint()
            answer = failure(
                error, self._secrets(), attempts=entry.attempts, wait=params.get("wait")
            )
            own = not isinstance(error, ProviderError | NoEndpointAvailable)
            return self._refuse(entry, answer, own=own)
        told = await self.quota.headers(params.get("model"), kind, relayed.remaining)
        return _respond(relayed, told)

    @staticmethod
    def _refuse(entry: Entry, problem: Problem, *, own: bool) -> Response:
        """The error answer; its code (and llamux's own message, never a provider's, which
        may quote the request) noted for the log."""
        error = problem.body.get("error")
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            entry.code = error["code"]
        if own:
            entry.message = str(problem)
        return respond(problem)

    def _check_model(self, model: Any, kind: str) -> None:
        try:
            self.router.candidates(model, kind)
        except ConfigError as error:
            raise Problem(404, str(error), "model_not_found", param="model") from None

    def _observer(self, started: float, entry: Entry) -> Done:
        def done(attempts: Sequence[Any], served: Any) -> None:
            entry.attempts, entry.served = tuple(attempts), served
            self.counters.observe(attempts, served, time.perf_counter() - started)

        return done

    def _secrets(self) -> list[str]:
        keys = {os.environ.get(ep.api_key_env) for ep in self.router.endpoints}
        keys.add(self.proxy_key)
        return sorted((k for k in keys if k), key=len, reverse=True)

    def finished(self, entry: Entry, seconds: float) -> None:
        """Log a request whose answer has ended; keep a chat request among the last ones."""
        data: dict[str, Any] = redact(fields(entry, seconds), self._secrets())
        if entry.path in SERVED_PATHS:
            self.counters.record(data)
        severity = level(data)
        if log.isEnabledFor(severity):
            log.log(severity, "%s", plain(data), extra={"llamux": data})

    async def models(self, request: Request) -> JSONResponse:
        """Every name a request's ``model`` may take, with the kinds of request it serves."""
        router = self.router
        by_id = {ep.id: ep for ep in router.endpoints}

        def kinds(ids: Sequence[str]) -> list[str]:
            found = {kind for i in ids if i in by_id for kind in by_id[i].serves}
            return [kind for kind in PATHS if kind in found]

        every = [ep.id for ep in router.endpoints]
        data = [_model("auto", "llamux", endpoints=every, serves=kinds(every))]
        data += [
            _model(r.name, "llamux", endpoints=list(r.endpoints), serves=kinds(r.endpoints))
            for r in router.routes.values()
        ]
        groups: dict[str, list[str]] = {}
        for ep in router.endpoints:  # a key list's id: every key's endpoint of its row
            if ep.group:
                groups.setdefault(ep.group, []).append(ep.id)
        data += [
            _model(name, "llamux", endpoints=ids, serves=kinds(ids)) for name, ids in groups.items()
        ]
        data += [
            _model(ep.id, ep.provider, model=ep.model, serves=kinds([ep.id]))
            for ep in router.endpoints
        ]
        return JSONResponse({"object": "list", "data": data})

    async def status(self, request: Request) -> JSONResponse:
        return JSONResponse(await asyncio.to_thread(status_data, self.router))

    async def history(self, request: Request) -> JSONResponse:
        return JSONResponse(self.counters.history())

    async def requests(self, request: Request) -> JSONResponse:
        return JSONResponse(self.counters.requests())

    async def metrics(self, request: Request) -> PlainTextResponse:
        status = await asyncio.to_thread(status_data, self.router)
        text = self.counters.text(status)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def healthz(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def dashboard(self, request: Request) -> HTMLResponse:
        headers = {"content-security-policy": CSP, "cache-control": "no-store"}
        return HTMLResponse(self.page, headers=headers)


PATHS = {
    "chat": "/v1/chat/completions",
    "embeddings": "/v1/embeddings",
    "responses": "/v1/responses",
    "completions": "/v1/completions",
}
"""The path of each kind of request the proxy serves."""
SERVED_PATHS = frozenset(PATHS.values())


def _model(name: str, owner: str, **extra: Any) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": owner, **extra}


def _asked(entry: Entry, params: Mapping[str, Any]) -> None:
    """Note the model asked for (bounded: it is the client's string) and whether streamed."""
    model = params.get("model")
    entry.model = model[:200] if isinstance(model, str) else "auto" if model is None else "?"
    entry.stream = params.get("stream") is True


# ------------------------------------------------------------------ the answer


def _respond(relayed: Relayed, told: Mapping[str, str]) -> Response:
    headers = {**relayed.headers, **told, "x-llamux-endpoint": relayed.served.endpoint}
    if relayed.stream is None:
        return Response(relayed.body, relayed.status, headers=headers)
    return _Streaming(relayed.stream, relayed.status, headers)


class _Streaming(StreamingResponse):
    """Relays a :class:`ByteStream` and closes it however the response ends (client gone,
    shutdown), so that it settles."""

    def __init__(self, stream: ByteStream, status: int, headers: Mapping[str, str]) -> None:
        super().__init__(stream, status, headers)
        self._relay = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._relay.aclose()


def serve(
    router: Router,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    proxy_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    log_level: str = "info",
    log_format: str = DEFAULT_LOG_FORMAT,
    allow_hosts: Sequence[str] = (),
    cors_origins: Sequence[str] = (),
) -> None:
    """Run the proxy until interrupted; in-flight requests finish and settle, then the
    router closes. ``proxy_key`` defaults to ``$LLAMUX_PROXY_KEY``; a host other than a
    loopback address needs one (``ConfigError`` otherwise). ``allow_hosts`` and
    ``cors_origins``: as :func:`create_app` (``--allow-host``, ``--cors``). Each request is
    logged in one line on stdout, uvicorn's own messages on stderr, ``log_format``
    ``plain`` (text) or ``json`` (one object per line)."""
    import uvicorn

    if log_format not in LOG_FORMATS:
        raise ConfigError(f"log_format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    key = proxy_key or os.environ.get(KEY_VARIABLE) or None
    require_key(host, key)
    app = create_app(
        router,
        proxy_key=key,
        max_body_bytes=max_body_bytes,
        bound_host=host,
        allow_hosts=allow_hosts,
        cors_origins=cors_origins,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=log_config(log_format, log_level),
        access_log=False,  # the request log (``_log``) says more, in one line per request
        **UVICORN_OPTIONS,
    )
    uvicorn.Server(config).run()


UVICORN_OPTIONS: dict[str, Any] = {
    "lifespan": "on",
    "ws": "none",
    "server_header": False,
    "timeout_graceful_shutdown": None,  # wait for every in-flight request
}
"""How uvicorn runs the proxy: in :func:`serve`, :class:`ProxyThread` and each worker of
``serve_workers`` (``_workers``)."""


class ProxyThread:
    """Runs an app with uvicorn in a daemon thread, on a free port unless given one
    (tests, benchmarks, embedding). ``stop()`` shuts down gracefully."""

    def __init__(self, app: ASGIApp, *, host: str = DEFAULT_HOST, port: int = 0) -> None:
        import uvicorn

        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, **UVICORN_OPTIONS
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, timeout: float = 10.0) -> ProxyThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the proxy did not start; see the log")
            time.sleep(0.01)
        return self

    @property
    def url(self) -> str:
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> ProxyThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
