"""A load generator that is not the bottleneck: ``wrk`` when it is there (or apt-get can
install it), else a raw-socket keep-alive client in processes of its own.

``bench/proxy.py`` measures the proxy against the fake provider with the *same* client, so
the ratio between them is the proxy's cost, not the client's. A Python HTTP client on the
same 2 cores caps the direct path (it spends more per request than the fake provider
does) and so flatters the proxy; ``wrk`` (C, epoll) spends a few microseconds per request.

The fallback (``python bench/load.py raw URL ...``, run by :class:`RawClient`) writes one
pre-built HTTP/1.1 request per connection and reads the answer by its framing
(Content-Length or chunked) without parsing the body: asyncio streams, several
connections per process, ``processes`` processes.

Both return a :class:`Result`: requests answered, how long, how many were not 2xx or
failed, and latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Result:
    """One run of a load client against one URL."""

    requests: int
    seconds: float
    bad: int
    """Answers that were not 2xx, and requests that failed (socket errors, timeouts)."""
    p50: float
    p90: float
    p99: float
    """Latency percentiles, in seconds."""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


class Client(Protocol):
    name: str

    def run(
        self, url: str, body: bytes, headers: dict[str, str], connections: int, seconds: float
    ) -> Result: ...


# ------------------------------------------------------------------ wrk


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = io.open(os.getenv("LOAD_BODY"), "rb"):read("*a")
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nLOAD {{"requests": %d, "us": %d, "bad": %d, "p50": %d, "p90": %d, "p99": %d}}\\n',
    summary.requests, summary.duration,
    e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


class Wrk:
    """``wrk`` with one thread (it needs no more to saturate a Python server on 2 cores, and
    a second would take a core from the server under test)."""

    def __init__(self, binary: str, threads: int = 1) -> None:
        self.binary, self.threads = binary, threads
        self.name = f"wrk ({_version(binary)}, {threads} thread{'s' * (threads != 1)})"

    def run(
        self, url: str, body: bytes, headers: dict[str, str], connections: int, seconds: float
    ) -> Result:
        with tempfile.TemporaryDirectory() as tmp:
            body_file, script = Path(tmp) / "body", Path(tmp) / "post.lua"
            body_file.write_bytes(body)
            lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
            script.write_text(WRK_SCRIPT.format(headers=lines))
            whole = max(1, round(seconds))  # wrk takes whole seconds
            command = [self.binary, f"-t{self.threads}", f"-c{connections}", f"-d{whole}s"]
            command += ["--timeout", "10s", "-s", str(script), url]
            env = {**os.environ, "LOAD_BODY": str(body_file)}
            done = subprocess.run(
                command, capture_output=True, text=True, env=env, timeout=seconds + 30
            )
        found = [line for line in done.stdout.splitlines() if line.startswith("LOAD ")]
        if done.returncode != 0 or not found:
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
        got = json.loads(found[-1][5:])
        return Result(
            got["requests"],
            got["us"] / 1e6,
            got["bad"],
            got["p50"] / 1e6,
            got["p90"] / 1e6,
            got["p99"] / 1e6,
        )


def _version(binary: str) -> str:
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).split("\n", 1)[0].split()
    return " ".join(first[:2]) if first else "wrk"


# ------------------------------------------------------------------ raw sockets


class RawClient:
    """The fallback: ``processes`` processes of asyncio keep-alive connections."""

    def __init__(self, processes: int = 2) -> None:
        self.processes = processes
        self.name = f"raw-socket keep-alive client (asyncio, {processes} processes)"

    def run(
        self, url: str, body: bytes, headers: dict[str, str], connections: int, seconds: float
    ) -> Result:
        request = _request(url, body, headers)
        each = [connections // self.processes] * self.processes
        for i in range(connections % self.processes):
            each[i] += 1
        start = time.time() + 0.3  # every process begins at once
        with mp.get_context("spawn").Pool(self.processes) as pool:
            parts = pool.starmap(
                _raw_process, [(url, request, n, start, seconds) for n in each if n]
            )
        times = sorted(t for part in parts for t in part[0])
        bad = sum(part[1] for part in parts)
        if not times:
            raise RuntimeError(f"no answer from {url}")
        q = statistics.quantiles(times, n=100) if len(times) > 1 else times * 99
        return Result(len(times), seconds, bad, q[49], q[89], q[98])


def _request(url: str, body: bytes, headers: dict[str, str]) -> bytes:
    parts = urlsplit(url)
    head = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head += [f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(head).encode() + body


def _raw_process(
    url: str, request: bytes, connections: int, start: float, seconds: float
) -> tuple[list[float], int]:
    return asyncio.run(_raw(url, request, connections, start, seconds))


async def _raw(
    url: str, request: bytes, connections: int, start: float, seconds: float
) -> tuple[list[float], int]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    times: list[float] = []
    bad = [0]
    await asyncio.sleep(max(0.0, start - time.time()))
    deadline = time.perf_counter() + seconds

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        clock = time.perf_counter
        try:
            while (began := clock()) < deadline:
                writer.write(request)
                status, keep = await _answer(reader)
                times.append(clock() - began)
                if not 200 <= status < 300:
                    bad[0] += 1
                if not keep:
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            bad[0] += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return times, bad[0]


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one answer by its framing; (status, whether the connection stays open)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip().lower()
    keep = fields.get(b"connection") != b"close"
    if b"content-length" in fields:
        await reader.readexactly(int(fields[b"content-length"]))
    elif fields.get(b"transfer-encoding") == b"chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.read()  # delimited by the end of the connection
        keep = False
    return status, keep


# ------------------------------------------------------------------ which


def load_client(asked: str = "auto") -> Client:
    """``wrk`` if it is on PATH or apt-get can install it (as root), unless ``asked`` is
    ``raw``; else the raw-socket client. ``asked`` ``wrk``: wrk or an error."""
    if asked != "raw":
        binary = shutil.which("wrk") or _install_wrk()
        if binary:
            return Wrk(binary)
        if asked == "wrk":
            raise SystemExit("wrk is not installed and could not be (apt-get install wrk)")
    return RawClient()


def _install_wrk() -> str | None:
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "wrk"]
    print("bench: installing wrk (apt-get install wrk)", file=sys.stderr, flush=True)
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
        subprocess.run(install, env=env, capture_output=True, check=False)
    return shutil.which("wrk")


def main() -> None:
    parser = argparse.ArgumentParser(description="Run one load test and print its result.")
    parser.add_argument("client", choices=("auto", "wrk", "raw"))
    parser.add_argument("url")
    parser.add_argument("--body", default='{"model": "m", "messages": []}')
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    client = load_client(args.client)
    got = client.run(
        args.url,
        args.body.encode(),
        {"Content-Type": "application/json", "Authorization": "Bearer bench-key"},
        args.connections,
        args.seconds,
    )
    print(f"{client.name}: {got.rate:.0f} req/s, p50 {got.p50 * 1e3:.2f} ms, bad {got.bad}")


if __name__ == "__main__":
    main()
