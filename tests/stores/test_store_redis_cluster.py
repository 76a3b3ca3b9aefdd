"""What the Redis store promises on a Redis Cluster: URLs checked before connecting, every
key of a step on one slot, reset and status over every master, clear errors for a
redis:// URL at a cluster node, and a warning when one node lost its data. (The contract
suite and the property tests run on the session's cluster too: kind ``redis-cluster``.)"""

from __future__ import annotations

import logging
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from llamux import Router, StoreError
from llamux._policy.quota import Cost, Reservation
from llamux._policy.rules import Scope, rules_from_limits
from llamux._status import status_data
from llamux._stores import store_from_url
from llamux._stores.redis_cluster import RedisClusterStore
from llamux.cli._screen import Screen
from llamux.cli._status_view import status_lines
from llamux.testing import FakeEndpoint, FakeProvider

from conftest import HI, RedisClusterServers, RedisServer, fake_table, store_used

T0 = 1_767_225_600.0
SCOPES = [Scope(f"ep{i}", rules_from_limits([("rpm", 5)], {})) for i in range(12)]
"""Twelve endpoints: their slots fall on every master of a 3-master cluster."""


@pytest.fixture
def cluster_store(redis_cluster: RedisClusterServers) -> Iterator[RedisClusterStore]:
    store = RedisClusterStore(
        redis_cluster.url, namespace=f"t-{uuid.uuid4().hex[:12]}", server_time=False
    )
    yield store
    store.reset()
    store.close()


def node_clients(cluster: RedisClusterServers) -> list[redis.Redis]:
    return [redis.Redis(port=node.port, decode_responses=True) for node in cluster.nodes]


def keys_by_node(cluster: RedisClusterServers, namespace: str) -> list[set[str]]:
    """The keys of ``namespace`` each master holds (asked one by one, not through the
    cluster client)."""
    found = []
    for client in node_clients(cluster):
        found.append(set(client.scan_iter(match=f"{namespace}:*", count=1000)))
        client.close()
    return found


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("redis+cluster://127.0.0.1:7000/1", "names database 1; a Redis Cluster has database 0"),
        ("redis+cluster://127.0.0.1:7000?db=2", "names database 2; a Redis Cluster has database"),
        ("redis+cluster://127.0.0.1:7000,,127.0.0.1:7001", "is malformed (a node is empty"),
        ("redis+cluster://127.0.0.1:70000", "is malformed (Port out of range"),
        ("redis+cluster://127.0.0.1:7000?foo=1", "unknown parameter 'foo'; the accepted ones"),
        ("redis+cluster://h:7000?ssl_ca_certs=/x", "only a TLS URL takes: write rediss://"),
        ("redis://127.0.0.1:7000/0?cluster=true", "is opened by its scheme, write redis+cluster"),
        ("redis+cluster://:s3cret@h:1,h:2?bad=1", "unknown parameter 'bad'"),
        ("redis-cluster://:s3cret@h:1", "unknown store URL scheme"),
    ],
)
def test_a_bad_cluster_url_is_one_store_error_before_connecting(url: str, said: str) -> None:
    with pytest.raises(StoreError) as caught:
        store_from_url(url)
    message = str(caught.value)
    assert said in message, message
    assert "s3cret" not in message and "\n" not in message
    if "unknown store URL scheme" in said:
        assert "redis+cluster://host:port" in message


def test_a_tls_cluster_url_takes_the_tls_parameters() -> None:
    from llamux._stores.redis_connect import check_url, cluster_nodes

    url = "rediss+cluster://u:p%40ss@h1:7000,[::1]:7001/0?ssl_cert_reqs=none&namespace=n"
    check_url(url)
    first, nodes = cluster_nodes(url)
    assert first == "rediss://u:p%40ss@h1:7000/0?ssl_cert_reqs=none&namespace=n"
    assert nodes == [("h1", 7000), ("::1", 7001)]


def test_redis_url_at_a_cluster_node_says_to_use_redis_cluster(
    redis_cluster: RedisClusterServers,
) -> None:
    port = redis_cluster.nodes[0].port
    for url in (f"redis://127.0.0.1:{port}/0", f"redis://:pw@127.0.0.1:{port}/1"):
        with pytest.raises(StoreError) as caught:
            store_from_url(url)
        message = str(caught.value)
        assert "it is a Redis Cluster node: open the cluster with redis+cluster://" in message
        assert ":pw@" not in message


def test_a_cluster_url_at_a_single_server_says_so(redis_server: Any) -> None:
    with pytest.raises(StoreError, match=r"is not a Redis Cluster .*open it with redis://"):
        store_from_url(f"redis+cluster://127.0.0.1:{redis_server.port}")


def test_any_node_finds_the_cluster(redis_cluster: RedisClusterServers) -> None:
    last = redis_cluster.nodes[-1].port
    store = store_from_url(f"redis+cluster://127.0.0.1:{last}?namespace=n-{uuid.uuid4().hex}")
    assert isinstance(store, RedisClusterStore) and store.server_time
    assert repr(store).startswith(f"RedisClusterStore('redis+cluster://127.0.0.1:{last}'")
    assert isinstance(store.reserve("ep", [SCOPES[0]], Cost(1), time.time()), Reservation)
    store.reset()
    store.close()


def test_each_step_keeps_to_one_slot_and_reset_clears_every_master(
    redis_cluster: RedisClusterServers, cluster_store: RedisClusterStore
) -> None:
    client = cluster_store._client
    slots: list[set[int]] = []
    evalsha = client.evalsha

    def watched(sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        slots.append({key_slot(k.encode()) for k in keys_and_args[:numkeys]})
        return evalsha(sha, numkeys, *keys_and_args)

    client.evalsha = watched
    pool = Scope("pool:shared", rules_from_limits([("rpm", 100)], {}))
    made = []
    for scope in SCOPES:
        r = cluster_store.reserve(scope.key, [scope], Cost(10), T0)
        assert isinstance(r, Reservation)
        made.append(r)
        cluster_store.cool_down(scope.key, T0 + 30, "429", "cooldown", T0)
    member = Scope("member", rules_from_limits([("rpm", 5)], {}))
    pooled = cluster_store.reserve("member", [member, pool], Cost(10), T0)
    assert isinstance(pooled, Reservation)
    for r in [*made[:6], pooled]:
        assert cluster_store.settle(r.id, 4, T0 + 1)
    assert slots and all(len(s) == 1 for s in slots)  # every script on one slot
    held = keys_by_node(redis_cluster, cluster_store.namespace)
    assert all(held), "the scopes should fall on every master"
    # status reads every master: cool-downs and the scopes that hold usage
    assert set(cluster_store.cooldowns(T0 + 1)) == {s.key for s in SCOPES}
    scopes = {s.key for s in SCOPES}
    assert cluster_store.counted_scopes(T0 - 60) == scopes | {member.key, pool.key}
    assert store_used(cluster_store, SCOPES[0], T0 + 1) == {"rpm": 1}
    cluster_store.reset("ep1")
    assert store_used(cluster_store, SCOPES[1], T0 + 1) == {"rpm": 0}
    assert not cluster_store.settle(made[7].id, 1, T0 + 1) or made[7].endpoint != "ep1"
    cluster_store.reset()
    left = set().union(*keys_by_node(redis_cluster, cluster_store.namespace))
    assert left and all(key.endswith("}:w") for key in left)  # the counts of writes stay
    assert cluster_store.cooldowns(T0 + 1) == {}


def test_a_settle_from_another_process_reads_the_keys_from_the_record(
    redis_cluster: RedisClusterServers, cluster_store: RedisClusterStore
) -> None:
    ep = Scope("ep", rules_from_limits([("rpm", 5), ("tpm", 1000)], {}), 2)
    r = cluster_store.reserve("ep", [ep], Cost(100), T0)
    assert isinstance(r, Reservation)
    other = RedisClusterStore(redis_cluster.url, namespace=cluster_store.namespace)
    other.server_time = False
    assert other.settle(r.id, 40, T0 + 1)  # not made there: its keys come from the record
    assert not other.settle(r.id, 40, T0 + 1)
    assert store_used(cluster_store, ep, T0 + 1) == {"rpm": 1, "tpm": 40}
    assert cluster_store.in_flight([ep], T0 + 1) == {"ep": 0}
    other.close()


def test_one_master_that_lost_its_data_is_warned_about_and_shown_in_status(
    tmp_path: Path, keys: str, caplog: pytest.LogCaptureFixture
) -> None:
    cluster = RedisClusterServers(tmp_path / "cluster", persist=False).start()
    try:
        with FakeProvider([FakeEndpoint(f"e{i}") for i in range(6)]) as fake:
            config = tmp_path / "endpoints.md"
            config.write_text(fake_table(fake, [(f"e{i}", "100 | |") for i in range(6)]))
            router = Router.from_config(config, store=cluster.url)
            for i in range(6):
                for _ in range(2):
                    router.completion(HI, model=f"e{i}", max_tokens=8)
            # the node holding e0's slot restarts without persistence: only its data is gone
            client = router.store._client  # type: ignore[attr-defined]
            tag = router.status()[0].quota
            lost = client.get_node_from_key(f"x:{{{tag}}}")
            node = next(n for n in cluster.nodes if n.port == lost.port)
            node.stop()
            node.start()
            cluster.wait_ok()
            caplog.set_level(logging.WARNING, logger="llamux")
            for i in range(6):
                router.completion(HI, model=f"e{i}", max_tokens=8)
            warned = [r.getMessage() for r in caplog.records if "lost its data" in r.getMessage()]
            assert warned and all("appendfsync everysec" in text for text in warned)
            assert any(repr(tag) in text for text in warned)
            assert len(warned) == sum(  # one per quota on that node, none elsewhere
                client.get_node_from_key(f"x:{{{row.quota}}}").port == lost.port
                for row in router.status()
            )
            # the note is in the store: a new process (llamux status) shows it too
            with Router.from_config(config, store=cluster.url) as other:
                shown = status_data(other)["warnings"]
                assert sum("lost its data" in line for line in shown) == len(warned)
                lines = status_lines(status_data(other), Screen(width=200, tty=False))
                assert any(line.startswith("warning: the Redis store") for line in lines)
            router.reset()
            assert router.store.losses() == []  # type: ignore[attr-defined]
            router.close()
    finally:
        cluster.stop()


def test_a_failover_to_a_replica_that_lagged_is_noticed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cluster = RedisClusterServers(tmp_path / "cluster").start()
    replica = RedisServer(tmp_path / "replica", cluster=True).start()
    store = RedisClusterStore(cluster.url, namespace="lag", server_time=False)
    try:
        ep = SCOPES[0]
        port = store._client.get_node_from_key(f"x:{{{ep.key}}}").port
        master = next(node for node in cluster.nodes if node.port == port)
        follow(replica, master, cluster)
        for _ in range(3):
            assert isinstance(store.reserve("ep0", [ep], Cost(1), T0), Reservation)
        with redis.Redis(port=master.port) as client:
            assert client.execute_command("WAIT", 1, 5000) == 1  # the replica has these three
        assert replica.proc is not None and master.proc is not None
        replica.proc.send_signal(signal.SIGSTOP)  # it lags: the next writes never reach it
        try:
            with redis.Redis(port=master.port) as client:
                client.client_kill_filter(_type="replica")  # (its link is cut, not buffered)
            for _ in range(2):
                assert isinstance(store.reserve("ep0", [ep], Cost(1), T0), Reservation)
            master.proc.kill()
            master.proc.wait(timeout=10)
            master.proc = None
        finally:
            replica.proc.send_signal(signal.SIGCONT)
        promoted(replica, cluster)
        caplog.set_level(logging.WARNING, logger="llamux")
        assert isinstance(store.reserve("ep0", [ep], Cost(1), T0), Reservation)
        (warning,) = [r.getMessage() for r in caplog.records if "lost its data" in r.getMessage()]
        assert "'ep0'" in warning and "went back from 5 to 4" in warning
        assert store_used(store, ep, T0) == {"rpm": 4}  # what the replica had, and this one
        assert len(store.losses()) == 1
    finally:
        store.close()
        replica.stop()
        cluster.stop()


def follow(replica: RedisServer, master: RedisServer, cluster: RedisClusterServers) -> None:
    """Make ``replica`` (a cluster node with no slots) a replica of ``master``, in sync and
    known as such to every master (who would not vote for its promotion otherwise)."""
    with redis.Redis(port=replica.port, decode_responses=True) as client:
        client.execute_command("CLUSTER MEET", "127.0.0.1", master.port)
        with redis.Redis(port=master.port, decode_responses=True) as leader:
            master_id = leader.execute_command("CLUSTER MYID")
        deadline = time.monotonic() + 20
        while True:
            try:
                client.execute_command("CLUSTER REPLICATE", master_id)
                break
            except redis.ResponseError:  # the master is not known yet
                assert time.monotonic() < deadline, "the replica never met its master"
                time.sleep(0.05)
        while client.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica never synced"
            time.sleep(0.05)
        mine = client.execute_command("CLUSTER MYID")
    for node in cluster.nodes:
        with redis.Redis(port=node.port, decode_responses=True) as other:
            while mine not in str(other.execute_command("CLUSTER REPLICAS", master_id)):
                assert time.monotonic() < deadline, "a master never heard of the replica"
                time.sleep(0.05)


def promoted(replica: RedisServer, cluster: RedisClusterServers) -> None:
    """Until ``replica`` is a master and every live node says the cluster is ok."""
    live = [n for n in cluster.nodes if n.proc is not None] + [replica]
    clients = [redis.Redis(port=n.port, decode_responses=True) for n in live]
    deadline = time.monotonic() + 30
    try:
        while not (
            clients[-1].info("replication")["role"] == "master"
            and all(c.cluster("info")["cluster_state"] == "ok" for c in clients)
        ):
            assert time.monotonic() < deadline, "the replica was never promoted"
            time.sleep(0.05)
    finally:
        for c in clients:
            c.close()


def test_a_decision_passes_over_an_endpoint_whose_node_failed(tmp_path: Path) -> None:
    """A master down fails only the endpoints whose quotas live on it: a decision passes over
    them (never sending to what it cannot count) and reserves on the next; only when every
    candidate's node failed does it raise the StoreError."""
    from llamux._policy.passing import Candidate

    cluster = RedisClusterServers(tmp_path / "cluster", persist=False).start()
    store = RedisClusterStore(cluster.url, namespace="down", server_time=False)
    try:
        client = store._client
        ports = [client.get_node_from_key(f"x:{{{scope.key}}}").port for scope in SCOPES]
        down = ports[0]
        alive = next(i for i, port in enumerate(ports) if port != down)
        for scope in (SCOPES[0], SCOPES[alive]):  # both known to the store (registered)
            assert isinstance(store.reserve(scope.key, [scope], Cost(1), T0), Reservation)
        next(node for node in cluster.nodes if node.port == down).stop()
        candidates = [Candidate(s.key, [s], Cost(1)) for s in (SCOPES[0], SCOPES[alive])]
        pick = store.reserve_first(candidates, T0)
        assert pick.reservation is not None and pick.reservation.endpoint == SCOPES[alive].key
        assert len(pick.refusals) == 1 and "store node failed" in pick.refusals[0].reason
        assert pick.refusals[0].retry_at == T0 + 1.0
        with pytest.raises(StoreError):
            store.reserve_first(candidates[:1], T0)
    finally:
        store.close()
        cluster.stop()
