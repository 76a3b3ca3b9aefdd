"""Measured speed per endpoint: latency, output tokens per second, time to first token.

Kept in the store as exponentially weighted averages, so that every process and machine
that shares the store shares what was measured. Pure arithmetic here; stores persist it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .tokens import completion_tokens

ALPHA = 0.3
"""Weight of a new sample in the moving average."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One call's measurements; ``None`` where it measured nothing (e.g. no ttft unstreamed)."""

    latency: float | None = None
    tokens_per_second: float | None = None
    ttft: float | None = None


@dataclass(frozen=True, slots=True)
class Performance:
    """An endpoint's moving averages and how many samples built them."""

    latency: float | None = None
    tokens_per_second: float | None = None
    ttft: float | None = None
    samples: int = 0


def ewma(old: float | None, new: float | None, alpha: float = ALPHA) -> float | None:
    """The moving average after ``new``: unchanged if nothing new, ``new`` if nothing old."""
    if new is None:
        return old
    if old is None:
        return new
    return old + alpha * (new - old)


def fold(old: Performance | None, sample: Sample) -> Performance:
    """``old`` with ``sample`` folded in."""
    old = old or Performance()
    return Performance(
        ewma(old.latency, sample.latency),
        ewma(old.tokens_per_second, sample.tokens_per_second),
        ewma(old.ttft, sample.ttft),
        old.samples + 1,
    )


def measured(elapsed: float, usage: Any, ttft: float | None) -> Sample:
    """A call's speed: its latency, time to first token (streams) and output tokens per
    second of generation, from its usage."""
    completion = completion_tokens(usage)
    generating = elapsed - (ttft or 0.0)
    tps = completion / generating if completion and generating > 0 else None
    return Sample(latency=elapsed, tokens_per_second=tps, ttft=ttft)
