"""llamux benchmarks: one command, one table. ``python bench/run.py [--quick] [--all]``.

Every comparison is measured the one way of ``rounds.py``: the variants are warmed up, then
run in interleaved rounds (a batch of each per round, in a shuffled order), and each is
given as its median with p10..p90 and, round by round against its baseline, as a ratio and
a difference (median and range over the rounds). The ratios, measured in the same run on
the same machine, are the claim; the absolute figures are for the record. Every table
starts with the machine line and ends with the load other processes put on the machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llamux import Router
from llamux._config.load import parse_table

from common import HELLO, KEY_VAR, Load, fake_provider, machine, print_table, redis_server
from rounds import Batch, calls, compare


def table(n: int, base_url: str = "http://127.0.0.1:9/v1", model: str | None = None) -> str:
    head = (
        "| name | provider | model | base_url | api_key_env | rpm | tpm | rph | tph | rpd | tpd |\n"
    )
    head += "|---|---|---|---|---|---|---|---|---|---|---|\n"
    big = "| 10000000 | 10000000000 | 10000000 | 10000000000 | 10000000 | 10000000000 |"
    rows = [f"| e{i} | bench | {model or f'm{i}'} | {base_url} | {KEY_VAR} {big}" for i in range(n)]
    return head + "\n".join(rows) + "\n"


Row = list[str]


def bench_query(rounds: int, per_round: int, redis_url: str | None) -> list[Row]:
    """``query`` with 3 and 30 endpoints on each store, interleaved; 30 against 3 per round."""
    tmp = tempfile.mkdtemp()
    stores = {"memory": "memory://", "sqlite": f"sqlite:///{tmp}/q{{n}}.db"}
    if redis_url is not None:
        stores["redis"] = f"{redis_url}?namespace=bench-query-{{n}}"
    routers, variants = [], {}
    for store, url in stores.items():
        for n in (3, 30):
            router = Router(parse_table(table(n)), store=url.format(n=n))
            routers.append(router)
            variants[f"query, {store}, {n} endpoints x 6 rules"] = calls(
                lambda r=router: r.query(HELLO, max_tokens=10)
            )
    baselines = {name: name.replace(" 30 ", " 3 ") for name in variants}
    try:
        got = compare(variants, baselines, rounds=rounds, per_round=per_round, warmup=50)
    finally:
        for router in routers:
            router.close()
    return [[name, m.spread(), m.ratio(), m.delta()] for name, m in got.items()]


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


def bench_redis_throughput(redis_url: str | None, rounds: int, seconds: float) -> list[Row]:
    """Decisions per second from 1 and from 4 processes, interleaved; 4 against 1 per round."""
    if redis_url is None:
        return [["decisions per second, redis", "not measured: no redis-server", "", ""]]
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(1) as one, spawn.Pool(4) as four:
        pools = {1: one, 4: four}
        started: set[int] = set()

        def run(processes: int) -> Batch:
            def batch(_: int) -> list[float]:
                # the first run waits for the pool to spawn and import; later ones less
                lead = 0.5 if processes in started else 3.0
                started.add(processes)
                job = (f"{redis_url}?namespace=bench-rate-{processes}", time.time() + lead, seconds)
                counts = pools[processes].map(_decide_for, [job] * processes)
                return [seconds / sum(counts)]

            return batch

        got = compare({str(n): run(n) for n in pools}, "1", rounds=rounds, per_round=1, warmup=1)
    out = []
    for n in pools:
        rates = [1 / t for t in got[str(n)].rounds]
        out.append(
            [
                f"decisions per second, redis, {n} process{'es' * (n > 1)} ({seconds:g} s runs)",
                f"{statistics.median(rates):,.0f}/s [{min(rates):,.0f}..{max(rates):,.0f}]",
                "baseline" if n == 1 else got[str(n)].ratio(invert=True),
                "",
            ]
        )
    return out


def bench_completion(rounds: int, per_round: int) -> list[Row]:
    """A bare SDK call against ``completion`` on memory and SQLite, interleaved."""
    import openai

    tmp = tempfile.mkdtemp()
    with fake_provider() as url:
        client = openai.OpenAI(base_url=url, api_key="k", max_retries=0)
        routers = {
            store: Router(parse_table(table(1, url, model="m")), store=store_url)
            for store, store_url in (("memory", "memory://"), ("sqlite", f"sqlite:///{tmp}/c.db"))
        }
        variants = {
            "completion, bare openai SDK call": calls(
                lambda: client.chat.completions.create(model="m", messages=HELLO)
            ),
            **{
                f"completion through llamux, {store}": calls(lambda r=r: r.completion(HELLO))
                for store, r in routers.items()
            },
        }
        try:
            got = compare(
                variants, "completion, bare openai SDK call", rounds=rounds, per_round=per_round
            )
        finally:
            for router in routers.values():
                router.close()
            client.close()
    return [[name, m.spread(), m.ratio(), m.delta()] for name, m in got.items()]


def bench_import(rounds: int) -> list[Row]:
    """Whole processes (start to exit) against ``python -c pass``, interleaved."""
    config = os.path.join(tempfile.mkdtemp(), "endpoints.md")
    with open(config, "w") as file:
        file.write(table(3))

    # as installed code runs: with bytecode (the warm-up writes it if it is missing, which
    # PYTHONDONTWRITEBYTECODE would prevent, making every run compile llamux: +40 ms)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def run(*args: str) -> Batch:
        command = [sys.executable, *args]
        return calls(
            lambda: subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
        )

    status = ("-m", "llamux", "--config", config, "--store", "memory://", "status")
    variants = {
        "python -c pass": run("-c", "pass"),
        "import llamux": run("-c", "import llamux"),
        "llamux status (3 endpoints, start to exit)": run(*status),
        "import openai (for comparison)": run("-c", "import openai"),
    }
    got = compare(variants, "python -c pass", rounds=rounds, per_round=1, warmup=2)
    return [[name, m.spread(), m.ratio(), m.delta()] for name, m in got.items()]


SCRIPTS = ("decisions.py", "calls.py", "contention.py", "proxy.py", "state_size.py")
LAST = ("cluster.py", "batch.py")  # cluster.py runs when it exists
HERE = Path(__file__).resolve().parent
QUICK = {
    "state_size.py": ["--requests", "20000"],
    "cluster.py": ["--rounds", "2", "--seconds", "1"],
}
"""Under ``--quick``, what a script that takes no ``--quick`` is given instead."""
SHORTER = {"cluster.py": ["--rounds", "3", "--seconds", "1.5"]}
"""Under ``--all`` without ``--quick``: shorter than the script's own default, to keep the
whole run under five minutes on 2 cores."""
BATCH_ITEMS = 2_500
"""``batch.py``'s items under ``--all`` (about 35 s; endpoint d's day limit runs out after
ten simulated minutes, b's only in the full run); ``--full-batch``: its own 10,000."""


def run_scripts(quick: bool, full_batch: bool) -> list[str]:
    """Run each script in turn; the ones that failed (the others still run)."""
    failed = []
    for script in (*SCRIPTS, *LAST):
        path = HERE / script
        if not path.exists():
            continue
        source = path.read_text()
        extra = SHORTER.get(script, [])
        if quick:
            extra = ["--quick"] if "--quick" in source else QUICK.get(script, [])
        if script == "batch.py" and not full_batch:
            extra = ["--items", str(1_000 if quick else BATCH_ITEMS)]
        print(f"\n== bench/{script} {' '.join(extra)}".rstrip(), flush=True)
        load = Load()
        if "machine()" not in source and "print_table(" not in source:
            print(machine(), flush=True)  # a script that does not say it itself
        code = subprocess.run([sys.executable, str(path), *extra], check=False).returncode
        if code != 0:
            failed.append(f"bench/{script} (exit {code})")
        if "Load()" not in source:
            print(load.line(), flush=True)
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter runs")
    parser.add_argument(
        "--all",
        action="store_true",
        help="then run the other scripts of bench/ (decisions, calls, contention, proxy, "
        f"state_size, cluster, batch with {BATCH_ITEMS:,} items)",
    )
    parser.add_argument(
        "--full-batch",
        action="store_true",
        help="with --all: batch.py's full run (10,000 items, about three minutes) instead",
    )
    args = parser.parse_args()
    os.environ[KEY_VAR] = "bench-key"
    begun, load = time.perf_counter(), Load()
    q = args.quick
    with redis_server() as redis_url:
        rows = [
            *bench_query(4 if q else 10, 50 if q else 300, redis_url),
            *(
                []  # cluster.py measures the same (1 and 4 processes on one redis-server)
                if args.all and (HERE / "cluster.py").exists()
                else bench_redis_throughput(redis_url, 2 if q else 4, 1.0 if q else 1.5)
            ),
            *bench_completion(4 if q else 10, 10 if q else 30),
            *bench_import(4 if q else 10),
        ]
    print_table(
        ["benchmark", "median (p10, p90)", "vs baseline, per round", "difference, per round"],
        rows,
        title="bench/run.py: variants interleaved in rounds after warm-up; baseline: the row "
        "each is compared with (3 endpoints, one process, the bare SDK call, python -c pass)",
    )
    print(load.line(), flush=True)
    if args.all:
        failed = run_scripts(args.quick, args.full_batch)
        spent = time.perf_counter() - begun
        print(f"\nbench/run.py --all: {spent // 60:.0f} min {spent % 60:.0f} s in all")
        if failed:
            raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
