"""Warm-up, interleaved rounds and paired ratios: how every comparison in bench/ is measured.

A variant is a *batch*: a function that makes ``n`` calls and returns the time of each
(``calls`` and ``acalls`` make one from a plain or an async callable). ``compare`` warms
every variant up, then runs ``rounds`` rounds; a round runs every variant for one batch, in
an order shuffled per round, so a slow patch of the machine falls on all the variants of a
round about alike instead of on one row. Per variant it keeps every call's time (for the
median and p10..p90) and each round's median; against the variant's baseline it computes,
round by round, the ratio of the two round medians (paired) and their difference. The
median of those per-round ratios, with their min..max, is the figure to quote: it is
measured on the same machine, in the same minute, and survives a busy machine far better
than two absolute medians taken at different times.
"""

from __future__ import annotations

import asyncio
import gc
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

Batch = Callable[[int], list[float]]


def calls(fn: Callable[[], object]) -> Batch:
    """A batch of ``n`` calls of ``fn``, each timed."""

    def batch(n: int) -> list[float]:
        out, clock = [], time.perf_counter
        for _ in range(n):
            start = clock()
            fn()
            out.append(clock() - start)
        return out

    return batch


def acalls(fn: Callable[[], Awaitable[object]], runner: asyncio.Runner) -> Batch:
    """A batch of ``n`` awaited calls of ``fn`` on ``runner``'s event loop, each timed."""

    async def timed(n: int) -> list[float]:
        out, clock = [], time.perf_counter
        for _ in range(n):
            start = clock()
            await fn()
            out.append(clock() - start)
        return out

    return lambda n: runner.run(timed(n))


@dataclass
class Measured:
    """One variant's times: every call, each round's median, and the paired comparison."""

    name: str
    baseline: str | None
    times: list[float] = field(default_factory=list)
    rounds: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    """Per round: this variant's round median over its baseline's (empty without one)."""
    deltas: list[float] = field(default_factory=list)
    """Per round: this variant's round median minus its baseline's, in seconds."""

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def quantiles(self) -> tuple[float, float]:
        """(p10, p90) over every call; the extremes when there are too few calls."""
        if len(self.times) < 10:
            return min(self.times), max(self.times)
        q = statistics.quantiles(self.times, n=10)
        return q[0], q[-1]

    def spread(self) -> str:
        """``41.5 µs (p10 40.1, p90 45.0)``."""
        p10, p90 = self.quantiles()
        unit, scale = _unit(self.median)
        return (
            f"{_num(self.median * scale)} {unit} (p10 {_num(p10 * scale)}, p90 {_num(p90 * scale)})"
        )

    def ratio(self, invert: bool = False) -> str:
        """``1.03x [0.98..1.10]``: the median per-round ratio and its range; ``invert`` gives
        the baseline's time over this one's (a speed-up)."""
        if self.baseline is None or self.baseline == self.name:
            return "baseline"
        got = [1 / r for r in self.ratios] if invert else self.ratios
        return f"{statistics.median(got):.2f}x [{min(got):.2f}..{max(got):.2f}]"

    def delta(self) -> str:
        """``+175 µs [+120..+230]``: the median per-round difference from the baseline."""
        if self.baseline is None or self.baseline == self.name:
            return "baseline"
        unit, scale = _unit(abs(statistics.median(self.deltas)))
        mid, low, high = (x * scale for x in _mid_range(self.deltas))
        digits = 1 if max(abs(low), abs(high)) < 10 else 0
        return f"{mid:+.{digits}f} {unit} [{low:+.{digits}f}..{high:+.{digits}f}]"


def compare(
    variants: Mapping[str, Batch],
    baseline: str | Mapping[str, str] | None,
    *,
    rounds: int,
    per_round: int,
    warmup: int | None = None,
    seed: int = 0,
) -> dict[str, Measured]:
    """Warm each variant up (``warmup`` calls, by default ``per_round``; 0: none), then run
    ``rounds`` rounds of ``per_round`` calls of every variant, shuffled per round.
    ``baseline`` names the variant every other is compared with, or maps each variant to its
    own."""
    bases = {
        name: baseline if isinstance(baseline, str) or baseline is None else baseline.get(name)
        for name in variants
    }
    out = {name: Measured(name, bases[name]) for name in variants}
    warm = per_round if warmup is None else warmup
    for batch in variants.values():
        if warm:
            batch(warm)
    order, shuffle = list(variants), random.Random(seed).shuffle
    for _ in range(rounds):
        shuffle(order)
        gc.collect()
        for name in order:
            got = variants[name](per_round)
            out[name].times += got
            out[name].rounds.append(statistics.median(got))
    for got in out.values():
        if got.baseline is not None:
            pairs = zip(got.rounds, out[got.baseline].rounds, strict=True)
            for mine, base in pairs:
                got.ratios.append(mine / base)
                got.deltas.append(mine - base)
    return out


def _mid_range(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def _unit(seconds: float) -> tuple[str, float]:
    if seconds >= 1.0:
        return "s", 1.0
    if seconds >= 1e-3:
        return "ms", 1e3
    return "µs", 1e6


def _num(value: float) -> str:
    """Three significant figures or so: 1.23, 12.3, 123, 1234."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
