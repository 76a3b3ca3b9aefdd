"""The Redis server's clock as seen from one machine: ``time.time()`` plus an offset measured
with ``TIME`` at connect and every ``OFFSET_REFRESH`` seconds, so machines whose clocks
disagree still agree on every window."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

OFFSET_REFRESH = 30.0
"""Seconds between measurements of the offset to the server's clock."""


class ServerClock:
    """``ask`` returns the server's ``TIME`` reply; ``guard`` turns its errors into store
    errors."""

    def __init__(
        self,
        ask: Callable[[], Any],
        guard: Callable[[], AbstractContextManager[None]],
    ) -> None:
        self.ask = ask
        self.guard = guard
        self.wall: Callable[[], float] = time.time
        self.offset = 0.0
        self.measured_at = -math.inf
        self._lock = threading.Lock()

    def measure(self) -> None:
        before = self.wall()
        seconds, micros = self.ask()
        after = self.wall()
        self.offset = seconds + micros / 1e6 - (before + after) / 2
        self.measured_at = time.monotonic()

    def now(self, now: float) -> tuple[float, float]:
        """The server's time now, and what to add to it to get back to the caller's ``now``."""
        stale = time.monotonic() - self.measured_at > OFFSET_REFRESH
        if stale and self._lock.acquire(blocking=False):  # one thread measures
            try:
                with self.guard():
                    self.measure()
            finally:
                self._lock.release()
        server = self.wall() + self.offset
        return server, now - server

    def on_server(self, moment: float) -> float:
        """A moment of the caller's (wall) clock, maybe past, on the server's clock."""
        self.now(moment)  # refreshes the offset when it is stale
        return moment + self.offset
