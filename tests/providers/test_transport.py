"""OpenAITransport: one SDK client per endpoint, all sharing one HTTP client (a connection
pool and a TLS context) per mode and event loop, so readying many endpoints is cheap."""

from __future__ import annotations

import asyncio

from llamux._config.load import parse_table
from llamux._providers.transport import OpenAITransport

A, B = parse_table("provider,model\ngroq,a\ncerebras,b\n").endpoints


def test_sync_clients_of_all_endpoints_share_one_http_client() -> None:
    transport = OpenAITransport()
    transport.prepare(A, "key-a")
    transport.prepare(B, "key-b")
    first, second = transport._client(A, "key-a"), transport._client(B, "key-b")
    assert first is not second and first.base_url != second.base_url
    assert first._client is second._client
    transport.close()
    assert transport._client(A, "key-a")._client is not first._client  # rebuilt after close


def test_async_and_raw_calls_of_one_loop_share_one_http_client() -> None:
    transport = OpenAITransport()

    async def shared() -> bool:
        transport.prepare(A, "key-a", "async")
        transport.prepare(B, "key-b", "raw")
        same = transport._aclient(A, "key-a")._client is transport._ahttp()
        await transport.aclose()
        return same

    assert asyncio.run(shared())
    assert asyncio.run(shared())  # a new loop gets its own
