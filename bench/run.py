"""llamux benchmarks: one command, one table. ``python bench/run.py [--quick]``.

Every speed is a median over many runs with its spread (p10..p90) and, where a baseline
makes sense, a ratio against a baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from llamux import Router
from llamux._config import parse_table
from llamux.testing import FakeEndpoint, FakeProvider

HELLO = [{"role": "user", "content": "Hello, how are you?"}]
KEY_VAR = "BENCH_API_KEY"


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


def bench_query(runs: int) -> list[tuple[str, str]]:
    out = []
    tmp = tempfile.mkdtemp()
    for n in (3, 30):
        for url in ("memory://", f"sqlite:///{tmp}/q{n}.db"):
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
    def run(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - start

    bare = [run("pass") for _ in range(runs)]
    light = [run("import llamux") for _ in range(runs)]
    sdk = [run("import openai") for _ in range(runs)]
    base = statistics.median(bare)
    return [
        ("python -c pass (baseline)", f"{base * 1e3:.0f} ms"),
        ("import llamux", f"{(statistics.median(light) - base) * 1e3:.0f} ms over the baseline"),
        (
            "import openai (for comparison)",
            f"{(statistics.median(sdk) - base) * 1e3:.0f} ms over the baseline",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    args = parser.parse_args()
    os.environ[KEY_VAR] = "bench-key"
    runs = 300 if args.quick else 3000
    rows = [
        *bench_query(runs),
        *bench_completion(runs // 10),
        *bench_import(5 if args.quick else 15),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'benchmark'.ljust(width)}  result")
    print(f"{'-' * width}  {'-' * 40}")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    print(f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
