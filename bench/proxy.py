"""The proxy's cost: requests per second through ``llamux serve`` against straight to the
fake provider, with the same load client, in the same run. ``python bench/proxy.py
[--quick] [--client auto|wrk|raw]``.

The fake provider and each ``llamux serve`` run in processes of their own, as in real use.
The load comes from ``wrk`` (installed with apt-get when missing and possible), else from
bench/load.py's raw-socket keep-alive client; the output names which. A Python HTTP client
on the same cores would cap the direct path and flatter the proxy.

Variants, JSON answers: direct to the fake provider; through the proxy on the memory store,
SQLite, Redis (when redis-server is installed), and SQLite with ``--workers 2``. Streamed
answers: direct, and the proxy on memory. First a warm-up (1 s of each variant), then a
latency pass (one connection, one request at a time, 1 s per variant: p50 and p90), then rounds:
each round runs every variant once for throughput (16 connections), in an order shuffled
per round. Per variant: the median req/s over the rounds, and the ratio of its req/s to
direct's *in the same round* (median [min..max]): that ratio is the figure to quote, a
slow patch of a shared machine falls on both sides of it. Every answer must be a 2xx.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx

from common import KEY_VAR, Load, fake_provider, print_table, redis_server
from load import Client, Result, load_client

BIG = "10000000 | 10000000000"
CONNECTIONS = 16
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer bench-key"}


def body(stream: bool) -> bytes:
    flag = "true" if stream else "false"
    return (
        '{"model": "m", "messages": [{"role": "user", "content": "Hello, how are you?"}], '
        f'"max_tokens": 20, "stream": {flag}}}'
    ).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def llamux_proxy(base_url: str, workdir: Path, store: str, workers: int = 1) -> Iterator[str]:
    """``llamux serve`` in front of the fake provider, on a free port; yields its /v1 URL."""
    port = free_port()
    table = workdir / f"endpoints-{port}.md"
    table.write_text(
        "| name | provider | model | base_url | api_key_env | rpm | tpm |\n"
        "|---|---|---|---|---|---|---|\n"
        f"| a | bench | m | {base_url} | {KEY_VAR} | {BIG} |\n"
    )
    command = [sys.executable, "-m", "llamux", "--config", str(table), "--store", store]
    command += ["serve", "--port", str(port), "--workers", str(workers)]
    env = {**os.environ, KEY_VAR: "bench-key"}
    env.pop("LLAMUX_PROXY_KEY", None)
    errors = workdir / f"serve-{port}.err"
    with errors.open("wb") as err:
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_ready(f"http://127.0.0.1:{port}", child, errors, workers)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        child.terminate()
        child.wait(30)


def wait_ready(url: str, child: subprocess.Popen[bytes], errors: Path, workers: int) -> None:
    """Until every worker has started and the proxy answers ``/healthz``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit(f"llamux serve exited with {child.returncode}:\n{errors.read_text()}")
        started = errors.read_text(errors="replace").count("Application startup complete")
        with contextlib.suppress(httpx.TransportError):
            if started >= workers and httpx.get(f"{url}/healthz").status_code == 200:
                return
        time.sleep(0.05)
    raise SystemExit("llamux serve did not come up in 60 s")


@dataclass
class Variant:
    name: str
    url: str
    stream: bool
    baseline: str
    """The variant its req/s is compared with, round by round."""
    rates: list[float] = field(default_factory=list)
    latency: Result | None = None

    def run(self, client: Client, connections: int, seconds: float) -> Result:
        got = client.run(
            f"{self.url}/chat/completions", body(self.stream), HEADERS, connections, seconds
        )
        if got.bad:
            raise SystemExit(f"{self.name}: {got.bad} of {got.requests} answers were not 2xx")
        return got


def measure(variants: list[Variant], client: Client, rounds: int, seconds: float) -> None:
    """A warm-up (1 s each), the latency pass, then ``rounds`` shuffled throughput rounds."""
    for variant in variants:
        variant.run(client, CONNECTIONS, 1.0)
    for variant in variants:
        variant.latency = variant.run(client, 1, 1.0)
    order, shuffle = list(variants), random.Random(19).shuffle
    for _ in range(rounds):
        shuffle(order)
        for variant in order:
            variant.rates.append(variant.run(client, CONNECTIONS, seconds).rate)


def rows(variants: list[Variant]) -> list[list[str]]:
    by_name = {v.name: v for v in variants}
    out = []
    for v in variants:
        base = by_name[v.baseline]
        rates = f"{statistics.median(v.rates):,.0f} [{min(v.rates):,.0f}..{max(v.rates):,.0f}]"
        if v is base:
            ratio = "baseline"
        else:
            paired = [mine / theirs for mine, theirs in zip(v.rates, base.rates, strict=True)]
            ratio = f"{statistics.median(paired):.0%} [{min(paired):.0%}..{max(paired):.0%}]"
        assert v.latency is not None and base.latency is not None
        p50, p90 = v.latency.p50 * 1e3, v.latency.p90 * 1e3
        added = "" if v is base else f"+{p50 - base.latency.p50 * 1e3:.2f} ms"
        out.append([v.name, rates, ratio, f"{p50:.2f} / {p90:.2f} ms", added])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 1 s (else 3 of 2 s)")
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "raw"),
        default="auto",
        help="the load client: wrk if present or installable (auto), or the raw-socket one",
    )
    args = parser.parse_args()
    rounds, seconds = (2, 1.0) if args.quick else (3, 2.0)
    client = load_client(args.client)
    load = Load()
    with (
        tempfile.TemporaryDirectory() as tmp,
        fake_provider() as upstream,
        redis_server() as redis_url,
        contextlib.ExitStack() as stack,
    ):
        stores = {"memory": "memory://", "SQLite": f"sqlite:///{tmp}/proxy.db"}
        if redis_url:
            stores["Redis"] = f"{redis_url}?namespace=bench-proxy"
        proxies = {
            name: stack.enter_context(llamux_proxy(upstream, Path(tmp), url))
            for name, url in stores.items()
        }
        two = stack.enter_context(
            llamux_proxy(upstream, Path(tmp), f"sqlite:///{tmp}/workers.db", workers=2)
        )
        direct, stream = "JSON, direct", "stream, direct"
        variants = [Variant(direct, upstream, False, direct)]
        variants += [
            Variant(f"JSON, proxy, {name}", url, False, direct) for name, url in proxies.items()
        ]
        variants.append(Variant("JSON, proxy, SQLite, 2 workers", two, False, direct))
        variants += [
            Variant(stream, upstream, True, stream),
            Variant("stream, proxy, memory", proxies["memory"], True, stream),
        ]
        measure(variants, client, rounds, seconds)
    named = {v.name: v for v in variants}
    one, both = named["JSON, proxy, SQLite"], named["JSON, proxy, SQLite, 2 workers"]
    scaling = [b / o for o, b in zip(one.rates, both.rates, strict=True)]
    print_table(
        ["path", "req/s, median [min..max]", "of direct, per round", "1 conn p50 / p90", "added"],
        rows(variants),
        title=f"bench/proxy.py: load client {client.name}; {CONNECTIONS} connections, "
        f"{rounds} rounds of {seconds:.0f} s per variant, shuffled; latency: 1 connection, 1 s",
    )
    print(
        f"2 workers vs 1 (SQLite), per round: {statistics.median(scaling):.2f}x "
        f"[{min(scaling):.2f}..{max(scaling):.2f}]"
    )
    print(load.line(), flush=True)


if __name__ == "__main__":
    main()
