"""Noticing that a Redis store lost data: a restart without persistence or from an older
snapshot, a failover to a replica that lagged, a flush, an eviction.

Each hash tag (a pool, or an endpoint's own quota: see ``redis.py``) has a count of the
reservations written on it, ``P:{T}:w``, raised by the reserve script in the same atomic
step as the charge and returned with its answer. Every process remembers the last count it
saw per tag; a count that is not above it means writes this process saw are gone, on that
tag's node alone (a cluster may lose one master's data while the others keep theirs). The
store then logs a warning and writes a note, ``P:lost`` (tag -> when it was noticed, the
counts), that ``status`` shows in any process until the longest window has passed or
``reset`` clears it.

What it cannot notice: a loss before any process that had seen the count reserves again on
that tag (a process started after the loss sees a fresh store), or, after a failover that
lost a few writes, a process whose last count was overtaken by other processes' writes.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("llamux")

WRITES_KEPT = 32 * 86400
"""Seconds a tag's count of writes lives after its last reservation (longer than any window
and any bucket hash, so it never expires while the usage it vouches for still counts)."""
NOTE_KEPT = 32 * 86400
"""Seconds a note of lost data is shown after it was written: past the longest window, what
was forgotten no longer counts anyway."""


class Losses:
    """The count of writes this process last saw on each tag of a store (``url`` masked,
    keys under ``namespace``), and the notes of lost data in it."""

    def __init__(self, url: str, namespace: str) -> None:
        self.url = url
        self.key = f"{namespace}:lost"
        self._seen: dict[str, tuple[int, float]] = {}

    def saw(self, client: Any, tag: str, count: int, now: float) -> None:
        """A reservation on ``tag`` returned ``count``: if it went back, warn and write a
        note (``now``: the caller's clock, as shown)."""
        before = self.went_back(tag, count)
        if before is None:
            return
        note = json.dumps([now, before, count])
        log.warning("%s", self.message(tag, note))
        pipe = client.pipeline(transaction=False)
        pipe.hset(self.key, tag, note)
        pipe.pexpire(self.key, int(NOTE_KEPT * 1000))
        pipe.execute()

    def notes(self, client: Any) -> list[str]:
        """A line for each tag whose loss is noted, the oldest first."""
        found: dict[str, str] = client.hgetall(self.key)
        lines = [(value, self.message(tag, value)) for tag, value in found.items()]
        return [line for _, line in sorted(lines) if line is not None]

    def went_back(self, tag: str, count: int) -> int | None:
        """Record the count a reservation on ``tag`` returned; the count seen before if this
        one is not above it (the server lost writes), else None."""
        seen = time.monotonic()
        before = self._seen.get(tag)
        if len(self._seen) > 4096:  # tags come from a config: this is a safety net
            self._seen.clear()
        self._seen[tag] = (count, seen)
        if before is None or seen - before[1] > WRITES_KEPT / 2:
            return None  # never seen, or so long ago that the count may have expired
        return before[0] if count <= before[0] else None

    def message(self, tag: str, value: str) -> str | None:
        """The warning for a note (None if it is not one llamux wrote)."""
        try:
            at, before, after = json.loads(value)
            when = datetime.fromtimestamp(float(at), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        except (ValueError, TypeError, OverflowError):
            return None
        return (
            f"the Redis store {self.url} lost its data of quota {tag!r}, noticed at {when} "
            f"(its count of writes went back from {before} to {after}): the server restarted "
            "without persistence or from an older snapshot, failed over to a replica that "
            "lagged, or was flushed. The usage counted there before is forgotten, so llamux "
            "may admit what the provider still counts until its rate-limit headers tighten "
            "it. Run Redis with appendonly yes and appendfsync everysec to keep quotas "
            "across restarts; llamux reset clears this note."
        )
