"""Windows: a length of time (minute, hour, day, month), rolling or calendar in a timezone,
and its buckets: where a charge made at a moment is recorded, which buckets count at a
moment, when a bucket stops counting. Pure: every method takes the moment as an argument.

A window's usage is kept in sub-buckets (1 s for minute rules, 60 s for hour rules, 900 s
for day and month rules). Rolling and calendar windows of one length share their buckets
(period starts fall on bucket edges), so changing how a limit resets keeps its history.

A rolling month is 30 days. A calendar month starts at local midnight on the 1st of its
timezone (DST-aware). Month buckets are 900 s, not a day: every timezone's offset is a
multiple of 15 minutes, so a local midnight is always a 900 s edge (a day bucket would be a
UTC day, and a calendar month in another zone would start inside one). Capacity returns at
most 900 s late (1/2880 of the window); a scope with a month rule stores up to 2,977 buckets
per metric (31 days and an hour: the longest calendar month).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

WINDOW_SECONDS: Mapping[str, int] = {
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "month": 30 * 86400,
}
"""The length of each rolling window (a rolling month is 30 days)."""
BUCKET_SECONDS: Mapping[str, int] = {"minute": 1, "hour": 60, "day": 900, "month": 900}
KEEP_SECONDS: Mapping[str, int] = {
    "minute": 60,
    "hour": 3600,
    "day": 86400 + 3600,
    "month": 31 * 86400 + 3600,
}
"""How far back any window of a unit reaches, rolling or calendar: a calendar day is 25
hours when DST ends, a calendar month up to 31 days and an hour. Older buckets are pruned."""
LATENCY_MARGIN = 0.05
"""Seconds allowed between the store's atomic step and the request leaving this process:
everything slow (the SDK import, building the client) happens before the reservation, so
only the send itself is left. Later delays (the network, the provider's queue) are covered
by re-stamping the charge when the outcome is known."""


@lru_cache(maxsize=64)
def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


@dataclass(frozen=True, slots=True)
class Window:
    """A window length (``minute``, ``hour``, ``day`` or ``month``), rolling or calendar in
    ``tz``."""

    unit: str
    tz: str | None = None
    key: str = field(init=False, repr=False, compare=False)
    """Where its buckets are stored: the unit (``minute`` ... ``month``). Rolling and
    calendar windows of one unit share their buckets."""
    label: str = field(init=False, repr=False, compare=False)
    """How it is shown: ``minute`` or ``day@America/Los_Angeles``."""
    seconds: int = field(init=False, repr=False, compare=False)
    bucket_seconds: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.unit not in WINDOW_SECONDS:
            raise ValueError(f"unknown window {self.unit!r}; use minute, hour, day or month")
        label = self.unit if self.tz is None else f"{self.unit}@{self.tz}"
        object.__setattr__(self, "key", self.unit)
        object.__setattr__(self, "label", label)
        object.__setattr__(self, "seconds", WINDOW_SECONDS[self.unit])
        object.__setattr__(self, "bucket_seconds", BUCKET_SECONDS[self.unit])

    @classmethod
    def from_key(cls, key: str) -> Window:
        return _window_from_key(key)

    def charge_bucket(self, now: float, flight: float = 0.0) -> int:
        """The bucket a charge made at ``now`` is recorded in; with ``flight``, the bucket of
        the latest moment its outcome can be learned (in flight, it counts from now on)."""
        size = self.bucket_seconds
        return int((now + LATENCY_MARGIN + max(0.0, flight)) // size) * size

    def oldest_counted(self, now: float) -> int:
        """The oldest bucket that counts at ``now`` (newer ones, in flight too, count)."""
        size = self.bucket_seconds
        if self.tz is not None:
            return self._period_start(now) // size * size
        return (int(now // size) - self.seconds // size) * size  # as keep_from, inlined

    def keep_from(self, now: float) -> int:
        """The oldest bucket any window of this unit counts at ``now``, rolling or calendar
        (``KEEP_SECONDS``): older ones can be pruned."""
        size = self.bucket_seconds
        return (int(now // size) - KEEP_SECONDS[self.unit] // size) * size

    def kept_until(self, bucket: int) -> float:
        """The moment no window of this unit counts ``bucket`` any more, rolling or
        calendar: when storage holding nothing newer may expire."""
        return float(bucket + KEEP_SECONDS[self.unit] + self.bucket_seconds)

    def frees_at(self, bucket: int, now: float | None = None) -> float:
        """The moment ``bucket`` stops counting. With ``now``, a bucket still in flight (after
        ``now``'s own) is taken as if its outcome were known now: the soonest it can free."""
        if now is not None:
            bucket = min(bucket, self.charge_bucket(now))
        if self.tz is not None:
            return self._next_period(self._period_start(bucket))
        return float(bucket + self.seconds + self.bucket_seconds)

    def _period_start(self, now: float) -> int:
        assert self.tz is not None
        local = datetime.fromtimestamp(now, _zone(self.tz))
        if self.unit == "month":
            local = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        elif self.unit == "day":
            local = local.replace(hour=0, minute=0, second=0, microsecond=0)
        elif self.unit == "hour":
            local = local.replace(minute=0, second=0, microsecond=0)
        else:
            local = local.replace(second=0, microsecond=0)
        return math.floor(local.timestamp())

    def _next_period(self, start: int) -> float:
        assert self.tz is not None
        if self.unit not in ("day", "month"):
            return float(start + self.seconds)
        zone = _zone(self.tz)
        day = datetime.fromtimestamp(start, zone).date()
        if self.unit == "month":
            day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
        else:
            day += timedelta(days=1)
        return datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()


@lru_cache(maxsize=256)
def _window_from_key(key: str) -> Window:
    unit, _, tz = key.partition("@")
    return Window(unit, tz or None)
