"""Speed samples held by a process between two writes to the state file.

A call's speed sample (``Sample``) is folded into its endpoint's moving averages in the same
step as the settle, but at most once a second per endpoint: the samples of the calls in
between are held here and written, in order, with the next due settle (or at ``close``). So
most settles write one table fewer. This process's own readings (``merged``) fold in what it
holds; other processes see it within a second, which a speed ranking does not notice.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from .._policy.performance import Performance, Sample, fold

WRITE_EVERY = 1.0
"""Seconds between two writes of one endpoint's samples by one process."""
HELD_MOST = 64
"""Samples held per endpoint at most: past it they are written whatever the time."""


@dataclass(frozen=True)
class Claim:
    """What one settle takes on: ``batch`` to write now (empty: ``sample`` is held)."""

    endpoint: str
    sample: Sample
    batch: tuple[Sample, ...]
    written_before: float | None


class HeldSamples:
    """Per endpoint, the samples not yet written and when they last were (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, list[Sample]] = {}
        self._written: dict[str, float] = {}

    def claim(self, endpoint: str, sample: Sample, now: float) -> Claim:
        """Hold ``sample``, or take it with every held one to write now if a second has
        passed since this endpoint's last write (or too many are held)."""
        with self._lock:
            held = self._held.get(endpoint, [])
            before = self._written.get(endpoint)
            if before is None or now - before >= WRITE_EVERY or len(held) >= HELD_MOST:
                self._held.pop(endpoint, None)
                self._written[endpoint] = now
                return Claim(endpoint, sample, (*held, sample), before)
            self._held.setdefault(endpoint, []).append(sample)
            return Claim(endpoint, sample, (), before)

    def undo(self, claim: Claim) -> None:
        """The settle that made ``claim`` failed (it will be repeated with its sample): put
        back what it took, drop what it held."""
        with self._lock:
            held = self._held.setdefault(claim.endpoint, [])
            if claim.batch:
                held[:0] = claim.batch[:-1]
                if claim.written_before is None:
                    self._written.pop(claim.endpoint, None)
                else:
                    self._written[claim.endpoint] = claim.written_before
            elif claim.sample in held:
                held.reverse()
                held.remove(claim.sample)  # its last occurrence
                held.reverse()
            if not held:
                del self._held[claim.endpoint]

    def merged(self, rows: Mapping[str, Performance]) -> dict[str, Performance]:
        """``rows`` (read from the file) with this process's held samples folded in."""
        out = dict(rows)
        with self._lock:
            for endpoint, held in self._held.items():
                for sample in held:
                    out[endpoint] = fold(out.get(endpoint), sample)
        return out

    def take_all(self) -> dict[str, list[Sample]]:
        """Every held sample (to write at close), forgetting them."""
        with self._lock:
            held, self._held = self._held, {}
            return held

    def forget(self, endpoint: str | None = None) -> None:
        """Drop held samples: of ``endpoint``, or all (a reset)."""
        with self._lock:
            if endpoint is None:
                self._held.clear()
                self._written.clear()
            else:
                self._held.pop(endpoint, None)
                self._written.pop(endpoint, None)
