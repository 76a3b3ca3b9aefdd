"""llamux benchmarks: one command, one table. ``python bench/run.py [--quick]``.

Every speed is a median over many runs with its spread (p10..p90) and, where a baseline
makes sense, a ratio against a baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from llamux import Router
from llamux._config.load import parse_table
from llamux.testing import FakeEndpoint, FakeProvider

from common import HELLO, KEY_VAR


def sample(fn: Callable[[], object], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def spread(times: list[float], unit: float) -> tuple[float, float, float]:
    q = statistics.quantiles(times, n=10)
    return statistics.median(times) / unit, q[0] / unit, q[-1] / unit


def table(n: int, base_url: str = "http://127.0.0.1:9/v1") -> str:
    head = (
        "| name | provider | model | base_url | api_key_env | rpm | tpm | rph | tph | rpd | tpd |\n"
    )
    head += "|---|---|---|---|---|---|---|---|---|---|---|\n"
    big = "| 10000000 | 10000000000 | 10000000 | 10000000000 | 10000000 | 10000000000 |"
    rows = [f"| e{i} | bench | m{i} | {base_url} | {KEY_VAR} {big}" for i in range(n)]
    return head + "\n".join(rows) + "\n"


@contextmanager
def redis_server() -> Iterator[str | None]:
    """The URL of a private redis-server on 127.0.0.1 for the run, or None if not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tmp = tempfile.mkdtemp()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp, "--save", ""]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(500):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.01)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def bench_query(runs: int, redis_url: str | None) -> list[tuple[str, str]]:
    out = []
    tmp = tempfile.mkdtemp()
    for n in (3, 30):
        urls = ["memory://", f"sqlite:///{tmp}/q{n}.db"]
        if redis_url is not None:
            urls.append(f"{redis_url}?namespace=bench-query-{n}")
        for url in urls:
            router = Router(parse_table(table(n)), store=url)
            times = sample(lambda r=router: r.query(HELLO, max_tokens=10), runs)
            p50, p10, p90 = spread(times, 1e-6)
            out.append(
                (
                    f"query, {url.split(':')[0]}, {n} endpoints x 6 rules",
                    f"{p50:.1f} µs (p10 {p10:.1f}, p90 {p90:.1f})",
                )
            )
            router.close()
    return out


def _decide_for(job: tuple[str, float, float]) -> int:
    """In a worker process: route ``query`` decisions from ``start`` for ``seconds``."""
    url, start, seconds = job
    os.environ[KEY_VAR] = "bench-key"
    router = Router(parse_table(table(3)), store=url)
    for _ in range(20):  # warm up: connection, scripts, caches
        router.query(HELLO, max_tokens=10)
    time.sleep(max(0.0, start - time.time()))
    count, end = 0, start + seconds
    while time.time() < end:
        router.query(HELLO, max_tokens=10)
        count += 1
    router.close()
    return count


def bench_redis_throughput(
    redis_url: str | None, rounds: int, seconds: float
) -> list[tuple[str, str]]:
    if redis_url is None:
        return [("decisions per second, redis", "not measured: redis-server is not installed")]
    out = []
    spawn = multiprocessing.get_context("spawn")
    for processes in (1, 4):
        url = f"{redis_url}?namespace=bench-rate-{processes}"
        rates = []
        with spawn.Pool(processes) as pool:
            for _ in range(rounds):
                start = time.time() + 2.0  # after every worker is up and warm
                counts = pool.map(_decide_for, [(url, start, seconds)] * processes)
                rates.append(sum(counts) / seconds)
        out.append(
            (
                f"decisions per second, redis, {processes} process{'es' * (processes > 1)}",
                f"{statistics.median(rates):,.0f}/s (median of {rounds} runs of {seconds:g} s; "
                f"min {min(rates):,.0f}, max {max(rates):,.0f})",
            )
        )
    return out


def bench_completion(runs: int) -> list[tuple[str, str]]:
    import openai

    with FakeProvider([FakeEndpoint("a")]) as fake:
        client = openai.OpenAI(base_url=fake.base_url("a"), api_key="k", max_retries=0)
        bare = sample(lambda: client.chat.completions.create(model="m0", messages=HELLO), runs)
        router = Router(parse_table(table(1, fake.base_url("a"))), store="memory://")
        routed = sample(lambda: router.completion(HELLO), runs)
        router.close()
        client.close()
    b50, _, _ = spread(bare, 1e-3)
    r50, r10, r90 = spread(routed, 1e-3)
    return [
        ("completion, bare openai SDK call (baseline)", f"{b50:.2f} ms"),
        (
            "completion through llamux (memory store)",
            f"{r50:.2f} ms (p10 {r10:.2f}, p90 {r90:.2f}); overhead {r50 - b50:+.2f} ms, "
            f"ratio {r50 / b50:.2f}x",
        ),
    ]


def bench_import(runs: int) -> list[tuple[str, str]]:
    def run(*args: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start

    config = os.path.join(tempfile.mkdtemp(), "endpoints.md")
    with open(config, "w") as file:
        file.write(table(3))
    status = ("-m", "llamux", "--config", config, "--store", "memory://", "status")
    bare = [run("-c", "pass") for _ in range(runs)]
    light = [run("-c", "import llamux") for _ in range(runs)]
    sdk = [run("-c", "import openai") for _ in range(runs)]
    cli = [run(*status) for _ in range(runs)]
    base = statistics.median(bare)

    def over(times: list[float]) -> str:
        return f"{(statistics.median(times) - base) * 1e3:.0f} ms over the baseline"

    return [
        ("python -c pass (baseline)", f"{base * 1e3:.0f} ms"),
        ("import llamux", over(light)),
        ("llamux status (3 endpoints, start to exit)", over(cli)),
        ("import openai (for comparison)", over(sdk)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    parser.add_argument(
        "--all",
        action="store_true",
        help="also run the other scripts of bench/ (decisions, calls, contention, proxy, state,"
        " batch)",
    )
    args = parser.parse_args()
    os.environ[KEY_VAR] = "bench-key"
    runs = 300 if args.quick else 3000
    with redis_server() as redis_url:
        rows = [
            *bench_query(runs, redis_url),
            *bench_redis_throughput(redis_url, 3 if args.quick else 5, 1.0 if args.quick else 3.0),
            *bench_completion(runs // 10),
            *bench_import(5 if args.quick else 15),
        ]
    width = max(len(name) for name, _ in rows)
    print(f"{'benchmark'.ljust(width)}  result")
    print(f"{'-' * width}  {'-' * 40}")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    print(f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    if args.all:
        here = os.path.dirname(os.path.abspath(__file__))
        for script in (
            "decisions.py",
            "calls.py",
            "contention.py",
            "proxy.py",
            "state_size.py",
            "batch.py",
        ):
            print(f"\n== {script}")
            command = [sys.executable, os.path.join(here, script)]
            subprocess.run([*command, *(["--quick"] if args.quick else [])], check=True)


if __name__ == "__main__":
    main()
