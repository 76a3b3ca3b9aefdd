"""How many requests of a batch to keep going at once: Little's law over the endpoints.

An endpoint that admits ``rate`` requests a second, each answered in ``latency`` seconds,
keeps ``rate * latency`` requests in flight at its full speed (Little's law). A batch keeps
the sum over the endpoints that serve it, with headroom for the spread of latencies, plus
one per endpoint (so that each always has a request ready when capacity returns), bounded.
Pure: what the endpoints admit and how fast they answer are arguments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_LATENCY = 1.0
"""Seconds an endpoint is assumed to take to answer before one of its answers is measured."""
HEADROOM = 2.0
"""Requests kept in flight per request the mean latency holds: latencies spread."""
UNLIMITED_SHARE = 8
"""Requests kept in flight for an endpoint with no request limit (its rate is unknown)."""
MOST = 64
"""The most requests a batch keeps in flight unless told otherwise."""


@dataclass(frozen=True, slots=True)
class Lane:
    """One endpoint as a batch sees it: the most requests it admits in a minute of the
    router's clock (None: no request limit) and its mean latency in real seconds (None:
    not measured yet)."""

    per_minute: int | None
    latency: float | None = None


def concurrency(lanes: Sequence[Lane], *, speed: float = 1.0, most: int = MOST) -> int:
    """Requests to keep in flight so that every lane runs at its full rate: the sum of
    each lane's ``rate * latency``, times ``HEADROOM``, plus one per lane, in ``1..most``.
    ``speed``: clock seconds per real second (a ``ScaledClock`` runs faster than latency)."""
    held = 0.0
    for lane in lanes:
        if lane.per_minute is None:
            held += UNLIMITED_SHARE
            continue
        latency = DEFAULT_LATENCY if lane.latency is None else max(0.0, lane.latency)
        held += HEADROOM * lane.per_minute / 60.0 * speed * latency + 1
    return max(1, min(most, math.ceil(held)))


def per_minute(limits: Sequence[tuple[str, int]]) -> int | None:
    """The most requests an endpoint can admit within one minute, from its rules as
    ``(metric, limit)``: the smallest request limit (a rule over an hour or a day may be
    spent in a minute), None without one."""
    requests = [limit for metric, limit in limits if metric == "requests"]
    return min(requests) if requests else None
