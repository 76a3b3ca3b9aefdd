"""Provider keys, read from the environment at each use (a key exported later counts).

An endpoint whose key variable is unset is skipped, with one warning per endpoint and
process. The key itself is never logged, stored or shown.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._config.load import Endpoint

log = logging.getLogger("llamux")


class Keys:
    """The keys of endpoints, from ``environ`` (default: the process environment)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "Keys(<from the environment>)"

    def get(self, ep: Endpoint) -> str | None:
        """``ep``'s key, or None when its variable is unset or empty."""
        return self._environ.get(ep.api_key_env) or None

    def lookup(self, ep: Endpoint) -> str | None:
        """:meth:`get`, warning once when the key is missing (the endpoint is skipped)."""
        key = self.get(ep)
        if key is None:
            self._warn(ep)
        return key

    def _warn(self, ep: Endpoint) -> None:
        with self._lock:
            if ep.id in self._warned:
                return
            self._warned.add(ep.id)
        log.warning(
            "endpoint %s is skipped: the environment variable %s is not set; export it "
            "or remove the endpoint from your table",
            ep.id,
            ep.api_key_env,
        )
