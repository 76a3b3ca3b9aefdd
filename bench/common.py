"""What the benchmark scripts share: the prompt, the key variable, a fake provider in its
own process (as a real provider would be), the machine line every table starts with, the
load other processes put on the machine meanwhile, and a plain table printer."""

from __future__ import annotations

import functools
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

HELLO = [{"role": "user", "content": "Hello, how are you?"}]
KEY_VAR = "BENCH_API_KEY"
FAKE = """
import sys
from llamux.testing import FakeEndpoint, FakeProvider
with FakeProvider([FakeEndpoint("a", model="m")]) as fake:
    print(fake.base_url("a"), flush=True)
    sys.stdin.read()
"""
ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def fake_provider() -> Iterator[str]:
    """The base URL of a fake provider serving model ``m`` from its own process."""
    child = subprocess.Popen(
        [sys.executable, "-c", FAKE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        yield child.stdout.readline().strip()
    finally:
        child.communicate("")


@functools.cache
def machine() -> str:
    """``machine: 2 cores, Intel(R) Xeon(R) Processor, Python 3.11.7, llamux 1a2b3c4`` (with
    ``+ uncommitted src/`` when the library's code differs from that commit)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"machine: {os.cpu_count()} cores, {model}, Python {platform.python_version()}, "
        f"llamux {_commit()}"
    )


def _commit() -> str:
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
        )

    try:
        head = git("rev-parse", "--short", "HEAD")
    except OSError:
        return "(no git)"
    if head.returncode != 0:
        return "(not a git checkout)"
    dirty = git("diff", "--quiet", "HEAD", "--", "src").returncode != 0
    return head.stdout.strip() + (" + uncommitted src/" if dirty else "")


def _busy_seconds() -> float | None:
    """CPU seconds the whole machine has been busy since boot (None off Linux)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(f) for f in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    busy = sum(ticks[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Load:
    """The CPU other processes used while a table was measured, in cores on average: the
    machine's busy time (``/proc/stat``) minus this process's and its waited-for children's.
    A benchmark shares the machine; this says how much, beside its figures."""

    def __init__(self) -> None:
        self.wall, self.busy, self.own = time.perf_counter(), _busy_seconds(), _own_seconds()

    def cores(self) -> float | None:
        now = _busy_seconds()
        if now is None or self.busy is None:
            return None
        wall = time.perf_counter() - self.wall
        return max(0.0, (now - self.busy) - (_own_seconds() - self.own)) / max(wall, 1e-9)

    def line(self) -> str:
        """``load: other processes used 0.42 cores on average over 31 s``."""
        cores, wall = self.cores(), time.perf_counter() - self.wall
        if cores is None:
            return f"load: not measured (no /proc/stat); {wall:.0f} s"
        return f"load: other processes used {cores:.2f} cores on average over {wall:.0f} s"


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], title: str = "") -> None:
    """The machine line (and ``title``), then columns padded to their widest cell, a rule
    under the header."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    print(machine())
    if title:
        print(title)
    print(line(header))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))


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
