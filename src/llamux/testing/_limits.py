"""The fake provider's limiter: an exact sliding log over rolling windows and calendar days.

A limit counts requests or tokens per minute, hour, day or (rolling) 30-day month. A rolling
limit counts the admitted requests logged in ``(now - window, now]``; a calendar limit (a day
with a timezone) counts those logged since the last local midnight, so it empties at midnight
in that zone, DST included.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from .._config.endpoint import limit_name

MINUTE = 60.0
HOUR = 3_600.0
DAY = 86_400.0
MONTH = 30 * DAY
WINDOWS = {"minute": MINUTE, "hour": HOUR, "day": DAY, "month": MONTH}

Event = tuple[float, int, int]  # an admitted request: (time, tokens, running token total)


@dataclass(frozen=True)
class Limit:
    """At most ``limit`` requests or tokens (``kind``) per minute, hour or day (``period``)."""

    kind: str  # "requests" or "tokens"
    period: str  # "minute", "hour" or "day"
    limit: int
    tz: ZoneInfo | None = None  # calendar days in this timezone; None: a rolling window

    @property
    def window(self) -> float:
        return WINDOWS[self.period]

    @property
    def name(self) -> str:
        """The limit's short name, as in llamux's tables: ``rpm``, ``tpd``, ..."""
        return limit_name(self.kind, self.period)

    @property
    def label(self) -> str:
        """As in an OpenAI or Groq 429 message: ``requests per minute (RPM)``."""
        return f"{self.kind} per {self.period} ({self.name.upper()})"


@dataclass(frozen=True)
class Usage:
    """How much of a limit is used at ``now``, when more of it is free (``frees_at``) and when
    it is whole again (``reset_at``)."""

    limit: Limit
    used: int
    now: float
    reset_at: float  # rolling: the newest event leaves the window; calendar: the period ends
    frees_at: float  # rolling: the oldest event leaves; calendar: the period ends; now if unused

    @property
    def remaining(self) -> int:
        return max(0, self.limit.limit - self.used)

    @property
    def reset(self) -> float:
        """Seconds until ``reset_at``."""
        return max(0.0, self.reset_at - self.now)

    @property
    def frees(self) -> float:
        """Seconds until more of the limit is free (``frees_at``; 0 when none is used)."""
        return max(0.0, self.frees_at - self.now)


@dataclass(frozen=True)
class Block:
    """A limit that refuses a request: ``wait`` seconds until it admits it, None if never."""

    usage: Usage
    requested: int
    wait: float | None


def day_bounds(now: float, tz: ZoneInfo) -> tuple[float, float]:
    """The epoch times of the local midnights that start and end the day holding ``now``."""
    day = datetime.fromtimestamp(now, tz).date()
    start = datetime.combine(day, time(), tz).timestamp()
    end = datetime.combine(day + timedelta(days=1), time(), tz).timestamp()
    return start, end


def build_limits(
    counts: Sequence[tuple[str, str, int | None]], day_reset: str | None = None
) -> list[Limit]:
    """The limits of ``(kind, period, limit)`` triples, skipping limits of None."""
    tz = ZoneInfo(day_reset) if day_reset is not None else None
    return [
        Limit(kind, period, n, tz if period == "day" else None)
        for kind, period, n in counts
        if n is not None
    ]


def _time(event: Event) -> float:
    return event[0]


def _running(event: Event) -> int:
    return event[2]


class SlidingLog:
    """The admitted requests of one endpoint, checked against its limits (not thread-safe)."""

    def __init__(self, limits: Sequence[Limit]) -> None:
        self.limits = tuple(limits)
        self.log: list[Event] = []

    def _start(self, now: float, lim: Limit) -> int:
        """The index of the oldest logged event that counts against ``lim`` at ``now``."""
        if lim.tz is None:  # events at t <= now - window have left the window
            return bisect.bisect_right(self.log, now - lim.window, key=_time)
        return bisect.bisect_left(self.log, day_bounds(now, lim.tz)[0], key=_time)

    def _used(self, start: int, lim: Limit) -> int:
        log = self.log
        if start == len(log):
            return 0
        if lim.kind == "requests":
            return len(log) - start
        return log[-1][2] - log[start][2] + log[start][1]

    def usage(self, now: float, lim: Limit) -> Usage:
        start = self._start(now, lim)
        if lim.tz is not None:
            reset_at = day_bounds(now, lim.tz)[1]
            frees_at = reset_at if start < len(self.log) else now
        elif start < len(self.log):
            reset_at = self.log[-1][0] + lim.window
            frees_at = self.log[start][0] + lim.window
        else:
            reset_at = frees_at = now
        return Usage(lim, self._used(start, lim), now, reset_at, frees_at)

    def usages(self, now: float) -> tuple[Usage, ...]:
        return tuple(self.usage(now, lim) for lim in self.limits)

    def _block(self, now: float, lim: Limit, requested: int) -> Block | None:
        """None when ``lim`` admits ``requested`` more now, else how it refuses."""
        usage = self.usage(now, lim)
        excess = usage.used + requested - lim.limit
        if excess <= 0:
            return None
        if requested > lim.limit:
            return Block(usage, requested, None)
        if lim.tz is not None:
            return Block(usage, requested, usage.reset_at - now)
        log, start = self.log, self._start(now, lim)
        if lim.kind == "requests":  # the excess-th oldest event must leave the window
            at = log[start + excess - 1][0]
        else:
            base = log[start][2] - log[start][1]
            at = log[bisect.bisect_left(log, base + excess, lo=start, key=_running)][0]
        return Block(usage, requested, at + lim.window - now)

    def check(self, now: float, charge: int) -> Block | None:
        """The limit that binds most against one request charging ``charge`` tokens, if any.

        A limit that can never admit it wins, else the one with the longest wait.
        """
        self.prune(now)
        blocks = []
        for lim in self.limits:
            block = self._block(now, lim, 1 if lim.kind == "requests" else charge)
            if block is not None:
                blocks.append(block)
        never = [b for b in blocks if b.wait is None]
        if never or not blocks:
            return never[0] if never else None
        return max(blocks, key=lambda b: b.wait or 0.0)

    def record(self, now: float, tokens: int) -> None:
        log = self.log
        at = bisect.bisect_right(log, now, key=_time)  # the end, unless the clock went back
        log.insert(at, (now, tokens, 0))
        for i in range(at, len(log)):
            log[i] = (log[i][0], log[i][1], (log[i - 1][2] if i else 0) + log[i][1])

    def prune(self, now: float) -> None:
        """Forget the events that no limit counts any more."""
        keep = min((self._start(now, lim) for lim in self.limits), default=len(self.log))
        del self.log[:keep]
