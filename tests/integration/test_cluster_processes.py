"""Real processes, each with its own Router, sharing quotas on a 3-master Redis Cluster
against the strict fake provider: exact across the cluster, and when a master's process
is killed mid-run, clear errors and nothing admitted that was not counted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from subprocess import PIPE

import pytest
import redis

from llamux import Router
from llamux.testing import FakeEndpoint, FakeProvider

from conftest import KEY, RedisClusterServers, fake_table, run_workers, used_of

CLUSTER_WORKER = Path(__file__).with_name("cluster_worker.py")


def unsettled(url: str, namespace: str) -> int:
    """Reservations still held anywhere in the cluster (after a clean run: none)."""
    client = redis.RedisCluster.from_url(url.replace("redis+cluster://", "redis://").split(",")[0])
    try:
        return sum(1 for _ in client.scan_iter(match=f"{namespace}:*:r:*", count=1000))
    finally:
        client.close()


@pytest.mark.slow
def test_four_processes_share_quotas_exactly_across_the_cluster(
    tmp_path: Path, redis_cluster: RedisClusterServers
) -> None:
    namespace = f"mp-{uuid.uuid4().hex[:12]}"
    url = f"{redis_cluster.url}?namespace={namespace}"
    endpoints = [FakeEndpoint("pref", rpm=20, tpm=5000), FakeEndpoint("second", rpm=30)]
    endpoints += [FakeEndpoint("pooled-a"), FakeEndpoint("pooled-b"), FakeEndpoint("third")]
    with FakeProvider(endpoints) as fake:
        rows = [("pref", "20 | 5000 |"), ("second", "30 | |")]
        rows += [("pooled-a", "| |"), ("pooled-b", "| |"), ("third", "| |")]
        config = tmp_path / "endpoints.toml"
        config.write_text(toml_of(fake_table(fake, rows)))
        got = run_workers(config, url, processes=4, threads=4, requests=6)
        # 96 requests: pref's 20, second's 30, the pool's 25 (shared by a and b), third the rest
        assert got["pref"] == 20 and got["second"] == 30
        assert got["pooled-a"] + got["pooled-b"] == 25 and got["third"] == 21
        names = ["pref", "second", "pooled-a", "pooled-b", "third"]
        assert [fake.stats(n).refused for n in names] == [0] * 5
        with Router.from_config(config, store=url) as router:
            for name in ("pref", "second"):
                assert used_of(router, name)["rpm"] == fake.stats(name).served
            assert used_of(router, "pref")["tpm"] == fake.stats("pref").total_tokens
            pool = next(p for p in router_status_pools(router) if p["name"] == "shared")
            assert pool["rules"][0]["used"] == 25
        assert unsettled(redis_cluster.url, namespace) == 0


def toml_of(table: str) -> str:
    """The TOML config of a fake table, with pooled-a and pooled-b in pool 'shared' (rpm 25)."""
    lines = [line for line in table.splitlines()[2:] if line.strip()]
    out = ["[pools.shared]\nrpm = 25\n"]
    for line in lines:
        name, provider, model, base_url, rpm, tpm, _ = (
            c.strip() for c in line.strip("|").split("|")
        )
        out.append(f'[[endpoints]]\nname = "{name}"\nprovider = "{provider}"\nmodel = "{model}"')
        out.append(f'base_url = "{base_url}"\napi_key_env = "FAKE_API_KEY"')
        out += [f"rpm = {rpm}"] if rpm else []
        out += [f"tpm = {tpm}"] if tpm else []
        out += ['pool = "shared"'] if name.startswith("pooled") else []
        out.append("")
    return "\n".join(out)


def router_status_pools(router: Router) -> list[dict[str, object]]:
    from llamux._status import status_data

    return list(status_data(router)["pools"])  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_master_killed_mid_run_gives_clear_errors_and_admits_nothing_uncounted(
    tmp_path: Path, keys: str
) -> None:
    # its own cluster (a node dies), writing every step to disk before answering it: so
    # "counted" below means "acknowledged", even for the killed node
    cluster = RedisClusterServers(tmp_path / "cluster", appendfsync="always").start()
    names = [f"e{i}" for i in range(6)]
    try:
        with FakeProvider([FakeEndpoint(n, rpm=12) for n in names]) as fake:
            config = tmp_path / "endpoints.md"
            config.write_text(fake_table(fake, [(n, "12 | |") for n in names]))
            env = {**os.environ, "LLAMUX_STORE": cluster.url, "FAKE_API_KEY": KEY}
            stop = tmp_path / "stop"
            command = [sys.executable, str(CLUSTER_WORKER), str(config), "2", str(stop)]
            procs = [
                subprocess.Popen(command, stdout=PIPE, stderr=PIPE, env=env, text=True)
                for _ in range(4)
            ]
            with Router.from_config(config, store=cluster.url) as router:
                quotas = {row.endpoint.id: row.quota for row in router.status()}
                client = router.store._client  # type: ignore[attr-defined]
                node_of = {
                    n: client.get_node_from_key(f"x:{{{q}}}").port for n, q in quotas.items()
                }
            victim = next(n for n in cluster.nodes if n.port == node_of["e0"])
            deadline = time.monotonic() + 60
            while sum(fake.stats(n).served for n in names) < 24:  # well under way
                assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
                time.sleep(0.02)
            assert victim.proc is not None
            victim.proc.send_signal(signal.SIGKILL)  # mid-run, no goodbye
            victim.proc.wait(timeout=10)
            time.sleep(2.0)  # past the cluster's node timeout (1 s): it says it is down
            stop.touch()
            counts: Counter[str] = Counter()
            errors: Counter[str] = Counter()
            for proc in procs:
                out, err = proc.communicate(timeout=60)
                assert proc.returncode == 0, err
                assert KEY not in out + err
                result = json.loads(out)
                counts.update(result["counts"])
                errors.update(result["errors"])
            # nothing over-admitted: the strict provider refused nothing, whatever the node
            assert all(fake.stats(n).refused == 0 for n in names)
            assert all(fake.stats(n).served <= 12 for n in names)
            assert counts["store error"] > 0 and errors
            for text in errors:  # what happened, where, and what to do; one line
                assert "\n" not in text and cluster.url in text
                assert "unreachable" in text or "CLUSTERDOWN" in text, text
            # nothing admitted uncounted: once the master is back (its append-only file
            # kept what it had), every request the provider served is counted
            victim.start()
            cluster.wait_ok()
            with Router.from_config(config, store=cluster.url) as router:
                for name in names:
                    assert fake.stats(name).served <= used_of(router, name)["rpm"] <= 12
            assert sum(fake.stats(n).served for n in names) > 12  # real work before the kill
    finally:
        cluster.stop()
