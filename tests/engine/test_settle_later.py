"""An answer the provider gave always reaches the caller: when the store cannot be reached
to settle it, the settle is kept (bounded) and applied, once, when the store is back."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from llamux import Router, served_by
from llamux._providers.transport import OpenAITransport
from llamux.testing import FakeEndpoint, FakeProvider

from conftest import HI, RedisServer, fake_table, used_of


class StopsTheStore:
    """The real transport, that stops the Redis server once the provider has answered."""

    def __init__(self, server: RedisServer) -> None:
        self.inner = OpenAITransport()
        self.server = server
        self.stop_next = False

    def prepare(self, *args: Any) -> None:
        self.inner.prepare(*args)

    def complete(self, *args: Any) -> Any:
        reply = self.inner.complete(*args)
        if self.stop_next:
            self.stop_next = False
            self.server.stop()
        return reply

    async def acomplete(self, *args: Any, **kw: Any) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        self.inner.close()


def test_a_settle_the_store_cannot_take_is_applied_once_it_is_back(
    tmp_path: Path, keys: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="llamux")
    server = RedisServer(tmp_path / "redis").start()  # append-only: it comes back whole
    transport = StopsTheStore(server)
    try:
        with FakeProvider([FakeEndpoint("a", rpm=10, tpm=10_000)]) as fake:
            config = tmp_path / "endpoints.md"
            config.write_text(fake_table(fake, [("a", "10 | 10000 |")]))
            router = Router.from_config(config, store=server.url, transport=transport)
            first = router.completion(HI, max_tokens=50)
            estimate = served_by(first).estimated_tokens  # type: ignore[union-attr]
            transport.stop_next = True
            second = router.completion(HI, max_tokens=50)  # Redis goes down after the answer
            assert second.choices[0].message.content  # the caller has its billed answer
            assert any("unreachable" in r.getMessage() for r in caplog.records)
            server.start()
            third = router.completion(HI, max_tokens=50)  # the kept settle goes in first
            served = fake.stats("a")
            assert served.served == 3 and served.refused == 0
            # each settled once, with its real usage: no estimate left, nothing twice
            assert used_of(router, "a") == {"rpm": 3, "tpm": served.total_tokens}
            assert served.total_tokens < 3 * estimate
            assert served_by(third) is not None
            router.close()
    finally:
        server.stop()
