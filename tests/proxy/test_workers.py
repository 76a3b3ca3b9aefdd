"""``llamux serve --workers N``: real worker processes on one port and one store (an SQLite
file, or one Redis: the several-machines case on one machine), against an exact fake
provider that answers 429 to any request over its limit."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from llamux import Router
from llamux.proxy._supervisor import listening_sockets
from llamux.proxy._workers import OPTIONS, WorkerOptions, worker_app
from llamux.testing import FakeEndpoint, FakeHold, FakeProvider

from conftest import KEY, RedisServer, fake_table, free_port, run_cli, used_of

RPM = 20
"""The fake's (and the table's) requests per minute on endpoint ``a``; more are sent."""
SENT = 3 * RPM
HI = [{"role": "user", "content": "hi"}]
HELD = 1.5
"""Seconds the fake holds a request to ``slow`` before answering: in flight at the stop."""


class Served:
    """``llamux serve --workers 2`` in its own session (a terminal's Ctrl-C reaches the
    whole group), its stdout (the request log, JSON) and stderr in files."""

    def __init__(self, tmp_path: Path, table: Path, store: str, workers: int = 2) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out, self.err = tmp_path / "out.log", tmp_path / "err.log"
        command = [sys.executable, "-m", "llamux", "--config", str(table), "--store", store]
        command += ["serve", "--workers", str(workers), "--port", str(self.port)]
        command += ["--log-format", "json"]
        env = {**os.environ, "FAKE_API_KEY": KEY, "PYTHONUNBUFFERED": "1"}
        env.pop("LLAMUX_PROXY_KEY", None)
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                command, stdout=out, stderr=err, env=env, start_new_session=True
            )

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def lines(self) -> list[dict[str, Any]]:
        text = self.out.read_text(errors="replace")
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def wait_for(self, what: Callable[[], bool], seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        while not what():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"llamux serve exited ({self.proc.returncode}):\n{self.stderr()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting after {seconds} s:\n{self.stderr()}")
            time.sleep(0.05)

    def ready(self, workers: int = 2) -> None:
        self.wait_for(lambda: self.stderr().count("Application startup complete") >= workers)

    def pids(self) -> set[int]:
        """The workers that logged a chat request."""
        return {line["pid"] for line in self.lines() if line.get("path") == CHAT_PATH}

    def stop(self, sig: signal.Signals, group: bool) -> float:
        """Send ``sig`` (to the whole group, as Ctrl-C does, or to the parent alone, as a
        service manager does); the seconds until it exited."""
        started = time.monotonic()
        if group:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=20)
        return time.monotonic() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


CHAT_PATH = "/v1/chat/completions"


@contextmanager
def served(tmp_path: Path, table: Path, store: str) -> Iterator[Served]:
    running = Served(tmp_path, table, store)
    try:
        running.ready()
        yield running
    finally:
        running.kill()
        assert KEY not in running.stderr() + running.out.read_text(errors="replace")


def ask(url: str, model: str = "a") -> httpx.Response:
    """One chat request on a connection of its own (so the workers take turns accepting)."""
    body = {"model": model, "messages": HI, "max_tokens": 5}
    return httpx.post(f"{url}{CHAT_PATH}", json=body, timeout=30)


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'state.db'}"
    server: RedisServer = request.getfixturevalue("redis_server")
    return f"{server.url}?namespace=workers-{uuid.uuid4().hex[:12]}"


@pytest.mark.slow
def test_two_workers_keep_one_quota_exactly_and_stop_cleanly(
    tmp_path: Path, store_url: str
) -> None:
    arrived = threading.Event()

    def hold(held: FakeHold) -> None:  # the request to slow stays in flight for HELD s
        arrived.set()
        time.sleep(HELD)

    endpoints = [FakeEndpoint("a", rpm=RPM), FakeEndpoint("slow", ingress=0.01)]
    with FakeProvider(endpoints, hold=hold) as fake:
        table = tmp_path / "endpoints.md"
        table.write_text(fake_table(fake, [("a", f"{RPM} | 100000 |"), ("slow", "100 | 100000 |")]))
        with served(tmp_path, table, store_url) as proxy:
            with ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(lambda _: ask(proxy.url), range(SENT)))
            statuses = [answer.status_code for answer in answers]
            assert statuses.count(200) == RPM and statuses.count(429) == SENT - RPM
            for answer in answers:
                if answer.status_code == 429:  # llamux's own refusal, not a relayed one
                    error = answer.json()["error"]
                    assert error["code"] == "rate_limit_exceeded" and "reasons" in error
                    assert "retry-after" in answer.headers
            assert fake.stats("a").refused == 0 and fake.stats("a").served == RPM

            for _ in range(100):  # more turns, refused at once, until both workers took one
                if len(proxy.pids()) == 2:
                    break
                ask(proxy.url)
            assert len(proxy.pids()) == 2, "one worker took every connection"
            for _ in range(3):  # the status is the store's: the same from either worker
                status = httpx.get(f"{proxy.url}/v1/llamux/status", timeout=10).json()
                rules = {r["rule"]: r["used"] for r in status["endpoints"][0]["rules"]}
                assert rules["rpm"] == RPM

            with ThreadPoolExecutor(1) as pool:
                in_flight = pool.submit(ask, proxy.url, "slow")
                assert arrived.wait(10)
                ctrl_c = "sqlite" in store_url  # Ctrl-C; Redis: SIGTERM to the parent alone
                took = proxy.stop(signal.SIGINT if ctrl_c else signal.SIGTERM, group=ctrl_c)
                assert in_flight.result(timeout=10).status_code == 200
            assert proxy.proc.returncode == 0 and took < HELD + 10
            said = proxy.stderr()
            assert "2 worker processes on one store" in said
            assert "llamux proxy stopped; in-flight requests finished and settled" in said
            assert "Traceback" not in said

        with Router.from_csv(table, store=store_url) as router:  # every request settled
            for name in ("a", "slow"):
                assert used_of(router, name) == {
                    "rpm": fake.stats(name).served,
                    "tpm": fake.stats(name).total_tokens,
                }
            router.reset()


@pytest.mark.slow
def test_a_worker_that_dies_is_said_and_replaced(tmp_path: Path) -> None:
    with FakeProvider([FakeEndpoint("a")]) as fake:
        table = tmp_path / "endpoints.md"
        table.write_text(fake_table(fake, [("a", "100 | |")]))
        with served(tmp_path, table, f"sqlite://{tmp_path / 'state.db'}") as proxy:
            started = [
                int(p) for p in re.findall(r"Started server process \[(\d+)\]", proxy.stderr())
            ]
            os.kill(started[0], signal.SIGKILL)
            proxy.wait_for(lambda: f"Child process [{started[0]}] died" in proxy.stderr())
            proxy.ready(workers=3)  # its replacement has started
            assert all(ask(proxy.url).status_code == 200 for _ in range(4))
            proxy.stop(signal.SIGINT, group=True)
            assert proxy.proc.returncode == 0


def test_workers_on_a_memory_store_is_an_error_that_says_what_to_do(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    table = tmp_path / "endpoints.md"
    table.write_text("| provider | model | rpm |\n|---|---|---|\n| groq | llama | 30 |\n")
    port = str(free_port())
    code, out, err = run_cli(
        capsys, "--config", str(table), "--store", "memory://", "serve", "--workers", "2",
        "--port", port,
    )  # fmt: skip
    assert code == 1 and out == "" and "llamux proxy:" not in err
    assert "--workers 2 needs a store the worker processes share" in err
    assert "--store sqlite:///" in err and "--store redis://" in err
    code, _, err = run_cli(capsys, "--config", str(table), "serve", "--workers", "0")
    assert code == 1 and "expected a whole number above 0" in err


def test_a_worker_that_cannot_open_its_router_stops_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    table = tmp_path / "endpoints.md"
    table.write_text("| provider | model | rpm |\n|---|---|---|\n| groq | llama | lots |\n")
    options = WorkerOptions(str(table), "memory://", "127.0.0.1", 1000)
    monkeypatch.setenv(OPTIONS, options.dumps())
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stopped:
        worker_app()
    assert stopped.value.code == 3  # uvicorn's supervisor then stops instead of restarting
    assert "a worker could not start" in caplog.text and "lots" in caplog.text


def test_each_worker_listens_on_its_own_tcp_socket_on_the_one_port() -> None:
    sockets = listening_sockets("127.0.0.1", 0, 2)
    try:
        # its own: the kernel spreads connections over the workers (SO_REUSEPORT, Linux);
        # TCP: asyncio sets TCP_NODELAY on their connections, so no answer waits on Nagle
        assert len({id(sock) for sock in sockets}) == (2 if sys.platform == "linux" else 1)
        assert len({sock.getsockname() for sock in sockets}) == 1
        assert all(s.proto == socket.IPPROTO_TCP and s.get_inheritable() for s in sockets)
    finally:
        for sock in sockets:
            sock.close()
