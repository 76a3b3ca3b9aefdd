"""The proxy key: the middleware that asks for it, the dashboard's sign-in and its cookie
(derived from the key, good for reading only), and the rule that a proxy reachable from other
machines needs a key."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from .._config.proxy_defaults import KEY_VARIABLE
from .._errors import ConfigError
from ._gate import read_body, respond
from ._wire import Problem

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/healthz", "/login"})
COOKIE = "llamux_dashboard"
CSP = "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self'"


def cookie_token(key: str) -> str:
    """The dashboard cookie's value: derived from the key, never the key itself."""
    return hmac.new(key.encode(), b"llamux dashboard", hashlib.sha256).hexdigest()


class Guard:
    """Answers 401 unless the request carries the proxy key (``/healthz`` is open)."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key.encode()
        self.token = cookie_token(key).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or self._allows(scope):
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/" and scope["method"] == "GET":
            response: Response = HTMLResponse(LOGIN, 401, headers={"content-security-policy": CSP})
        else:
            response = respond(
                Problem(
                    401,
                    f"this llamux proxy needs its key: send Authorization: Bearer ${KEY_VARIABLE}",
                    "invalid_api_key",
                    headers={"www-authenticate": "Bearer"},
                )
            )
        await response(scope, receive, send)

    def _allows(self, scope: Scope) -> bool:
        headers = Headers(scope=scope)
        auth = headers.get("authorization", "")
        given = auth[7:].strip() if auth[:7].lower() == "bearer " else headers.get("x-api-key")
        if given and hmac.compare_digest(given.encode(), self.key):
            return True
        if scope["method"] not in ("GET", "HEAD"):
            return False  # the cookie only reads: no cross-site request spends quota
        cookie = Request(scope).cookies.get(COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), self.token)


LOGIN = """<!doctype html><meta charset="utf-8"><title>llamux: sign in</title>
<style>body{font:15px system-ui,sans-serif;display:grid;place-items:center;height:90vh}
form{display:flex;gap:8px}input{padding:6px 8px}</style>
<form method="post" action="/login"><input type="password" name="key" autofocus
placeholder="{key}"><button>Open the dashboard</button></form>""".replace("{key}", KEY_VARIABLE)


def login(key: str) -> Any:
    async def login(request: Request) -> Response:
        form = parse_qs((await read_body(request, 4096)).decode("utf-8", "replace"))
        given = (form.get("key") or [""])[0]
        if not hmac.compare_digest(given.encode(), key.encode()):
            return HTMLResponse(LOGIN, 401, headers={"content-security-policy": CSP})
        response = RedirectResponse("/", 303)
        response.set_cookie(COOKIE, cookie_token(key), httponly=True, samesite="strict")
        return response

    return login


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_key(host: str, key: str | None) -> None:
    """Raise ``ConfigError`` if ``host`` is not a loopback address and there is no key."""
    if key is None and not is_loopback(host):
        raise ConfigError(
            f"refusing to serve on {host} without a proxy key: anyone who reaches it could "
            f"spend your quotas; set {KEY_VARIABLE} (clients then send it as their API key), "
            "or bind 127.0.0.1"
        )
