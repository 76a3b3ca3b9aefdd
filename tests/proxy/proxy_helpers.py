"""Helpers the proxy's tests share."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
from starlette.applications import Starlette

from llamux import Router
from llamux._stores.memory import MemoryStore
from llamux.proxy import ProxyThread, create_app
from llamux.testing import FakeClock, FakeEndpoint, FakeProvider

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


LONG_ID = "openrouter:meta-llama/llama-3.3-70b-instruct:free"
BUSY_REASON = (
    "We're experiencing high traffic right now! Please try again soon. The service is "
    "overloaded in region us-east-1 (request id 7c1e0f52-33b4-4a8e-9d0b-6f1e2a9c4d77)"
)


@contextlib.contextmanager
def busy_proxy(tmp_path: Path) -> Iterator[tuple[str, Starlette]]:
    """A proxy with a story to show (yields its URL and app): an endpoint cooling down after a 503
    with a long reason, one whose quota is full, one with a long id in a pool, one without
    a key, one with an auto limit; served, streamed, failed over and refused requests spread
    over the last hour (a FakeClock shared with the fake provider moves between them)."""
    clock = FakeClock(time.time() - 50 * 60)
    fakes = [
        FakeEndpoint("cerebras", model="gpt-oss-120b", delay=0.05),
        FakeEndpoint("groq", model="llama-3.3-70b-versatile", delay=0.02, dialect="groq"),
        FakeEndpoint("openrouter", model="meta-llama/llama-3.3-70b-instruct:free", delay=0.04),
        FakeEndpoint("mistral", model="mistral-small-latest"),
        FakeEndpoint("sambanova", model="Meta-Llama-3.3-70B-Instruct", delay=0.01),
    ]
    with FakeProvider(fakes, clock=clock.now) as fake:
        config = tmp_path / "llamux.toml"
        config.write_text(_busy_config(fake))
        router = Router.from_config(config, store=MemoryStore(), clock=clock)
        app = create_app(router)
        with ProxyThread(app) as running:
            _busy_traffic(running.url, fake, clock)
            yield running.url, app


def _busy_config(fake: FakeProvider) -> str:
    def endpoint(name: str, model: str, limits: str, extra: str = "") -> str:
        return (
            f'[[endpoints]]\nprovider = "fake"\nname = "{name}"\nmodel = "{model}"\n'
            f'base_url = "{fake.base_url(name.split(":")[0])}"\n{limits}\n{extra}\n'
        )

    return "\n".join(
        [
            endpoint("cerebras:gpt-oss-120b", "gpt-oss-120b", "rpm = 30\ntpm = 60000\nrpd = 14400"),
            endpoint(
                "groq:llama-3.3-70b-versatile", "llama-3.3-70b-versatile", "rpm = 12\ntpm = 12000"
            ),
            endpoint(
                LONG_ID, "meta-llama/llama-3.3-70b-instruct:free", "rpm = 20", 'pool = "free"'
            ),
            endpoint(
                "mistral:mistral-small-latest",
                "mistral-small-latest",
                "rpm = 60",
                'api_key_env = "LLAMUX_TEST_UNSET_KEY"',
            ),
            endpoint("sambanova:Meta-Llama-3.3-70B-Instruct", "x", 'rpm = "auto"\nrpd = 1000'),
            "[pools.free]\nrpm = 20\nrpd = 50\n",
        ]
    )


def _busy_traffic(url: str, fake: FakeProvider, clock: FakeClock) -> None:
    post = f"{url}/v1/chat/completions"
    ask = [{"role": "user", "content": "Tell me a short story about a lighthouse."}]
    busy = json.dumps({"error": {"message": BUSY_REASON, "type": "server_error"}})
    for minute in range(0, 48, 3):
        for _ in range(1 + minute % 4):
            httpx.post(post, json={"messages": ask, "max_tokens": 300})
        httpx.post(post, json={"messages": ask, "model": LONG_ID, "stream": True})
        if minute % 9 == 0:
            httpx.post(
                post, json={"messages": ask, "model": "sambanova:Meta-Llama-3.3-70B-Instruct"}
            )
        clock.advance(180)
    clock.advance(100)
    fake.inject("cerebras", 503, body=busy)
    for _ in range(12):  # cerebras fails once and rests; groq takes the rest until full
        httpx.post(post, json={"messages": ask, "max_tokens": 300})
    clock.advance(5)
