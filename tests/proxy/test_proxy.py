"""The OpenAI-compatible proxy, driven by the official ``openai`` SDK, the fake provider behind."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import pytest
from proxy_helpers import PROXY_KEY, proxy
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from llamux import Router
from llamux._providers.sse import EventSplitter, UsageScanner
from llamux._status import status_data
from llamux._stores.memory import MemoryStore
from llamux.cli import main
from llamux.proxy import ProxyThread, create_app, is_loopback
from llamux.testing import CUT, FakeEndpoint, FakeProvider

from conftest import EIGHT_WORDS, TELL_ME, fake_table, used


@pytest.fixture
def fake_endpoints() -> list[FakeEndpoint]:
    return [FakeEndpoint(n, reply=f"{n}: {EIGHT_WORDS}") for n in ("a", "b")]


def client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=10)


def normalized(text: str) -> str:
    """Bytes as the fake sends them, with its random ids and times blanked."""
    text = re.sub(r"chatcmpl-[0-9a-f]+", "chatcmpl-X", text)
    return re.sub(r'"created": \d+', '"created": 0', text)


def direct(fake: FakeProvider, name: str, body: dict[str, Any]) -> str:
    """What the fake itself answers to ``body`` (as llamux would send it)."""
    headers = {"authorization": "Bearer k"}
    answer = httpx.post(f"{fake.base_url(name)}/chat/completions", json=body, headers=headers)
    return answer.text


def wait_for(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# ------------------------------------------------------------------ the SDK, end to end


def test_sync_json_relays_the_provider_bytes_and_settles(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    with proxy(fake, tmp_path, [("a", "10 | 10000 |"), ("b", "10 | |")]) as (url, router):
        with client(url) as sdk:
            raw = sdk.chat.completions.with_raw_response.create(
                model="auto", messages=TELL_ME, max_tokens=100
            )
        assert raw.headers["x-llamux-endpoint"] == "a"
        assert raw.parse().choices[0].message.content == f"a: {EIGHT_WORDS}"
        assert used(router) == {"rpm": 1, "tpm": fake.stats("a").total_tokens}
        expected = direct(fake, "a", {"model": "m-a", "messages": TELL_ME, "max_tokens": 100})
        body = raw.http_response.text
        assert normalized(body) == normalized(expected)  # the fake's own bytes, not re-encoded


def test_async_sdk_concurrent_requests_never_over_admit(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    async def main(url: str) -> list[str]:
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as sdk:

            async def one() -> str:
                raw = await sdk.chat.completions.with_raw_response.create(
                    model="auto", messages=TELL_ME
                )
                return raw.headers["x-llamux-endpoint"]

            return await asyncio.gather(*(one() for _ in range(12)))

    with proxy(fake, tmp_path, [("a", "4 | |"), ("b", "20 | |")]) as (url, _):
        served = asyncio.run(main(url))
    assert sorted(served) == ["a"] * 4 + ["b"] * 8
    assert fake.stats("a").refused == fake.stats("b").refused == 0


def test_streams_sync_and_async_hide_the_usage_chunk_unless_asked(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    async def astream(url: str) -> str:
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as sdk:
            stream = await sdk.chat.completions.create(model="b", messages=TELL_ME, stream=True)
            return "".join([c.choices[0].delta.content or "" async for c in stream])

    with proxy(fake, tmp_path, [("a", "10 | 10000 |"), ("b", "10 | |")]) as (url, router):
        with client(url) as sdk:
            chunks = list(sdk.chat.completions.create(model="a", messages=TELL_ME, stream=True))
            assert all(c.choices for c in chunks), "no usage-only chunk unless asked"
            assert "".join(c.choices[0].delta.content or "" for c in chunks) == f"a: {EIGHT_WORDS}"
            options = {"include_usage": True}
            asked = list(
                sdk.chat.completions.create(
                    model="a", messages=TELL_ME, stream=True, stream_options=options
                )
            )
        assert asked[-1].choices == [] and asked[-1].usage is not None
        assert used(router) == {"rpm": 2, "tpm": fake.stats("a").total_tokens}
        assert asyncio.run(astream(url)) == f"b: {EIGHT_WORDS}"


def test_stream_bytes_are_the_providers_minus_the_usage_event(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    with proxy(fake, tmp_path, [("a", "10 | |")]) as (url, _):
        body = {"model": "auto", "messages": TELL_ME, "stream": True}
        through = httpx.post(f"{url}/v1/chat/completions", json=body)
    assert through.headers["content-type"].startswith("text/event-stream")
    upstream = direct(
        fake,
        "a",
        {**body, "model": "m-a", "stream_options": {"include_usage": True}},
    )
    events = upstream.split("\n\n")
    without_usage = [e for e in events if '"choices": []' not in e]
    assert len(without_usage) == len(events) - 1
    assert normalized(through.text) == normalized("\n\n".join(without_usage))


def test_failover_before_the_first_byte(fake: FakeProvider, tmp_path: Path, keys: str) -> None:
    fake.inject("a", 503)
    rows = [("a", "10 | |"), ("b", "10 | |")]
    with proxy(fake, tmp_path, rows) as (url, _), client(url) as sdk:
        raw = sdk.chat.completions.with_raw_response.create(model="auto", messages=TELL_ME)
        assert raw.headers["x-llamux-endpoint"] == "b"
        status = httpx.get(f"{url}/v1/llamux/status").json()
        assert status["endpoints"][0]["state"] == "cooldown"
        stream = sdk.chat.completions.create(model="auto", messages=TELL_ME, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream).startswith("b:")


def test_a_stream_cut_mid_way_ends_the_clients_stream_and_is_not_retried(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    fake.inject("a", CUT)
    with proxy(fake, tmp_path, [("a", "10 | 10000 |"), ("b", "10 | |")]) as (url, router):
        got = []
        with client(url) as sdk, pytest.raises(openai.APIError, match="broke off"):
            stream = sdk.chat.completions.create(
                model="auto", messages=TELL_ME, stream=True, max_tokens=50
            )
            got.extend(stream)
        assert got, "some chunks arrived before the cut"
        assert fake.stats("b").served == 0  # never sent elsewhere
        assert used(router)["rpm"] == 1
        assert used(router)["tpm"] > fake.stats("a").total_tokens  # the estimate stays
        metrics = httpx.get(f"{url}/metrics").text
        assert 'llamux_failures_total{endpoint="a"} 1' in metrics


def test_upstream_errors_pass_through_in_openai_shape_without_the_key(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    echo = {"error": {"message": f"bad value, key {keys}", "type": "invalid_request_error"}}
    fake.inject("a", 422, body=json.dumps(echo))
    with proxy(fake, tmp_path, [("a", "10 | |"), ("b", "10 | |")]) as (url, _):
        with client(url) as sdk, pytest.raises(openai.UnprocessableEntityError) as caught:
            sdk.chat.completions.create(model="auto", messages=TELL_ME)
        assert caught.value.status_code == 422
        assert caught.value.body == {
            "message": "bad value, key ***",
            "type": "invalid_request_error",
        }
        assert keys not in caught.value.response.text
        assert fake.stats("b").served == 0  # another endpoint would refuse it too


def test_429_with_retry_after_and_reasons_when_quotas_are_spent(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    with proxy(fake, tmp_path, [("a", "1 | |"), ("b", "1 | |")]) as (url, _):
        with client(url) as sdk:
            sdk.chat.completions.create(model="auto", messages=TELL_ME)
            sdk.chat.completions.create(model="auto", messages=TELL_ME)
            with pytest.raises(openai.RateLimitError) as caught:
                sdk.chat.completions.create(model="auto", messages=TELL_ME)
        answer = caught.value.response
        assert answer.status_code == 429
        # a minute window frees within 61 s (+ the 50 ms latency margin), rounded up
        assert 1 <= int(answer.headers["retry-after"]) <= 62
        error = answer.json()["error"]
        assert error["code"] == "rate_limit_exceeded"
        assert {r["endpoint"] for r in error["reasons"]} == {"a", "b"}
        assert "a: rpm 1/1" in error["message"]
        metrics = httpx.get(f"{url}/metrics").text
        assert "llamux_no_endpoint_total 1" in metrics
        assert fake.stats("a").refused == fake.stats("b").refused == 0


def test_model_selects_endpoints_and_bad_requests_are_400(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    with proxy(fake, tmp_path, [("a", "10 | 10000 |"), ("b", "10 | |")]) as (url, _):
        with client(url) as sdk:
            by_id = sdk.chat.completions.with_raw_response.create(model="b", messages=TELL_ME)
            by_model = sdk.chat.completions.with_raw_response.create(model="m-b", messages=TELL_ME)
            assert by_id.headers["x-llamux-endpoint"] == by_model.headers["x-llamux-endpoint"]
            with pytest.raises(openai.NotFoundError) as missing:
                sdk.chat.completions.create(model="nope", messages=TELL_ME)
            assert missing.value.code == "model_not_found"
            with pytest.raises(openai.BadRequestError) as large:
                sdk.chat.completions.create(model="a", messages=TELL_ME, max_tokens=20000)
            assert large.value.code == "context_length_exceeded"
        post = f"{url}/v1/chat/completions"
        as_json = {"content-type": "application/json"}
        assert httpx.post(post, content=b"{not json", headers=as_json).status_code == 400
        assert httpx.post(post, json={"model": "auto"}).json()["error"]["param"] == "messages"
        wrong = {"model": "auto", "messages": TELL_ME, "llamux": {"strategy": "nonsense"}}
        assert httpx.post(post, json=wrong).status_code == 400
        steered = {"model": "auto", "messages": TELL_ME, "llamux": {"strategy": "preference"}}
        assert httpx.post(post, json=steered).status_code == 200
        for bad in ({"max_tokens": "lots"}, {"max_tokens": -5}, {"model": ["a"]}, {"n": "2"}):
            answer = httpx.post(post, json={"model": "auto", "messages": TELL_ME, **bad})
            assert answer.status_code == 400, (bad, answer.text)


def test_a_huge_body_is_refused_with_413(fake: FakeProvider, tmp_path: Path, keys: str) -> None:
    huge = [{"role": "user", "content": "x" * 100_000}]
    with proxy(fake, tmp_path, [("a", "10 | |")], max_body_bytes=20_000) as (url, router):
        with client(url) as sdk, pytest.raises(openai.APIStatusError) as caught:
            sdk.chat.completions.create(model="auto", messages=huge)
        assert caught.value.status_code == 413
        assert "--max-body" in caught.value.message
        assert used(router) == {"rpm": 0}
        assert fake.stats("a").served == 0


def test_the_proxy_key_guards_every_route_but_healthz(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    with proxy(fake, tmp_path, [("a", "10 | |")], proxy_key=PROXY_KEY) as (url, _):
        with client(url, "wrong") as sdk, pytest.raises(openai.AuthenticationError):
            sdk.chat.completions.create(model="auto", messages=TELL_ME)
        with client(url, PROXY_KEY) as sdk:
            assert sdk.chat.completions.create(model="auto", messages=TELL_ME).choices
            assert [m.id for m in sdk.models.list()][:2] == ["auto", "a"]
        for path in ("/v1/models", "/v1/llamux/status", "/metrics", "/v1/llamux/history"):
            assert httpx.get(url + path).status_code == 401, path
            assert httpx.get(url + path, headers={"x-api-key": PROXY_KEY}).status_code == 200
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        page = httpx.get(f"{url}/")
        assert page.status_code == 401 and 'action="/login"' in page.text
        assert httpx.post(f"{url}/login", data={"key": "wrong"}).status_code == 401
        with httpx.Client(base_url=url) as browser:
            signed = browser.post("/login", data={"key": PROXY_KEY})
            assert signed.status_code == 303 and PROXY_KEY not in signed.headers["set-cookie"]
            assert browser.get("/").status_code == 200
            assert browser.get("/v1/llamux/status").status_code == 200
            chat = browser.post("/v1/chat/completions", json={"messages": TELL_ME})
            assert chat.status_code == 401, "the cookie never spends quota"


def test_status_models_metrics_history_and_no_key_anywhere(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    fake.inject("a", 400, body=json.dumps({"error": {"message": f"echo {keys}"}}))
    with proxy(fake, tmp_path, [("a", "2 | |"), ("b", "1 | |")]) as (url, router):
        answers = [httpx.post(f"{url}/v1/chat/completions", json={"messages": TELL_ME})]
        for stream in (False, True, False, False):
            body = {"messages": TELL_ME, "stream": stream}
            answers.append(httpx.post(f"{url}/v1/chat/completions", json=body))
        assert [a.status_code for a in answers] == [400, 200, 200, 200, 429]
        for path in ("/", "/healthz", "/v1/models", "/v1/llamux/status", "/metrics"):
            answers.append(httpx.get(url + path))
        answers.append(httpx.get(f"{url}/v1/llamux/history"))
        status = answers[-3].json()
        expected = status_data(router)
        assert [e["id"] for e in status["endpoints"]] == ["a", "b"]
        assert [r["used"] for e in status["endpoints"] for r in e["rules"]] == [
            r["used"] for e in expected["endpoints"] for r in e["rules"]
        ]
        metrics = answers[-2].text
        assert 'llamux_requests_total{endpoint="a"} 2' in metrics
        assert 'llamux_quota_used{scope="a",rule="rpm"} 2' in metrics
        assert 'llamux_request_duration_seconds_count{endpoint="b"} 1' in metrics
        series = answers[-1].json()["series"]
        assert sum(series["a"]) == 2 and sum(series["(no endpoint)"]) == 1
        assert len(series["a"]) == 60
    for answer in answers:
        assert keys not in answer.text and keys not in str(answer.headers)


# ------------------------------------------------------------------ lifecycle


def test_graceful_shutdown_finishes_in_flight_requests_and_settles(
    tmp_path: Path, keys: str
) -> None:
    endpoints = [FakeEndpoint("a", reply=EIGHT_WORDS, delay=0.6)]
    with FakeProvider(endpoints) as fake:
        path = tmp_path / "endpoints.md"
        path.write_text(fake_table(fake, [("a", "10 | 100000 |")]))
        router = Router.from_csv(path, store=MemoryStore())
        running = ProxyThread(create_app(router)).start()
        results: list[str] = []

        def ask(stream: bool) -> None:
            with client(running.url) as sdk:
                if stream:
                    answer = sdk.chat.completions.create(model="a", messages=TELL_ME, stream=True)
                    results.append("".join(c.choices[0].delta.content or "" for c in answer))
                else:
                    answer = sdk.chat.completions.create(model="a", messages=TELL_ME)
                    results.append(answer.choices[0].message.content or "")

        threads = [threading.Thread(target=ask, args=(s,)) for s in (False, True)]
        for thread in threads:
            thread.start()
        wait_for(lambda: fake.stats("a").served == 2)  # both are in flight at the provider
        running.stop()  # returns once they are done
        for thread in threads:
            thread.join(5)
        assert results == [EIGHT_WORDS, EIGHT_WORDS]
        assert used(router) == {"rpm": 2, "tpm": fake.stats("a").total_tokens}


def slow_upstream() -> Starlette:
    """An OpenAI-compatible stream that sends one chunk, then stalls for seconds."""

    async def chat(request: Request) -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            chunk = {"id": "x", "object": "chat.completion.chunk", "choices": [{"index": 0}]}
            yield f"data: {json.dumps(chunk)}\n\n".encode()
            await asyncio.sleep(5)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def test_a_client_that_hangs_up_mid_stream_still_settles(tmp_path: Path, keys: str) -> None:
    with ProxyThread(slow_upstream()) as upstream:
        path = tmp_path / "endpoints.md"
        path.write_text(
            "| name | provider | model | base_url | rpm |\n|---|---|---|---|---|\n"
            f"| slow | fake | m | {upstream.url}/v1 | 10 |\n"
        )
        router = Router.from_csv(path, store=MemoryStore())
        with ProxyThread(create_app(router)) as running:
            body = {"messages": TELL_ME, "stream": True}
            started = time.monotonic()
            with httpx.stream("POST", f"{running.url}/v1/chat/completions", json=body) as answer:
                assert next(answer.iter_bytes()).startswith(b"data: ")

            def settled() -> bool:
                metrics = httpx.get(f"{running.url}/metrics").text
                return 'llamux_requests_total{endpoint="slow"} 1' in metrics

            wait_for(settled)
            assert time.monotonic() - started < 4, "settled when the client left, not later"
            assert used(router)["rpm"] == 1


def test_serve_refuses_a_public_host_without_a_proxy_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LLAMUX_PROXY_KEY", raising=False)
    table = tmp_path / "endpoints.csv"
    table.write_text("provider,model,rpm\ngroq,llama,30\n")
    assert main(["serve", "--config", str(table), "--host", "0.0.0.0"]) == 1
    error = capsys.readouterr().err
    assert "refusing to serve on 0.0.0.0 without a proxy key" in error
    assert "LLAMUX_PROXY_KEY" in error
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")


# ------------------------------------------------------------------ the SSE splitter


def test_the_sse_splitter_keeps_bytes_across_any_chunking() -> None:
    stream = b'data: {"a": 1}\r\n\r\n: comment\n\ndata: x\rdata: y\r\r' + b"data: [DONE]\n\n"
    for size in (1, 2, 3, 7, len(stream)):
        splitter = EventSplitter()
        events = []
        for i in range(0, len(stream), size):
            events += splitter.feed(stream[i : i + size])
        assert b"".join(events) == stream and splitter.rest() == b""
        assert len(events) == 4


def test_the_usage_scanner_finds_usage_and_hides_only_the_usage_event() -> None:
    usage = b'data: {"choices": [], "usage": {"total_tokens": 7}}\n\n'
    content = b'data: {"choices": [{"delta": {}}], "usage": null}\n\n'
    done = b"data: [DONE]\n\n"
    hiding = UsageScanner(hide_usage=True)
    assert hiding.feed(content + usage[:10]) + hiding.feed(usage[10:] + done) == content + done
    assert hiding.usage == {"total_tokens": 7}
    showing = UsageScanner(hide_usage=False)
    assert showing.feed(content + usage + done) == content + usage + done
