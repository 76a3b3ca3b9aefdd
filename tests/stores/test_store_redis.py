"""What only the Redis store promises: one clock for all machines, cluster-ready keys that
expire, clear errors, and usage that survives a server restart. (The shared contract runs
against Redis in test_store_contract.py.)"""

from __future__ import annotations

import math
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from llamux import NoEndpointAvailable, Router, StoreError
from llamux._policy.performance import Sample
from llamux._policy.quota import SETTLE_DEADLINE, Cost, Refusal, Reservation
from llamux._policy.rules import Scope, rules_from_limits
from llamux._policy.window import LATENCY_MARGIN
from llamux._stores import store_from_url
from llamux._stores.memory import MemoryStore
from llamux._stores.redis import RedisStore
from llamux._stores.redis_losses import WRITES_KEPT
from llamux.testing import FakeEndpoint, FakeProvider

from conftest import HI, RedisServer, fake_table, free_port, store_used, used_of

T0 = 1_767_225_600.0
EP = Scope("openrouter:x:free", rules_from_limits([("rpm", 20), ("tpd", 10**6)], {}))
POOL = Scope("pool:openrouter-free", rules_from_limits([("rpm", 50)], {}))


@pytest.fixture
def namespace(redis_server: RedisServer) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:12]}"
    yield name
    cleaner = RedisStore(redis_server.url, namespace=name, server_time=False)
    cleaner.reset()
    cleaner.close()


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    conn = redis.Redis(port=redis_server.port, decode_responses=True)
    yield conn
    conn.close()


def test_server_clock_makes_skewed_machines_agree(
    redis_server: RedisServer, namespace: str
) -> None:
    ep = Scope("ep", rules_from_limits([("rpm", 2)], {}))
    a = RedisStore(redis_server.url, namespace=namespace)
    b = RedisStore(redis_server.url, namespace=namespace)
    b._clock.wall = lambda: time.time() + 3600  # machine b's clock is an hour fast
    b._clock.measured_at = -math.inf  # its next call measures the offset again
    assert isinstance(a.reserve("ep", [ep], Cost(1), time.time()), Reservation)
    assert isinstance(b.reserve("ep", [ep], Cost(1), b._clock.wall()), Reservation)
    assert abs(b._clock.offset + 3600) < 1
    # both count the same minute; each is told when to retry in its own clock
    for store in (a, b):
        refusal = store.reserve("ep", [ep], Cost(1), store._clock.wall())
        assert isinstance(refusal, Refusal) and refusal.used == 2
        assert refusal.retry_at is not None
        assert 59 < refusal.retry_at - store._clock.wall() <= 62
        (row,) = store.usage([ep], store._clock.wall())
        assert row.used == 2 and row.next_free_at is not None
        assert 58 < row.next_free_at - store._clock.wall() <= 62
    # a cool-down set by b in its clock ends at the same moment in a's
    b.cool_down("ep", b._clock.wall() + 30, "429", "cooldown", b._clock.wall())
    until = a.cooldowns(time.time())["ep"].until
    assert 28 < until - time.time() <= 30.5
    a.close()
    b.close()


def test_caller_now_is_ignored_with_server_time(redis_server: RedisServer, namespace: str) -> None:
    ep = Scope("ep", rules_from_limits([("rpm", 1)], {}))
    store = RedisStore(redis_server.url, namespace=namespace)
    assert isinstance(store.reserve("ep", [ep], Cost(1), T0), Reservation)
    # an hour later by the caller's clock, but not by the server's: still refused
    refusal = store.reserve("ep", [ep], Cost(1), T0 + 3600)
    assert isinstance(refusal, Refusal) and refusal.retry_at is not None
    assert T0 + 3600 + 59 < refusal.retry_at <= T0 + 3600 + 62
    store.close()


def test_keys_share_the_pool_slot_and_expire(
    redis_server: RedisServer, namespace: str, client: redis.Redis
) -> None:
    store = RedisStore(redis_server.url, namespace=namespace, server_time=False)
    now = time.time()
    r = store.reserve(EP.key, [EP, POOL], Cost(10), now)
    assert isinstance(r, Reservation)
    store.cool_down(EP.key, now + 30, "429", "cooldown", now)
    store.record(EP.key, Sample(latency=1.0))
    store.turn("rr")
    tag = "{pool:openrouter-free}"
    rid = r.id.partition("@")[0]
    assert r.id == f"{rid}@pool:openrouter-free"
    quota_keys = {
        f"{namespace}:{tag}:b:minute:openrouter:x:free",
        f"{namespace}:{tag}:b:day:openrouter:x:free",
        f"{namespace}:{tag}:b:minute:pool:openrouter-free",
        f"{namespace}:{tag}:c:openrouter:x:free",
        f"{namespace}:{tag}:r:{rid}",
        f"{namespace}:{tag}:w",
    }
    others = {f"{namespace}:{{openrouter:x:free}}:p", f"{namespace}:{{rr}}:n"}
    assert set(client.keys(f"{namespace}:*")) == quota_keys | others | {f"{namespace}:scopes"}
    assert len({key_slot(k.encode()) for k in quota_keys}) == 1
    ttl = {k: client.pttl(k) / 1000 for k in quota_keys | others}
    # the charge lands in the bucket of now + LATENCY_MARGIN, which may be the next second
    assert 60 < ttl[f"{namespace}:{tag}:b:minute:openrouter:x:free"] <= 61 + 60 + LATENCY_MARGIN
    # a calendar day may last 25 hours (DST ends): the day hash outlives that
    assert 86400 + 3600 < ttl[f"{namespace}:{tag}:b:day:openrouter:x:free"] <= 90000 + 900 + 60
    assert 29 < ttl[f"{namespace}:{tag}:c:openrouter:x:free"] <= 31
    assert SETTLE_DEADLINE - 5 < ttl[f"{namespace}:{tag}:r:{rid}"] <= SETTLE_DEADLINE
    assert all(t > 86400 for t in (ttl[k] for k in others))
    assert 31 * 86400 < ttl[f"{namespace}:{tag}:w"] <= WRITES_KEPT  # outlives every window
    assert store.settle(r.id, 5, now)
    assert not client.exists(f"{namespace}:{tag}:r:{rid}")
    store.close()


def test_a_scope_named_alone_is_found_in_its_pool_slot(
    redis_server: RedisServer, namespace: str
) -> None:
    a = RedisStore(redis_server.url, namespace=namespace, server_time=False)
    b = RedisStore(redis_server.url, namespace=namespace, server_time=False)  # another machine
    r = a.reserve(EP.key, [EP, POOL], Cost(10), T0)
    assert isinstance(r, Reservation)
    b.absorb(EP.key, "minute", 4, 0, T0)
    b.cool_down(EP.key, T0 + 30, "429", "cooldown", T0)
    refusal = a.reserve(EP.key, [EP, POOL], Cost(10), T0 + 1)
    assert isinstance(refusal, Refusal) and refusal.retry_at == T0 + 30
    assert set(a.cooldowns(T0 + 1)) == {EP.key}
    assert store_used(b, EP, T0 + 1) == {"rpm": 5, "tpd": 10}
    b.reset(EP.key)
    assert not a.settle(r.id, 5, T0 + 2)  # its reservations went with it, as in memory
    assert a.usage([EP, POOL], T0 + 2)[0].used == 0 and a.usage([POOL], T0 + 2)[0].used == 1
    assert a.cooldowns(T0 + 2) == {}
    a.close()
    b.close()


def test_state_stays_bounded_over_a_day_and_a_half(
    redis_server: RedisServer, namespace: str, client: redis.Redis
) -> None:
    ep = Scope("ep", rules_from_limits([("rpm", 10**6), ("tph", 10**9), ("rpd", 10**6)], {}))
    cal = Scope("cal", rules_from_limits([("rpd", 10**6)], {"rpd": "America/New_York"}))
    store = RedisStore(redis_server.url, namespace=namespace, server_time=False)
    model = MemoryStore()
    now = T0
    for _ in range(2000):  # 2000 requests 61 s apart: 34 simulated hours
        for scope in (ep, cal):
            for s in (store, model):
                r = s.reserve(scope.key, [scope], Cost(100), now)
                assert isinstance(r, Reservation)
                assert s.settle(r.id, 50, now)
        now += 61
    keys = client.keys(f"{namespace}:*")
    assert len(keys) == 7  # 3 windows of ep, the day of cal, the scope index, 2 write counts
    for key in keys:
        if ":b:" in key:
            # requests and tokens of at most 102 buckets: a calendar day may last 25 hours
            assert client.hlen(key) <= 2 * 102
    for scope in (ep, cal):
        assert store.usage([scope], now) == model.usage([scope], now)
    store.close()


def test_unreachable_redis_is_a_store_error_with_the_password_masked() -> None:
    url = f"redis://user:s3cret@127.0.0.1:{free_port()}/0"
    start = time.monotonic()
    with pytest.raises(StoreError) as caught:
        store_from_url(url)
    message = str(caught.value)
    assert "s3cret" not in message and "user:***@127.0.0.1" in message
    assert "unreachable" in message and "LLAMUX_STORE" in message
    assert time.monotonic() - start < 5


def test_bad_credentials_and_namespace_are_store_errors(redis_server: RedisServer) -> None:
    with pytest.raises(StoreError, match=r"refused the credentials.*fix the user") as caught:
        RedisStore(f"redis://bob:hunter2@127.0.0.1:{redis_server.port}/0")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(StoreError, match="brace"):
        RedisStore(redis_server.url, namespace="a{b}")


def test_store_from_url_opens_redis_with_server_time_and_a_namespace(
    redis_server: RedisServer,
) -> None:
    store = store_from_url(redis_server.url + "?namespace=team-a")
    assert isinstance(store, RedisStore)
    assert store.server_time and store.namespace == "team-a"
    assert repr(store) == f"RedisStore({redis_server.url!r}, namespace='team-a')"
    store.close()


def test_scripts_are_reloaded_after_a_flush(
    redis_server: RedisServer, namespace: str, client: redis.Redis
) -> None:
    ep = Scope("ep", rules_from_limits([("rpm", 5), ("tpm", 1000)], {}))
    store = RedisStore(redis_server.url, namespace=namespace, server_time=False)
    r = store.reserve("ep", [ep], Cost(100), T0)
    assert isinstance(r, Reservation)
    client.script_flush()  # as after a restart: NOSCRIPT, then loaded again, once
    assert store.settle(r.id, 40, T0 + 1)
    assert store_used(store, ep, T0 + 1) == {"rpm": 1, "tpm": 40}
    store.close()


def three_served(fake: FakeProvider, tmp_path: Path, server: RedisServer) -> Router:
    """A router on ``server`` over the fake's rpm=5 endpoint 'pref', 3 requests served."""
    config = tmp_path / "endpoints.md"
    config.write_text(fake_table(fake, [("pref", "5 | |")]))
    router = Router.from_config(config, store=server.url)
    for _ in range(3):
        router.completion(HI, max_tokens=8)
    return router


def test_stopped_redis_fails_loudly_and_a_restart_resumes_with_the_usage(
    tmp_path: Path, keys: str
) -> None:
    server = RedisServer(tmp_path / "redis").start()  # its own server: this one restarts
    try:
        with FakeProvider([FakeEndpoint("pref", rpm=5)]) as fake:
            router = three_served(fake, tmp_path, server)
            server.stop()
            with pytest.raises(StoreError, match=f"{server.url} is unreachable"):
                router.completion(HI, max_tokens=8)
            server.start()  # same port and directory: the append-only file is read back
            for _ in range(2):
                router.completion(HI, max_tokens=8)
            with pytest.raises(NoEndpointAvailable):
                router.completion(HI, max_tokens=8)
            assert used_of(router, "pref") == {"rpm": 5}  # 3 before, 2 after
            assert fake.stats("pref").served == 5 and fake.stats("pref").refused == 0
            router.close()
    finally:
        server.stop()


def test_importing_llamux_does_not_import_redis() -> None:
    code = "import sys, llamux, llamux._stores; assert 'redis' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_redis_that_lost_its_data_is_warned_about(
    tmp_path: Path, keys: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(tmp_path / "redis", persist=False).start()
    try:
        with FakeProvider([FakeEndpoint("pref", rpm=5)]) as fake:
            router = three_served(fake, tmp_path, server)
            assert not [r for r in caplog.records if "lost its data" in r.getMessage()]
            server.stop()
            server.start()  # no persistence: the minute's 3 requests are forgotten
            router.completion(HI, max_tokens=8)
            (warning,) = [r for r in caplog.records if "lost its data" in r.getMessage()]
            assert "appendonly" in warning.getMessage()
            # counting goes on from the provider's headers: it says 4 of 5 are used
            assert used_of(router, "pref") == {"rpm": 4}
            router.reset()
            router.completion(HI, max_tokens=8)  # a reset is no loss: no second warning
            assert len([r for r in caplog.records if "lost its data" in r.getMessage()]) == 1
            router.close()
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("redis://127.0.0.1:6379/0?foo=1", "unknown parameter 'foo'; the accepted ones are"),
        ("redis://127.0.0.1:6379/0?foo", "unknown parameter 'foo'"),
        ("redis://127.0.0.1:6379/x", "names database 'x'; the path is a database number"),
        ("redis://127.0.0.1:port/0", "is malformed (Port could not be cast"),
        ("redis://127.0.0.1:99999/0", "is malformed (Port out of range"),
        ("redis://u:s3cret@[::1/0", "is malformed (Invalid IPv6 URL)"),
        ("redis://127.0.0.1:6379/0?ssl_cert_reqs=none", "only a TLS URL takes: write rediss://"),
        ("rediss://127.0.0.1:6379/0?ssl_cert_reqs=bogus", "use one of none, optional, required"),
        ("unix:///tmp/r.sock?socket_keepalive=1", "unknown parameter 'socket_keepalive'"),
        ("redis://u:s3cret@127.0.0.1:6379/0?password=s3cret&bad=1", "unknown parameter 'bad'"),
    ],
)
def test_a_bad_redis_url_is_one_store_error_before_connecting(url: str, said: str) -> None:
    with pytest.raises(StoreError) as caught:
        store_from_url(url)  # no server needed: the URL is checked first
    message = str(caught.value)
    assert said in message and "s3cret" not in message and "\n" not in message
    if "unknown parameter" in said:
        for name in ("namespace", "db", "socket_timeout", "password"):
            assert name in message


def test_the_accepted_url_parameters_open_a_store(redis_server: RedisServer) -> None:
    query = "namespace=n1&socket_timeout=5&health_check_interval=10&client_name=llamux-test"
    store = store_from_url(f"{redis_server.url}?{query}")
    assert isinstance(store, RedisStore) and store.namespace == "n1"
    store.close()
