"""The progress of ``llamux batch``: items done / total, errors, rate per minute, an ETA
from the remaining items and the quotas' capacity, and per endpoint what it served, what is
in flight and which rule holds it back. A rich Live panel on a terminal, a plain line every
``PLAIN_EVERY`` seconds otherwise; a final summary with the tokens used per endpoint."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO
from zoneinfo import ZoneInfo

from .._policy.rules import UNLIMITED

if TYPE_CHECKING:
    from .._engine.batch import BatchProgress
    from .._status import EndpointStatus

PLAIN_EVERY = 10.0
"""Real seconds between two progress lines without a terminal."""


@dataclass
class Tally:
    """What the command counted: items per endpoint, tokens per endpoint, the start."""

    total: int
    skipped: int
    started: float
    served: Counter[str] = field(default_factory=Counter)
    tokens: Counter[str] = field(default_factory=Counter)
    done: int = 0
    errors: int = 0


def span(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def held_by(row: EndpointStatus) -> tuple[str, float | None, str | None]:
    """The rule (or cool-down) holding an endpoint back now: its name, when it frees, the
    timezone of its reset; ("", None, None) when nothing does."""
    if row.cooldown is not None:
        return f"cooling down ({row.cooldown.reason})", row.cooldown.until, None
    full = [u for u in row.usage if u.limit != UNLIMITED and u.remaining == 0]
    if not full:
        return "", None, None
    worst = max(full, key=lambda u: u.next_free_at or 0.0)
    return worst.rule.name, worst.next_free_at, worst.rule.window.tz


def sustained(row: EndpointStatus) -> float:
    """Requests a second the endpoint admits in the long run (its tightest request rule)."""
    rates = [
        u.limit / u.rule.window.seconds
        for u in row.usage
        if u.rule.metric == "requests" and u.limit != UNLIMITED
    ]
    return min(rates) if rates else 1.0


def eta(remaining: int, rows: Sequence[EndpointStatus], now: float) -> str:
    """When the rest should be done, from the quotas' capacity."""
    if remaining == 0:
        return "done"
    held = [held_by(r) for r in rows]
    rate = sum(sustained(r) for r in rows)
    if held and all(h[0] and h[1] is not None for h in held):
        name, until, tz = min(held, key=lambda h: h[1] or 0.0)
        assert until is not None
        zone = ZoneInfo(tz) if tz else None
        at = datetime.fromtimestamp(until, zone).strftime("%H:%M") + (f" {tz}" if tz else "")
        left = until - now + remaining / rate
        return f"all quotas used ({name}): resumes at {at}, ETA {span(left)}"
    return f"ETA {span(remaining / rate)}"


def lines(
    tally: Tally, progress: BatchProgress, rows: Sequence[EndpointStatus], now: float
) -> list[str]:
    """The progress as text lines: the totals, then one line per endpoint."""
    elapsed = max(1e-9, now - tally.started)
    rate = tally.done * 60 / elapsed
    remaining = tally.total - tally.done
    head = (
        f"{tally.done + tally.skipped}/{tally.total + tally.skipped} done, {tally.errors} errors, "
        f"{rate:.1f}/min, {eta(remaining, rows, now)}"
    )
    out = [head]
    for row in rows:
        name, until, _ = held_by(row)
        why = f", held by {name} for {span(max(0.0, until - now))}" if name and until else ""
        sending = progress.sending.get(row.endpoint.id, 0)
        out.append(
            f"  {row.endpoint.id}: served {tally.served[row.endpoint.id]}, in flight {sending}{why}"
        )
    if progress.waiting:
        out.append(f"  waiting for capacity: {progress.waiting}")
    return out


def summary(tally: Tally) -> list[str]:
    """The final lines: items and tokens per endpoint."""
    out = [f"{tally.done} sent this run ({tally.errors} errors), {tally.skipped} already done"]
    for endpoint, count in sorted(tally.served.items()):
        out.append(f"  {endpoint}: {count} served, {tally.tokens[endpoint]} tokens")
    return out


class PlainView:
    """A progress line every ``every`` real seconds on ``stream``."""

    def __init__(self, stream: TextIO, every: float = PLAIN_EVERY) -> None:
        self.stream, self.every, self._last = stream, every, 0.0

    def show(self, text: list[str], force: bool = False) -> None:
        if force or time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            print("\n".join(text), file=self.stream, flush=True)

    def close(self) -> None:
        pass


class LiveView:
    """A rich Live panel on a terminal."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.live import Live

        self._live = Live(console=Console(file=stream), refresh_per_second=4, transient=False)
        self._live.start()

    def show(self, text: list[str], force: bool = False) -> None:
        from rich.text import Text

        self._live.update(Text("\n".join(text)), refresh=force)

    def close(self) -> None:
        self._live.stop()


def view_for(stream: TextIO, live: bool | None = None) -> Any:
    """The live view on a terminal, else the plain one."""
    terminal = stream.isatty() if live is None else live
    return LiveView(stream) if terminal else PlainView(stream)
