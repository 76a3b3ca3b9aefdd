"""The proxy's defaults and the name of its key variable, defined once.

``proxy`` (which needs the ``[proxy]`` extra) and the CLI's ``serve`` command (which must load
and explain itself without it) both read them from here.
"""

from __future__ import annotations

DEFAULT_HOST = "127.0.0.1"
"""The address the proxy binds unless told otherwise (``--host``): reachable from here only."""
DEFAULT_PORT = 8080
DEFAULT_MAX_BODY = 4 * 1024 * 1024
"""Request bodies over this many bytes are refused with 413 (``--max-body``)."""
KEY_VARIABLE = "LLAMUX_PROXY_KEY"
"""The environment variable holding the proxy's key (clients send it as their API key)."""
LOG_FORMATS = ("plain", "json")
"""How ``llamux serve`` writes its request log (``--log-format``): text, or one JSON object
per line."""
DEFAULT_LOG_FORMAT = "plain"
