"""The proxy's cost: requests per second and added latency, proxy versus straight to the
fake provider, measured in the same run. ``python bench/proxy.py [--quick]``.

The fake provider and ``llamux serve`` each run in their own process (as in real use), the
load comes from this one: sequential requests for latency (p50, p90), then a fixed number of
concurrent ones for throughput. JSON and streamed answers both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx

from common import HELLO, KEY_VAR, fake_provider

BIG = "10000000 | 10000000000"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def llamux_proxy(base_url: str, workdir: Path, store: str = "memory://") -> Iterator[str]:
    table = workdir / "endpoints.md"
    table.write_text(
        "| name | provider | model | base_url | api_key_env | rpm | tpm |\n"
        "|---|---|---|---|---|---|---|\n"
        f"| a | bench | m | {base_url} | {KEY_VAR} | {BIG} |\n"
    )
    port = free_port()
    command = [sys.executable, "-m", "llamux", "serve", "--config", str(table), "--port", str(port)]
    env = {**os.environ, KEY_VAR: "bench-key", "LLAMUX_STORE": store}
    env.pop("LLAMUX_PROXY_KEY", None)
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, child)
        yield f"{url}/v1"
    finally:
        child.terminate()
        child.wait(30)


def wait_healthy(url: str, child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit(f"llamux serve exited with {child.returncode}")
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit("llamux serve did not come up in 30 s")


def body(stream: bool) -> dict[str, Any]:
    return {"model": "m", "messages": HELLO, "max_tokens": 20, "stream": stream}


def latencies(base: str, stream: bool, runs: int) -> list[float]:
    headers = {"authorization": "Bearer bench-key"}
    times = []
    with httpx.Client(headers=headers, timeout=30) as client:
        for _ in range(runs + 10):
            start = time.perf_counter()
            answer = client.post(f"{base}/chat/completions", json=body(stream))
            answer.raise_for_status()
            times.append(time.perf_counter() - start)
    return times[10:]  # the first ones warm up connections and caches


async def throughput(base: str, stream: bool, total: int, concurrency: int) -> float:
    headers = {"authorization": "Bearer bench-key"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, timeout=60, limits=limits) as client:
        left = iter(range(total))

        async def worker() -> None:
            for _ in left:
                answer = await client.post(f"{base}/chat/completions", json=body(stream))
                answer.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return total / (time.perf_counter() - start)


def measure(base: str, stream: bool, runs: int, total: int) -> tuple[float, float, float]:
    """(p50 ms, p90 ms, requests/s)."""
    times = latencies(base, stream, runs)
    p90 = statistics.quantiles(times, n=10)[-1]
    rate = asyncio.run(throughput(base, stream, total, concurrency=16))
    return statistics.median(times) * 1e3, p90 * 1e3, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    args = parser.parse_args()
    runs, total = (100, 400) if args.quick else (400, 2000)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, fake_provider() as upstream:
        stores = {"memory": "memory://", "SQLite": f"sqlite:///{tmp}/proxy.db"}
        with contextlib.ExitStack() as stack:
            proxies = {
                name: stack.enter_context(llamux_proxy(upstream, Path(tmp), url))
                for name, url in stores.items()
            }
            for stream in (False, True):
                mode = "stream" if stream else "json"
                d50, d90, drate = measure(upstream, stream, runs, total)
                rows.append((f"{mode}, direct to the fake provider", d50, d90, drate, ""))
                rates: dict[str, float] = {}
                for name, proxied in proxies.items():
                    p50, p90, rates[name] = measure(proxied, stream, runs, total)
                    added = f"+{p50 - d50:.2f} ms p50, {rates[name] / drate:.0%} of direct req/s"
                    if name != "memory":
                        added += f", {rates[name] / rates['memory']:.0%} of memory's"
                    rows.append(
                        (f"{mode}, through llamux serve ({name})", p50, p90, rates[name], added)
                    )
    print(f"{'path':<44} {'p50 ms':>8} {'p90 ms':>8} {'req/s':>8}  added")
    print(f"{'-' * 44} {'-' * 8} {'-' * 8} {'-' * 8}  {'-' * 36}")
    for name, p50, p90, rate, added in rows:
        print(f"{name:<44} {p50:>8.2f} {p90:>8.2f} {rate:>8.0f}  {added}")
    print(
        f"\n{runs} sequential requests per latency row, {total} with 16 in flight per req/s "
        f"row; machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}"
    )


if __name__ == "__main__":
    main()
