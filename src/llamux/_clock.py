"""Clocks: the real one and a fake one for tests. Injected, never global."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """What the router needs of time: wall-clock seconds and a way to wait."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    async def asleep(self, seconds: float) -> None: ...


class SystemClock:
    """Wall-clock time (``time.time``), shared by every process of the machine."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        import asyncio  # not at module level: import llamux stays light

        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


class FakeClock:
    """A clock that moves only when told to; ``sleep`` advances it instantly."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a FakeClock only moves forward; pass seconds >= 0")
        with self._lock:
            self._now += seconds

    def set(self, when: float) -> None:
        with self._lock:
            self._now = float(when)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        import asyncio

        self.sleep(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"


class ScaledClock:
    """Simulated time that runs ``speed`` times faster than real time.

    ``now`` starts at ``start`` (default: the real time when it is made) and moves ``speed``
    simulated seconds per real second; ``sleep(seconds)`` really sleeps ``seconds / speed``,
    so a wait on it passes as much simulated time as it asks for. Shared by a fake provider
    (``FakeProvider(..., clock=clock.now)``) and a router (``Router(..., clock=clock)``), it
    rolls a minute window in ``60 / speed`` real seconds, and both see the same time.
    """

    def __init__(self, speed: float, start: float | None = None) -> None:
        if not (isinstance(speed, int | float) and 0 < speed < float("inf")):
            raise ValueError(f"speed must be a finite number above 0, not {speed!r}")
        self.speed = float(speed)
        self.start = time.time() if start is None else float(start)
        self._origin = time.monotonic()

    def now(self) -> float:
        return self.start + self.elapsed()

    def elapsed(self) -> float:
        """Simulated seconds since the clock was made."""
        return (time.monotonic() - self._origin) * self.speed

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.speed)

    async def asleep(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(max(0.0, seconds) / self.speed)

    def __repr__(self) -> str:
        return f"ScaledClock({self.speed!r}, start={self.start!r})"
