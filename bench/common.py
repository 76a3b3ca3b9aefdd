"""What the benchmark scripts share: the prompt, the key variable, a fake provider in its
own process (as a real provider would be), and a plain table printer."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

HELLO = [{"role": "user", "content": "Hello, how are you?"}]
KEY_VAR = "BENCH_API_KEY"
FAKE = """
import sys
from llamux.testing import FakeEndpoint, FakeProvider
with FakeProvider([FakeEndpoint("a", model="m")]) as fake:
    print(fake.base_url("a"), flush=True)
    sys.stdin.read()
"""


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


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell, a rule under the header."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    print(line(header))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))
