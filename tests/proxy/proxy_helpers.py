"""Helpers the proxy's tests share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llamux import Router
from llamux._stores.memory import MemoryStore
from llamux.proxy import ProxyThread, create_app
from llamux.testing import FakeProvider

from conftest import fake_table

PROXY_KEY = "pk-proxy-key-0123456789"


@contextlib.contextmanager
def proxy(
    fake: FakeProvider, tmp_path: Path, rows: list[tuple[str, str]], **app: Any
) -> Iterator[tuple[str, Router]]:
    """A proxy on a free port in front of a router for ``rows``; yields (url, router)."""
    path = tmp_path / "endpoints.md"
    path.write_text(fake_table(fake, rows))
    router = Router.from_csv(path, store=MemoryStore())  # a store object: readable after close
    with ProxyThread(create_app(router, **app)) as running:
        yield running.url, router
