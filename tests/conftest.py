from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from llamux import Router
from llamux._policy.quota import Cooldown
from llamux._policy.rules import Scope
from llamux._status import EndpointStatus
from llamux._stores import QuotaStore
from llamux._stores.memory import MemoryStore
from llamux._stores.sqlite import SQLiteStore
from llamux.testing import FakeClock, FakeEndpoint, FakeProvider

HI: list[Any] = [{"role": "user", "content": "hi"}]
"""A one-word chat: 5 prompt tokens at the fake provider (4 + 1)."""
TELL_ME: list[Any] = [{"role": "user", "content": "Tell me something."}]
EIGHT_WORDS = "one two three four five six seven eight"
"""A reply the fake provider can be told to give (``FakeEndpoint(reply=...)``)."""

STORE_KINDS = ["memory", "sqlite", "redis", "redis-cluster"]
SERVER_FIXTURES = {"redis": "redis_server", "redis-cluster": "redis_cluster"}
"""The session fixture each store kind that needs a server starts (its ``url``)."""


def server_url(request: pytest.FixtureRequest, kind: str) -> str | None:
    """The URL of the server a store ``kind`` runs on (started once per session), or None."""
    fixture = SERVER_FIXTURES.get(kind)
    return None if fixture is None else str(request.getfixturevalue(fixture).url)


def open_store(kind: str, tmp_path: Path, redis_url: str | None = None) -> QuotaStore:
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "state.db")
    if kind == "redis":
        from llamux._stores.redis import RedisStore

        assert redis_url is not None
        return RedisStore(redis_url, namespace=f"t-{uuid.uuid4().hex[:12]}", server_time=False)
    if kind == "redis-cluster":
        from llamux._stores.redis_cluster import RedisClusterStore

        assert redis_url is not None
        namespace = f"t-{uuid.uuid4().hex[:12]}"
        return RedisClusterStore(redis_url, namespace=namespace, server_time=False)
    raise AssertionError(kind)


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QuotaStore]:
    opened = open_store(request.param, tmp_path, server_url(request, request.param))
    yield opened
    if request.param in SERVER_FIXTURES:
        opened.reset()  # each test has its own namespace; leave nothing behind
    opened.close()


def redis_server_binary() -> str:
    """``redis-server``, installed with apt-get when missing and allowed; never a skip."""
    found = shutil.which("redis-server")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        _apt_install_redis()
        found = shutil.which("redis-server")
    if found is None:
        pytest.fail(
            "the Redis tests need redis-server on PATH: install it (Debian: apt-get install "
            "redis-server), or run the tests as root so they install it"
        )
    return found


def _apt_install_redis() -> None:
    install = ["apt-get", "install", "-y", "-qq", "redis-server"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    policy = Path("/usr/sbin/policy-rc.d")  # answering 101: the package starts no service
    added = not policy.exists()
    if added:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            subprocess.run(install, env=env, capture_output=True)
    finally:
        if added:
            policy.unlink()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cluster_port() -> int:
    """A free port at most 55535 whose cluster bus port (10000 higher) is free too."""
    for _ in range(200):
        port = free_port()
        if port > 55535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


class RedisServer:
    """A private redis-server on 127.0.0.1 whose data (append-only file) lives in ``dir``."""

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        *,
        persist: bool = True,
        cluster: bool = False,
        node_timeout: int = 1000,
        appendfsync: str = "everysec",
    ) -> None:
        self.dir = directory
        self.appendfsync = appendfsync
        """When the append-only file is synced: ``everysec`` (Redis' default) or ``always``
        (nothing acknowledged is lost, even to a kill -9)."""
        self.port = port or (cluster_port() if cluster else free_port())
        self._chosen = port is None
        """Whether the port was picked here (another process may take it before the server
        binds it: then a new one is picked)."""
        self.persist = persist
        self.cluster = cluster
        """A Redis Cluster node (its nodes.conf in ``dir``)."""
        self.node_timeout = node_timeout
        """Milliseconds after which a cluster node that does not answer is failing."""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        for attempt in range(5):
            fresh = not (self.dir / "nodes.conf").exists()
            try:
                return self._start()
            except RuntimeError as exc:
                self.stop()
                if not self._chosen or "Address already in use" not in str(exc) or attempt == 4:
                    raise
                if fresh:  # the failed start's cluster file names the lost port
                    (self.dir / "nodes.conf").unlink(missing_ok=True)
                self.port = cluster_port() if self.cluster else free_port()
        raise AssertionError("unreachable")

    def _start(self) -> RedisServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        command = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1"]
        appendonly = "yes" if self.persist else "no"
        command += ["--dir", str(self.dir), "--save", "", "--appendonly", appendonly]
        command += ["--appendfsync", self.appendfsync]
        if self.cluster:  # a replica syncs at once (no wait for others to join)
            command += ["--cluster-enabled", "yes", "--repl-diskless-sync-delay", "0"]
            command += ["--cluster-node-timeout", str(self.node_timeout)]
        log = (self.dir / "redis.log").open("ab")
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    # a cluster node refuses keys until it serves slots: it is pinged
                    client.ping() if self.cluster else client.get("llamux-test-ready")
                    return
                except redis.RedisError:
                    assert self.proc is not None
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        text = (self.dir / "redis.log").read_text(errors="replace")
                        raise RuntimeError(f"redis-server did not start:\n{text}") from None
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the whole session; tests keep to their own namespaces."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


class RedisClusterServers:
    """A Redis Cluster of ``masters`` redis-servers on 127.0.0.1 (no replicas), each with
    its data and cluster file in a directory of ``dir``; the slots split evenly."""

    def __init__(
        self,
        directory: Path,
        masters: int = 3,
        *,
        persist: bool = True,
        node_timeout: int = 1000,
        appendfsync: str = "everysec",
    ) -> None:
        self.dir = directory
        self.nodes = [
            RedisServer(
                directory / f"node{i}",
                persist=persist,
                cluster=True,
                node_timeout=node_timeout,
                appendfsync=appendfsync,
            )
            for i in range(masters)
        ]

    @property
    def url(self) -> str:
        """Two of its nodes: either is enough to find the rest."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:2])

    def start(self) -> RedisClusterServers:
        """Start the servers, give each its slots and introduce them (CLUSTER ADDSLOTSRANGE,
        MEET: a second, where redis-cli --cluster create waits longer), then wait until
        every node serves the whole map."""

        try:
            self._start()
        except BaseException:  # none left running behind a failed start
            self.stop()
            raise
        return self

    def _start(self) -> None:
        import redis

        for node in self.nodes:
            node.start()
        share = 16384 // len(self.nodes)
        clients = [redis.Redis(port=n.port, decode_responses=True) for n in self.nodes]
        try:
            for i, client in enumerate(clients):
                last = 16383 if i == len(clients) - 1 else (i + 1) * share - 1
                client.execute_command("CLUSTER ADDSLOTSRANGE", i * share, last)
                if i:
                    client.execute_command("CLUSTER MEET", "127.0.0.1", self.nodes[0].port)
        finally:
            for client in clients:
                client.close()
        self.wait_ok()

    def wait_ok(self, seconds: float = 20) -> None:
        """Until every node knows every other and says the cluster is ok (a node restarted
        with its nodes.conf rejoins by itself)."""
        import redis

        clients = [redis.Redis(port=n.port, decode_responses=True) for n in self.nodes]
        deadline = time.monotonic() + seconds
        try:
            while not all(_cluster_ok(client, len(clients)) for client in clients):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the Redis Cluster in {self.dir} is not ok")
                time.sleep(0.05)
        finally:
            for client in clients:
                client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _cluster_ok(client: Any, masters: int) -> bool:
    info = client.cluster("info")
    return bool(info["cluster_state"] == "ok" and int(info["cluster_known_nodes"]) == masters)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """One 3-master Redis Cluster for the whole session; tests keep to their namespaces.
    Nothing fails on it: a node is missed only after 5 s (a busy machine never flaps it)."""
    directory = tmp_path_factory.mktemp("redis-cluster")
    cluster = RedisClusterServers(directory, node_timeout=5000).start()
    yield cluster
    cluster.stop()


SEED_TABLE = """\
| provider | model                   | rpm | tpm   | rph   | tph     | rpd   | tpd     |
| -------- | ----------------------- | --- | ----- | ----- | ------- | ----- | ------- |
| cerebras | llama3.3-70b            | 30  | 60000 | 900   | 1000000 | 14400 | 1000000 |
| groq     | llama-3.3-70b-versatile | 30  | 6000  | 14400 |         | 14400 |         |
"""

KEY = "sk-SENTINEL-do-not-leak-0123456789"


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> str:
    """Every provider key variable the tests use, set to one sentinel value."""
    for var in ("CEREBRAS_API_KEY", "GROQ_API_KEY", "FAKE_API_KEY", "OTHER_API_KEY"):
        monkeypatch.setenv(var, KEY)
    return KEY


@pytest.fixture
def seed_config(tmp_path: Path, keys: str) -> str:
    """The path of a file holding ``SEED_TABLE`` (its providers' key variables set)."""
    path = tmp_path / "endpoints.md"
    path.write_text(SEED_TABLE)
    return str(path)


@pytest.fixture
def seed(seed_config: str) -> Router:
    """A Router over ``SEED_TABLE``, in memory, on a ``FakeClock``."""
    return Router.from_csv(seed_config, store="memory://", clock=FakeClock())


@pytest.fixture
def fake_endpoints() -> list[FakeEndpoint]:
    """What the ``fake`` provider serves; a test module overrides this fixture to change it."""
    return [FakeEndpoint("a"), FakeEndpoint("b")]


@pytest.fixture
def fake(fake_endpoints: list[FakeEndpoint]) -> Iterator[FakeProvider]:
    """A fake provider serving ``fake_endpoints`` for the length of one test."""
    with FakeProvider(fake_endpoints) as provider:
        yield provider


def fake_table(fake: object, rows: list[tuple[str, str]]) -> str:
    """A table of endpoints served by the fake provider: (name, limits cells) per row."""
    lines = [
        "| name | provider | model | base_url | rpm | tpm | rpd |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, limits in rows:
        base = fake.base_url(name)  # type: ignore[attr-defined]
        lines.append(f"| {name} | fake | m-{name} | {base} | {limits} |")
    return "\n".join(lines) + "\n"


def fake_router(fake: object, tmp_path: Path, rows: list[tuple[str, str]], **kw: object) -> Router:
    """A Router over endpoints served by the fake provider (``fake_table``), in memory."""
    path = tmp_path / "endpoints.md"
    path.write_text(fake_table(fake, rows))
    kw.setdefault("store", "memory://")
    return Router.from_csv(path, **kw)  # type: ignore[arg-type]


WORKER = Path(__file__).with_name("route_worker.py")


def run_workers(
    config: Path,
    store_url: str,
    processes: int,
    threads: int,
    requests: int,
    wait: float | None = None,
    start: float | None = None,
) -> Counter[str]:
    """Run ``route_worker.py`` in real processes sharing ``store_url``; who served what.
    With ``wait``, each request waits that long for capacity; with ``start`` (epoch
    seconds), every thread begins then."""
    env = {**os.environ, "LLAMUX_STORE": store_url, "FAKE_API_KEY": KEY}
    extra = [] if wait is None else [str(wait)]
    extra += [] if start is None else [repr(start)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(config), str(threads), str(requests), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(processes)
    ]
    total: Counter[str] = Counter()
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            assert KEY not in out + err
            total.update(json.loads(out))
    finally:
        for proc in procs:  # a failed worker must not leave the others running
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    return total


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``llamux argv``; (exit code, stdout, stderr). No output may hold the key."""
    from llamux.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    assert KEY not in out and KEY not in err
    return code, out, err


def status_of(router: Router, endpoint: str) -> EndpointStatus:
    """One endpoint's row of ``router.status()``."""
    return next(row for row in router.status() if row.endpoint.id == endpoint)


def used(router: Router, index: int = 0) -> dict[str, int]:
    """What each rule shown in row ``index`` of ``router.status()`` has used."""
    return {u.rule.name: u.used for u in router.status()[index].usage}


def store_used(store: QuotaStore, scope: Scope, now: float) -> dict[str, int]:
    """What each of ``scope``'s rules has used in ``store`` at ``now``."""
    return {u.rule.name: u.used for u in store.usage([scope], now)}


def used_of(router: Router, endpoint: str) -> dict[str, int]:
    """What each of an endpoint's own rules has used (its pool's rules left out)."""
    row = status_of(router, endpoint)
    return {u.rule.name: u.used for u in row.usage if u.scope == row.quota}


def cooling_of(router: Router, endpoint: str) -> Cooldown:
    """The cool-down an endpoint is in (fails if none)."""
    cooldown = status_of(router, endpoint).cooldown
    assert cooldown is not None, f"{endpoint} is not cooling down"
    return cooldown


LA = "America/Los_Angeles"


def local(tz: str, y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> float:
    """The epoch time of a wall-clock time in ``tz`` (the earlier one if ambiguous)."""
    return datetime(y, mo, d, h, mi, s, tzinfo=ZoneInfo(tz)).timestamp()


def la(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> float:
    """The epoch time of a wall-clock time in Los Angeles."""
    return local(LA, y, mo, d, h, mi, s)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> float:
    return local("UTC", y, mo, d, h, mi, s)


def midnight_after(now: float, tz: str = LA) -> float:
    """The epoch time of the local midnight in ``tz`` that ends the day holding ``now``
    (calendar arithmetic: right across month ends, year ends and DST changes)."""
    zone = ZoneInfo(tz)
    tomorrow = datetime.fromtimestamp(now, zone).date() + timedelta(days=1)
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=zone).timestamp()


@pytest.fixture
def patient(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SQLite store's flusher waits an hour: only the store's own steps (a reservation,
    a read of usage, close, exit) write the settles it holds and give back what it reserved
    ahead (``sqlite_later``, ``sqlite_ahead``)."""
    from llamux._stores import sqlite_later

    monkeypatch.setattr(sqlite_later, "HOLD_SECONDS", 3600.0)
