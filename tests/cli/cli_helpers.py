"""Helpers of the CLI tests: the CLI in a real process on a terminal (a pseudo-terminal of a
given width) or on a pipe, and the properties every screen keeps."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from llamux.testing import FakeEndpoint, FakeProvider

from conftest import KEY

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
ONE_RPM = """\
| provider | model        | rpm | tpm   |
| -------- | ------------ | --- | ----- |
| cerebras | llama3.3-70b | 1   | 60000 |
"""
"""A table of one endpoint that admits one request a minute."""


def isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real user state or config; plain wide output."""
    monkeypatch.setenv("LLAMUX_STORE", f"sqlite:///{tmp_path}/q.db")
    monkeypatch.delenv("LLAMUX_CONFIG", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    for var in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(var, raising=False)


def one_rpm_table(tmp_path: Path) -> str:
    """The path of a file holding ``ONE_RPM``."""
    path = tmp_path / "endpoints.csv"
    path.write_text(ONE_RPM)
    return str(path)


LONG_IDS = (
    "groq:llama-3.3-70b-versatile",
    "cerebras:llama3.3-70b",
    "openrouter:meta-llama/llama-3.3-70b-instruct:free",
)
HEADERS = ("endpoint", "rule", "used", "left", "frees in", "state")
REPLY = "The sky is blue because air scatters blue light more than red."


def fake_endpoints() -> list[FakeEndpoint]:
    """What the fake provider serves for ``LONG_IDS`` (no limits of its own)."""
    return [
        FakeEndpoint("groq", model="llama-3.3-70b-versatile", reply=REPLY, api_key=KEY),
        FakeEndpoint("cerebras", model="llama3.3-70b", reply=REPLY, api_key=KEY),
        FakeEndpoint(
            "openrouter", model="meta-llama/llama-3.3-70b-instruct:free", reply=REPLY, api_key=KEY
        ),
    ]


def long_id_table(fake: FakeProvider, path: Path, groq_rpm: int = 30) -> str:
    """A table of real-looking ids (``LONG_IDS``) served by ``fake``; returns its path."""
    url = fake.base_url
    path.write_text(
        "| provider | model | base_url | rpm | tpm | rph | tpd |\n|---|---|---|---|---|---|---|\n"
        f"| groq | llama-3.3-70b-versatile | {url('groq')} | {groq_rpm} | 6000 | 900 | |\n"
        f"| cerebras | llama3.3-70b | {url('cerebras')} | 30 | 60000 | 900 | 1000000 |\n"
        f"| openrouter | meta-llama/llama-3.3-70b-instruct:free | {url('openrouter')} "
        "| 20 | | | |\n"
    )
    return str(path)


def cli_env(store: str, **extra: str) -> dict[str, str]:
    """The environment of a CLI process: the keys set, the store named, no colour forced."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR", "FORCE_COLOR")}
    for var in ("GROQ_API_KEY", "CEREBRAS_API_KEY", "OPENROUTER_API_KEY"):
        env[var] = KEY
    env.update(LLAMUX_STORE=store, LLAMUX_CONFIG="", **extra)
    return env


def llamux(*argv: str) -> list[str]:
    return [sys.executable, "-m", "llamux", *argv]


def on_terminal(
    argv: Sequence[str], columns: int, env: Mapping[str, str], timeout: float = 60.0
) -> tuple[int, str]:
    """Run ``argv`` with stdin, stdout and stderr on a pseudo-terminal ``columns`` wide;
    (exit code, everything it wrote, with ``\\r\\n`` as ``\\n``)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=dict(env))
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the process closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    code = proc.wait(timeout=10)
    return code, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def plain(text: str) -> str:
    """``text`` without colours and cursor moves; a line rewritten after ``\\r`` counts
    as its last version."""
    lines = [ANSI.sub("", line).rsplit("\r", 1)[-1] for line in text.split("\n")]
    return "\n".join(lines)


def check_screen(text: str, width: int | None, ids: Sequence[str] = LONG_IDS) -> None:
    """What every screen keeps: no traceback; no line wider than ``width``; every id whole
    on one line, or shortened in its middle (``…``) on a screen narrower than it; no header
    word broken."""
    shown = plain(text)
    assert "Traceback" not in shown and "Error:" not in shown, shown
    lines = shown.splitlines()
    if width is not None:
        assert all(len(line) <= width for line in lines), max(lines, key=len)
    for id_ in ids:
        if width is None or len(id_) <= width:
            assert id_ in shown, (id_, shown)
        else:
            head, tail = id_[: (width - 1) // 2], id_[-((width - 1) // 2) :]
            assert any(head in line and "…" in line and tail in line for line in lines), id_
        for cut in range(4, len(id_) - 3):  # no line ends in a piece of an id
            start, rest = id_[:cut], id_[cut:]
            broken = [n for n, line in enumerate(lines[:-1]) if line.rstrip().endswith(start)]
            assert not any(lines[n + 1].strip().startswith(rest) for n in broken), id_
    heads = [line for line in lines if re.match(r"^[┃|]? *endpoint\b", line)]
    for line in heads:  # a table's header row holds every header word whole
        assert all(header in line for header in HEADERS), line
