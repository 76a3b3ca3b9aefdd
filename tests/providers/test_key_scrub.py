"""A provider that echoes the API key in its error answer ("Incorrect API key provided:
sk-...") never gets the key into what the caller sees: no field, repr, traceback, chained
exception or log line of any llamux error holds it, on any path."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from llamux import LlamuxError, NoEndpointAvailable, Router
from llamux._errors import ProviderError, ProviderStatusError, redact
from llamux._stores.memory import MemoryStore
from llamux.proxy import ProxyThread, create_app

from conftest import HI


def echo_app() -> Starlette:
    """A provider that answers every call with the status in the path, echoing the bearer
    key in its error message, its error code, a header and a nested body field."""

    async def chat(request: Request) -> JSONResponse:
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        status = int(request.path_params["status"])
        error = {
            "message": f"Incorrect API key provided: {key}. Find your key at ...",
            "type": "invalid_request_error",
            "param": None,
            "code": f"invalid_api_key:{key}",
            "details": [{"given": key, "hint": ["the key was", key]}],
        }
        headers = {"x-echo-key": key, "www-authenticate": f'Bearer error="{key}"'}
        return JSONResponse({"error": error}, status, headers=headers)

    return Starlette(routes=[Route("/{status:int}/v1/chat/completions", chat, methods=["POST"])])


@pytest.fixture(scope="module")
def echo() -> Iterator[str]:
    with ProxyThread(echo_app()) as running:
        yield running.url


def router_for(echo: str, tmp_path: Path, status: int) -> Router:
    table = tmp_path / "endpoints.md"
    table.write_text(
        "| name | provider | model | base_url | rpm |\n|---|---|---|---|---|\n"
        f"| echo | fake | m | {echo}/{status}/v1 | 10 |\n"
    )
    return Router.from_csv(table, store=MemoryStore())


def logs(caplog: pytest.LogCaptureFixture) -> None:
    """Capture llamux's logs at DEBUG, every other library's at INFO (httpcore's DEBUG trace
    prints raw response headers, which this provider fills with the key: not llamux's)."""
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="llamux")


def chain(error: BaseException) -> list[BaseException]:
    """The error and every exception chained to it (cause and context), each once."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo:
        item = todo.pop()
        if item is not None and all(item is not s for s in seen):
            seen.append(item)
            todo += [item.__cause__, item.__context__]
    return seen


def holds(value: Any, key: str, depth: int = 0) -> bool:
    """Whether ``key`` can be found in ``value``: its text, or what it holds (attributes,
    mappings, sequences, httpx requests and responses with their headers), a few levels."""
    if depth > 6:
        return False
    if isinstance(value, str | bytes):
        return key in (value if isinstance(value, str) else value.decode("utf-8", "replace"))
    if key in repr(value):
        return True
    if isinstance(value, dict):
        return any(holds(k, key, depth + 1) or holds(v, key, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple | set):
        return any(holds(v, key, depth + 1) for v in value)
    headers = getattr(value, "headers", None)
    if headers is not None and not isinstance(value, type):
        return any(key in str(v) for v in dict(headers).values()) or holds(
            getattr(value, "__dict__", None), key, depth + 1
        )
    attributes = getattr(value, "__dict__", None)
    return isinstance(attributes, dict) and holds(attributes, key, depth + 1)


def assert_clean(error: BaseException, key: str) -> None:
    assert isinstance(error, LlamuxError)
    for item in chain(error):
        assert key not in str(item) and key not in repr(item), type(item)
        assert not holds(item.args, key), type(item)
        assert not holds(vars(item), key), (type(item), vars(item))
    text = "".join(traceback.format_exception(error))
    assert key not in text


def assert_masked(error: ProviderError, key: str) -> None:
    """The provider's answer is kept (for the caller and feedback), with the key masked."""
    assert isinstance(error.body, dict)
    assert error.body["message"].startswith("Incorrect API key provided: ***")
    assert error.body["details"] == [{"given": "***", "hint": ["the key was", "***"]}]
    assert error.headers["x-echo-key"] == "***"
    assert error.code == "invalid_api_key:***"


def test_a_400_that_echoes_the_key_reaches_the_caller_without_it(
    echo: str, tmp_path: Path, keys: str, caplog: pytest.LogCaptureFixture
) -> None:
    logs(caplog)
    with router_for(echo, tmp_path, 400) as router:
        with pytest.raises(ProviderStatusError) as sync:
            router.completion(HI)
        with pytest.raises(ProviderStatusError) as streamed:
            router.completion(HI, stream=True)

        async def call() -> None:
            try:
                await router.acompletion(HI)
            finally:
                await router.aclose()  # this event loop's clients

        with pytest.raises(ProviderStatusError) as awaited:
            asyncio.run(call())
    for caught in (sync, streamed, awaited):
        assert caught.value.status == 400
        assert_masked(caught.value, keys)
        assert_clean(caught.value, keys)
    assert keys not in caplog.text
    assert all(keys not in str(r.args) for r in caplog.records)


def test_a_401_that_echoes_the_key_disables_without_leaking_it(
    echo: str, tmp_path: Path, keys: str, caplog: pytest.LogCaptureFixture
) -> None:
    logs(caplog)
    with router_for(echo, tmp_path, 401) as router:
        with pytest.raises(NoEndpointAvailable) as caught:
            router.completion(HI)
        status = [row.cooldown for row in router.status()]
    assert "Incorrect API key provided: ***" in str(caught.value)
    assert_clean(caught.value, keys)
    assert status[0] is not None and keys not in repr(status)
    assert "disabled" in caplog.text and keys not in caplog.text


def test_the_proxy_passes_the_providers_error_on_without_the_key(
    echo: str, tmp_path: Path, keys: str, caplog: pytest.LogCaptureFixture
) -> None:
    logs(caplog)
    router = router_for(echo, tmp_path, 400)
    with router, TestClient(create_app(router)) as http:
        answer = http.post("/v1/chat/completions", json={"messages": HI})
    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith("Incorrect API key provided: ***")
    assert keys not in answer.text and keys not in str(answer.headers)
    assert keys not in caplog.text


def test_the_sdk_error_is_not_chained_where_it_holds_the_key(
    echo: str, tmp_path: Path, keys: str
) -> None:
    """The SDK's exception holds the request (its headers carry the key) and the raw body:
    what the caller gets has no ``__context__`` or ``__cause__`` pointing at it."""
    with router_for(echo, tmp_path, 400) as router, pytest.raises(ProviderStatusError) as caught:
        router.completion(HI)
    assert not any(isinstance(e, openai.OpenAIError) for e in chain(caught.value))


def test_redact_masks_every_string_in_nested_values_and_leaves_short_keys() -> None:
    key = "sk-0123456789abcdef"
    value = {"a": [key, (f"x{key}y", 3)], key: {"b": key.encode()}, "n": None}
    assert redact(value, [key]) == {"a": ["***", ("x***y", 3)], "***": {"b": b"***"}, "n": None}
    assert redact("a short key: ollama", ["ollama"]) == "a short key: ollama"
    error = ProviderStatusError(
        f"bad key {key}", endpoint="e", code=key, headers={"h": key}, body=[key], secrets=[key]
    )
    assert key not in repr((error, error.args, error.code, error.headers, error.body))
