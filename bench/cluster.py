"""Decisions per second on a 3-master Redis Cluster beside one Redis server, from 1 and from
4 processes. ``python bench/cluster.py [--rounds N] [--seconds S]``.

Starts its own servers on 127.0.0.1 (one redis-server; three more with cluster mode on, the
slots split evenly), in a temporary directory, and stops them at the end. Each process runs
``Router.query`` on 3 endpoints x 6 rules (their quotas fall on different masters of the
cluster) for S seconds; the four variants (single or cluster, 1 or 4 processes) run in
interleaved rounds, in a shuffled order each round, so a slow patch of a shared machine falls
on them alike. Each row: the median decisions per second over the rounds [min..max] and,
round by round, the cluster's rate over the single server's with the same processes (median
[min..max]): the ratio is the claim, the absolute figure the record.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llamux import Router
from llamux._config.load import parse_table

from common import machine

KEY_VAR = "BENCH_API_KEY"
BIG = "| 10000000 | 10000000000 | 10000000 | 10000000000 | 10000000 | 10000000000 |"


def table(n: int = 3) -> str:
    columns = ["name", "provider", "model", "base_url", "api_key_env", "rpm", "tpm", "rph"]
    columns += ["tph", "rpd", "tpd"]
    head = f"| {' | '.join(columns)} |\n|{'---|' * len(columns)}\n"
    rows = [f"| e{i} | bench | m{i} | http://127.0.0.1:9/v1 | {KEY_VAR} {BIG}" for i in range(n)]
    return head + "\n".join(rows) + "\n"


def _port(cluster: bool) -> int:
    """A free port (for a cluster node: at most 55535, its bus port 10000 higher free too)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if not cluster:
            return port
        if port <= 55535:
            with socket.socket() as bus:
                try:
                    bus.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


def _server(directory: Path, cluster: bool) -> tuple[subprocess.Popen[bytes], int]:
    directory.mkdir(parents=True)
    port = _port(cluster)
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)]
    command += ["--save", "", "--appendonly", "no"]
    if cluster:
        command += ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"redis-server did not start on port {port}")


@contextmanager
def servers() -> Iterator[dict[str, str]]:
    """The URLs of one redis-server ("single") and of a 3-master cluster ("cluster")."""
    import redis

    tmp = Path(tempfile.mkdtemp())
    procs = []
    try:
        single, single_port = _server(tmp / "single", cluster=False)
        procs.append(single)
        ports = []
        for i in range(3):
            proc, port = _server(tmp / f"node{i}", cluster=True)
            procs.append(proc)
            ports.append(port)
        share = 16384 // 3
        for i, port in enumerate(ports):
            client = redis.Redis(port=port)
            last = 16383 if i == 2 else (i + 1) * share - 1
            client.execute_command("CLUSTER ADDSLOTSRANGE", i * share, last)
            if i:
                client.execute_command("CLUSTER MEET", "127.0.0.1", ports[0])
            client.close()
        deadline = time.monotonic() + 30
        while not all(_ok(port) for port in ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not form")
            time.sleep(0.05)
        yield {
            "single": f"redis://127.0.0.1:{single_port}/0",
            "cluster": "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports),
        }
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def _ok(port: int) -> bool:
    import redis

    client = redis.Redis(port=port, decode_responses=True)
    try:
        info = client.cluster("info")
        return bool(info["cluster_state"] == "ok" and int(info["cluster_known_nodes"]) == 3)
    finally:
        client.close()


def _decide_for(job: tuple[str, float, float]) -> int:
    """In a worker process: ``query`` decisions from ``start`` for ``seconds``; how many."""
    url, start, seconds = job
    os.environ[KEY_VAR] = "bench-key"
    router = Router(parse_table(table()), store=url)
    for _ in range(20):  # warm up: connections, scripts, caches
        router.query([{"role": "user", "content": "hello"}], max_tokens=10)
    time.sleep(max(0.0, start - time.time()))
    count, end = 0, start + seconds
    while time.time() < end:
        router.query([{"role": "user", "content": "hello"}], max_tokens=10)
        count += 1
    router.close()
    return count


def redis_version() -> str:
    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    found = version.stdout.split()[2] if version.stdout else "?"
    return found.removeprefix("v=")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("bench/cluster.py needs redis-server on PATH")
    print(f"{machine()}, redis-server {redis_version()}")
    variants = [(kind, n) for kind in ("single", "cluster") for n in (1, 4)]
    rates: dict[tuple[str, int], list[float]] = {v: [] for v in variants}
    spawn = multiprocessing.get_context("spawn")
    with servers() as urls, spawn.Pool(1) as one, spawn.Pool(4) as four:
        pools = {1: one, 4: four}
        rng = random.Random(18)
        for round_ in range(args.rounds + 1):  # round 0 warms the pools up: not counted
            order = variants[:]
            rng.shuffle(order)
            for kind, n in order:
                url = f"{urls[kind]}?namespace=bench-cluster-{n}"
                lead = 3.0 if round_ == 0 else 0.5
                job = (url, time.time() + lead, args.seconds)
                counts = pools[n].map(_decide_for, [job] * n)
                if round_:
                    rates[(kind, n)].append(sum(counts) / args.seconds)
    print(f"{args.rounds} rounds of {args.seconds:g} s per variant, interleaved")
    head = ["store", "processes", "decisions per second: median [min..max]"]
    print(f"| {' | '.join(head)} | cluster / single, per round |")
    print("| --- | --- | --- | --- |")
    for kind, n in variants:
        got = rates[(kind, n)]
        ratio = ""
        if kind == "cluster":
            pairs = [c / s for c, s in zip(got, rates[("single", n)], strict=True)]
            ratio = f"{statistics.median(pairs):.2f}x [{min(pairs):.2f}..{max(pairs):.2f}]"
        spread = f"{statistics.median(got):,.0f}/s [{min(got):,.0f}..{max(got):,.0f}]"
        name = "Redis, one server" if kind == "single" else "Redis Cluster, 3 masters"
        print(f"| {name} | {n} | {spread} | {ratio} |")


if __name__ == "__main__":
    main()
