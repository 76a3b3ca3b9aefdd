"""The proxy's browser gate: which ``Host``, ``Origin`` and ``Content-Type`` a request may
carry, and CORS (only for the origins given with ``--cors``); and Starlette's own refusals
(no such route, wrong method, an internal error) in the OpenAI error shape.

A proxy on 127.0.0.1 without a key is reachable from every web page the user opens. A page
may POST ``text/plain`` to it cross-site without a preflight (and spend quota), and with DNS
rebinding (its own name resolving to 127.0.0.1) it can even read the answers and the status.
So the gate refuses, before anything else runs:

- a ``Host`` that is not the bound address, ``localhost``, ``127.0.0.1``, ``[::1]`` or one
  given with ``--allow-host`` (421): a rebinding page's requests carry its own name;
- an ``Origin`` that is not the proxy's own or one given with ``--cors`` (403): browsers
  send it on every cross-site request, and on same-origin ones other than GET;
- a POST whose body is not declared JSON (415): no web form or ``text/plain`` fetch can send
  ``application/json`` cross-site without a preflight, which the gate does not grant.

The dashboard's own page stays usable: its fetches are same-origin GETs (no ``Origin``) and
its sign-in form posts ``application/x-www-form-urlencoded`` to ``/login`` with its own origin.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ._wire import Problem, too_large

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
"""Host names every proxy answers to: they reach only this machine."""
ANY_HOST = "*"
"""``--allow-host '*'``: answer to any ``Host`` (a proxy behind its own reverse proxy)."""
FORM_PATHS = frozenset({"/login"})
"""POST paths that take the dashboard's sign-in form instead of JSON."""
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
PREFLIGHT_MAX_AGE = "600"
SERVED = (
    "POST /v1/chat/completions, POST /v1/embeddings, POST /v1/responses, POST /v1/completions, "
    "GET /v1/models, GET /v1/llamux/status and / (the dashboard)"
)
"""The routes a 404 names (the main ones; the README lists every one)."""
EXPOSED = "x-llamux-endpoint, retry-after"
"""Response headers a page given with ``--cors`` may read."""


def host_name(value: str) -> str | None:
    """The name part of a ``Host`` value (``[::1]:8080`` -> ``[::1]``), lower-case; ``None``
    if the value is malformed (a port that is not a number, a stray bracket)."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value.partition("]")
        name += bracket
        if not bracket:
            return None
    elif value.count(":") > 1:  # a bare IPv6 address (as given with --allow-host)
        return f"[{value}]"
    else:
        name, _, port = value.partition(":")
        rest = f":{port}" if port or value.endswith(":") else ""
    if rest and not (rest.startswith(":") and rest[1:].isdigit()):
        return None
    return name or None


def origin_of(value: str) -> str:
    """An origin as browsers send it: ``scheme://host[:port]``, lower-case, no slash."""
    return value.strip().rstrip("/").lower()


class Gate:
    """ASGI middleware enforcing the Host, Origin and Content-Type rules, and CORS."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        bound_host: str | None = None,
        allow_hosts: Sequence[str] = (),
        cors_origins: Sequence[str] = (),
    ) -> None:
        self.app = app
        names = [*LOCAL_HOSTS, *([bound_host] if bound_host else []), *allow_hosts]
        self.any_host = ANY_HOST in allow_hosts
        self.hosts = frozenset(n for n in map(host_name, names) if n)
        self.cors = frozenset(origin_of(o) for o in cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        refusal = self._refusal(scope, headers, origin)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if origin is None or origin_of(origin) not in self.cors:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await _preflight(origin, headers)(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = MutableHeaders(scope=message)
                extra["access-control-allow-origin"] = origin
                extra["access-control-expose-headers"] = EXPOSED
                extra.add_vary_header("origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _refusal(self, scope: Scope, headers: Headers, origin: str | None) -> Response | None:
        host = headers.get("host")
        if host is not None and not self._allows_host(scope, host):
            return _problem(
                421,
                f"this llamux proxy does not answer to the host name {host!r} (a web page "
                "may be trying to reach it through DNS rebinding); if you reach the proxy by "
                "that name, start it with --allow-host NAME",
                "host_not_allowed",
            )
        if origin is not None and not self._allows_origin(scope, host, origin):
            return _problem(
                403,
                f"requests from the web origin {origin!r} are refused (a page on another "
                "site may not use this proxy); to let that page use it, start the proxy with "
                "--cors ORIGIN",
                "origin_not_allowed",
            )
        if scope["method"] == "POST":
            return self._content_refusal(scope["path"], headers.get("content-type", ""))
        return None

    def _allows_host(self, scope: Scope, host: str) -> bool:
        if self.any_host:
            return True
        name = host_name(host)
        return name is not None and (name in self.hosts or name == _server_name(scope))

    def _allows_origin(self, scope: Scope, host: str | None, origin: str) -> bool:
        given = origin_of(origin)
        if given in self.cors:
            return True
        scheme = scope.get("scheme", "http")
        own = _own_origins(scheme, scope.get("server"), self.hosts)
        return given in own or (host is not None and given == origin_of(f"{scheme}://{host}"))

    def _content_refusal(self, path: str, content_type: str) -> Response | None:
        media = content_type.split(";", 1)[0].strip().lower()
        accepted = (FORM,) if path in FORM_PATHS else (JSON,)
        if media in accepted:
            return None
        shown = repr(content_type) if content_type else "none"
        return _problem(
            415,
            f"POST bodies to {path} must be sent with Content-Type: {accepted[0]} (this "
            f"request's is {shown}); set that header",
            "unsupported_media_type",
        )


def _server_name(scope: Scope) -> str | None:
    """The address the client connected to (the bound address, or the interface's when
    bound to all), bracketed if IPv6."""
    server = scope.get("server")
    if not server:
        return None
    return host_name(f"[{server[0]}]" if ":" in str(server[0]) else str(server[0]))


def _own_origins(
    scheme: str, server: tuple[str, int | None] | None, hosts: Iterable[str]
) -> frozenset[str]:
    """``scheme://name:port`` for the proxy's own names on the port it listens on."""
    if not server or server[1] is None:
        return frozenset()
    port = server[1]
    names = {*hosts, _server_name({"server": server})}
    return frozenset(f"{scheme}://{n}:{port}" for n in names if n)


def _preflight(origin: str, headers: Headers) -> Response:
    """The answer to a CORS preflight from an origin given with ``--cors``."""
    asked = headers.get("access-control-request-headers", "")
    return Response(
        status_code=204,
        headers={
            "access-control-allow-origin": origin,
            "access-control-allow-methods": "GET, POST, OPTIONS",
            "access-control-allow-headers": asked or "authorization, content-type",
            "access-control-max-age": PREFLIGHT_MAX_AGE,
            "vary": "origin",
        },
    )


async def http_problem(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (404 no such route, 405 wrong method) in the OpenAI shape;
    a 404 as OpenAI's own API words it (code ``unknown_url``)."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = (
            f"Unknown request URL: {request.method} {request.url.path}. This llamux proxy "
            f"serves {SERVED}; check the URL for typos (an OpenAI client's base_url ends "
            "in /v1)"
        )
    elif exc.status_code == 405:
        allowed = Headers(exc.headers or {}).get("allow", "")
        message = f"{request.method} is not allowed on {request.url.path}; use {allowed}"
    else:
        message = str(exc.detail)
    code = {404: "unknown_url", 405: "method_not_allowed"}.get(exc.status_code)
    problem = Problem(exc.status_code, message, code, headers=exc.headers)
    return JSONResponse(problem.body, problem.status, headers=problem.headers)


async def server_problem(request: Request, exc: Exception) -> Response:
    """A bug of llamux's (never an input's fault), in the OpenAI shape; logged by the server."""
    problem = Problem(
        500,
        f"llamux failed on this request ({type(exc).__name__}); please report it with "
        "the proxy's log",
        "internal_error",
        kind="server_error",
    )
    return JSONResponse(problem.body, problem.status)


def _problem(status: int, message: str, code: str) -> JSONResponse:
    """The OpenAI error shape (as the rest of the proxy answers)."""
    return respond(Problem(status, message, code))


def respond(problem: Problem) -> JSONResponse:
    """A problem as the answer: the OpenAI error shape, its status and headers."""
    return JSONResponse(problem.body, problem.status, headers=problem.headers)


DRAIN = 64 * 1024 * 1024
"""Bytes of an oversized body still read (and dropped) so the client sees the 413 cleanly."""


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or 413 past ``limit`` bytes (read on, dropped, so the client hears it)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + DRAIN:
        raise too_large(limit)
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            parts.append(chunk)
        elif size > limit + DRAIN:
            break
    if size > limit:
        raise too_large(limit)
    return b"".join(parts)
