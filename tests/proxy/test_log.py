"""The proxy's request log: one line per request (plain or JSON), never a key or a prompt;
and the 429 that names the proxy's own way to wait."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from proxy_helpers import PROXY_KEY, proxy

from llamux.proxy._log import JsonFormatter
from llamux.testing import FakeEndpoint, FakeProvider

from conftest import fake_table, free_port

PROMPT = "my secret prompt: the launch codes are 0000"
ASK = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 50}


@pytest.fixture
def fake_endpoints() -> list[FakeEndpoint]:
    return [FakeEndpoint(n, model=f"m-{n}") for n in ("a", "b")]


def lines(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "llamux.proxy" and r.levelno >= level]


def test_one_line_per_request_names_the_endpoint_the_failover_and_the_tokens(
    fake: FakeProvider, tmp_path: Path, keys: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="llamux.proxy")
    fake.inject("a", 503)
    with proxy(fake, tmp_path, [("a", "5 | |"), ("b", "3 | |")], proxy_key=PROXY_KEY) as (url, _):
        auth = {"authorization": f"Bearer {PROXY_KEY}"}
        post = f"{url}/v1/chat/completions"
        answers = [httpx.post(post, json=ASK, headers=auth) for _ in range(2)]
        answers.append(httpx.post(post, json={**ASK, "model": "b", "stream": True}, headers=auth))
        answers.append(httpx.post(post, json=ASK, headers=auth))
        httpx.get(f"{url}/v1/llamux/status", headers=auth)
        httpx.get(f"{url}/v1/nothing", headers=auth)
        httpx.post(post, json={"messages": []}, headers=auth)
        httpx.post(post, json=ASK)  # no key
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    said = [r.getMessage() for r in lines(caplog)]
    first, second, stream, refused, unknown, bad, no_key = said
    assert first.startswith("POST /v1/chat/completions 200 served by b in ")
    assert first.endswith(" tokens, after a failed: HTTP 503"), first
    assert second.startswith("POST /v1/chat/completions 200 served by b ") and "after" not in second
    assert "served by b in " in stream and ", streamed, first byte in " in stream
    assert refused.startswith("POST /v1/chat/completions 429 no endpoint available in ")
    assert "a: cooldown: HTTP 503" in refused and "b: rpm 3/3 used" in refused
    assert "capacity returns in " in refused
    assert unknown.startswith("GET /v1/nothing 404 in ") and unknown.endswith(": unknown_url")
    assert bad.startswith("POST /v1/chat/completions 400 in ") and "messages must be" in bad
    assert no_key.startswith("POST /v1/chat/completions 401 in ") and "invalid_api_key" in no_key
    polls = [r for r in lines(caplog, logging.DEBUG) if r.levelno == logging.DEBUG]
    assert [r.getMessage().split(" 200 ")[0] for r in polls] == ["GET /v1/llamux/status"]
    record = lines(caplog)[0]
    data = json.loads(JsonFormatter().format(record))
    assert data["status"] == 200 and data["endpoint"] == "b" and data["level"] == "info"
    assert data["failovers"] == [
        {"endpoint": "a", "status": 503, "reason": data["failovers"][0]["reason"]}
    ]
    assert data["tokens"] > 0 and data["model"] == "auto" and data["seconds"] > 0
    everything = caplog.text + "".join(JsonFormatter().format(r) for r in caplog.records)
    assert PROMPT not in everything and "launch codes" not in everything
    assert keys not in everything and PROXY_KEY not in everything


def test_the_429_names_the_proxys_own_wait_knob(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    with proxy(fake, tmp_path, [("a", "1 | |")]) as (url, _):
        post = f"{url}/v1/chat/completions"
        assert httpx.post(post, json=ASK).status_code == 200
        refused = httpx.post(post, json=ASK)
        waited = httpx.post(post, json={**ASK, "llamux": {"wait": 0.2}})
    assert refused.status_code == waited.status_code == 429
    message = refused.json()["error"]["message"]
    assert '"llamux": {"wait": ' in message and "in the request body" in message
    assert "wait=" not in message, "the library's argument, not the proxy's"
    assert "a: rpm 1/1 used" in message and "Retry-After" in message
    again = waited.json()["error"]["message"]
    assert "longer than the 0.2 s this request would wait" in again


def test_serve_logs_one_json_object_per_line_and_no_access_log(tmp_path: Path, keys: str) -> None:
    """``llamux serve --log-format json`` for real: every line of stdout and of uvicorn's
    messages is one JSON object, one per request, uvicorn's access log gone."""
    unused_port = free_port()
    with FakeProvider([FakeEndpoint("a")]) as fake:
        table = tmp_path / "endpoints.md"
        table.write_text(fake_table(fake, [("a", "10 | |")]))
        env = {**os.environ, "LLAMUX_STORE": "memory://", "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "llamux", "serve", "--config", str(table)]
        command += ["--port", str(unused_port), "--log-format", "json"]
        server = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            url = f"http://127.0.0.1:{unused_port}"
            _wait_up(url, server)
            assert httpx.post(f"{url}/v1/chat/completions", json=ASK).status_code == 200
            assert httpx.get(f"{url}/nope").status_code == 404
        finally:
            server.send_signal(signal.SIGINT)
            out, err = server.communicate(timeout=20)
    requests = [json.loads(line) for line in out.splitlines()]
    assert [(r["method"], r["path"], r["status"]) for r in requests] == [
        ("POST", "/v1/chat/completions", 200),
        ("GET", "/nope", 404),
    ], out
    assert requests[0]["endpoint"] == "a" and requests[0]["tokens"] > 0
    server_lines = [line for line in err.splitlines() if line.startswith("{")]
    assert any("Uvicorn running" in json.loads(line)["message"] for line in server_lines)
    assert PROMPT not in out + err and keys not in out + err


def _wait_up(url: str, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert server.poll() is None, server.communicate()
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("the proxy did not start")


def test_when_every_endpoint_fails_the_proxy_answers_502_not_429(
    fake: FakeProvider, tmp_path: Path, keys: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="llamux.proxy")
    fake.inject("a", 503)
    fake.inject("b", 500)
    with proxy(fake, tmp_path, [("a", "5 | |"), ("b", "5 | |")]) as (url, _):
        answer = httpx.post(f"{url}/v1/chat/completions", json=ASK)
        history = httpx.get(f"{url}/v1/llamux/history").json()
    assert answer.status_code == 502, answer.text
    error = answer.json()["error"]
    assert error["code"] == "upstream_failed" and error["type"] == "upstream_error"
    assert "every endpoint that could serve this request failed" in error["message"]
    assert [r["status"] for r in error["reasons"]] == [503, 500]
    assert "(no endpoint)" not in history["series"], "not a quota refusal"
    line = lines(caplog)[-1].getMessage()
    assert line.startswith("POST /v1/chat/completions 502 in ") and ": upstream_failed" in line
    assert "after a failed: HTTP 503; b failed: HTTP 500" in line
