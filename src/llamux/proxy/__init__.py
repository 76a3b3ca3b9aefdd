"""An OpenAI-compatible HTTP proxy in front of a :class:`~llamux.Router`, with a live dashboard.

Needs the ``[proxy]`` extra (Starlette and uvicorn). ``create_app(router)`` is the ASGI app,
``serve(router)`` runs it with uvicorn, ``ProxyThread`` runs it in a thread (for tests and
notebooks), ``serve_workers(config, workers=N)`` runs it in N processes on one port, each with
its own router on the store they share (``llamux serve --workers N``, see ``_workers``).
The routes, the key and the checks against web pages are described in ``proxy/_app.py``.
"""

from .._config.proxy_defaults import DEFAULT_HOST, DEFAULT_MAX_BODY, DEFAULT_PORT, KEY_VARIABLE
from ._app import ProxyThread, create_app, serve
from ._auth import COOKIE, is_loopback, require_key
from ._workers import serve_workers

__all__ = [
    "COOKIE",
    "DEFAULT_HOST",
    "DEFAULT_MAX_BODY",
    "DEFAULT_PORT",
    "KEY_VARIABLE",
    "ProxyThread",
    "create_app",
    "is_loopback",
    "require_key",
    "serve",
    "serve_workers",
]
