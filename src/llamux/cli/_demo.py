"""``llamux demo``: a real Router routes requests to local fake providers on simulated time.

Three fake endpoints on 127.0.0.1 (see ``_demo_scenario``) enforce their limits strictly:
any request over a limit gets an HTTP 429. The fake provider and the router share one clock
that runs ``SPEED`` times faster than real time (the router's waits for capacity really take
1/SPEED of their simulated length), so minute windows fill and roll within seconds. A few
clients send a rush of requests, more than the endpoints admit together, then a calm:
traffic moves down the preference order, waits when all is full, flows back to the preferred
endpoint when its window rolls; one endpoint's table row is wrong and one is ``auto``, and
llamux keeps to what the provider states from the first answer on. Nothing is written to
disk (the store is ``memory://``); the only change to the environment is a dummy key
variable, set for the demo and restored after. llamux's warnings are collected during the
run and shown in the summary, so they do not break the live view.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

from .._config.load import parse_table
from .._router import Router
from .._status import status_data
from ..testing._provider import FakeProvider
from ._demo_journal import Event, Journal
from ._demo_report import Report
from ._demo_scenario import ENDPOINTS, KEY, KEY_ENV, SPEED, table_text
from ._demo_summary import print_summary
from ._demo_traffic import Traffic, WaitingClock
from ._demo_view import Frame, PlainView, intro, live_view

if TYPE_CHECKING:
    from rich.console import Console

TICK = 0.05
"""Real seconds between two looks at the run (one simulated second at 20x)."""


def run_demo(
    requests: int = 90, seconds: float = 20.0, console: Console | None = None, speed: float = SPEED
) -> int:
    """Run the demo; 0 if every request was served and the provider refused none.

    ``seconds`` bounds the run in real seconds (waits for capacity included); the clock runs
    ``speed`` times faster.
    """
    from rich.console import Console

    console = console or Console(highlight=False)
    report = play(requests, seconds, console, speed)
    print_summary(console, report, seconds)
    return 0 if report.ok else 1


def play(requests: int, seconds: float, console: Console, speed: float = SPEED) -> Report:
    """Run the demo's traffic, showing it on ``console``; what happened, as data."""
    import openai  # noqa: F401  (loaded now, not while the clock runs)

    clock = WaitingClock(speed)
    fakes = [e.fake(speed) for e in ENDPOINTS]
    with (
        _demo_key(),
        _collected_warnings() as warnings,
        FakeProvider(fakes, clock=clock.now) as fake,
    ):
        intro(console, fake.url, requests, seconds, speed)
        table = parse_table(table_text(fake.base_url), "<demo>")
        with Router(table, store="memory://", clock=clock) as router:
            run = _Run(router, fake, Traffic(router, clock, requests, seconds * speed))
            started = time.monotonic()
            run.show(console)
            wall = time.monotonic() - started
            final = status_data(router)
        stats = {e.name: fake.stats(e.name) for e in ENDPOINTS}
    return Report(
        requests=requests,
        speed=speed,
        outcomes=tuple(run.traffic.outcomes()),
        stats=stats,
        events=tuple(run.journal.events),
        final=final,
        warnings=tuple(warnings),
        simulated=run.traffic.now(),
        wall=wall,
    )


class _Run:
    """One run as it goes: the traffic, the journal of its events, and frames to show."""

    def __init__(self, router: Router, fake: FakeProvider, traffic: Traffic) -> None:
        self.router, self.fake, self.traffic = router, fake, traffic
        tables = {e.name: e.table for e in ENDPOINTS}
        self.journal = Journal([e.name for e in ENDPOINTS], tables)

    def step(self) -> tuple[Frame, list[Event]]:
        """The run now, and the events found since the last step."""
        traffic = self.traffic
        outcomes = traffic.outcomes()
        frame = Frame(
            at=traffic.now(),
            speed=traffic.clock.speed,
            requests=traffic.requests,
            outcomes=outcomes,
            data=status_data(self.router),
            waiting=traffic.clock.sleeping,
            calm=traffic.calm_since is not None,
            refused=sum(self.fake.stats(e.name).refused for e in ENDPOINTS),
            events=(),
        )
        fresh = self.journal.update(
            frame.at, outcomes, frame.data, frame.waiting, traffic.calm_since, frame.refused
        )
        return replace(frame, events=tuple(self.journal.events)), fresh

    def show(self, console: Console) -> None:
        """Drive the traffic, live on a terminal, else as plain lines."""
        if console.is_terminal and not console.is_dumb_terminal:
            from rich.live import Live

            with Live(console=console, refresh_per_second=10) as live:
                self.traffic.drive(lambda: live.update(live_view(self.step()[0])), TICK)
            return
        view = PlainView(console)
        self.traffic.drive(lambda: view.show(*self.step()), TICK)
        view.end(self.step()[0])


@contextlib.contextmanager
def _demo_key() -> Iterator[None]:
    """Set the dummy key variable for the demo only, then put back what was there."""
    previous = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = KEY
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(KEY_ENV, None)
        else:
            os.environ[KEY_ENV] = previous


@contextlib.contextmanager
def _collected_warnings() -> Iterator[list[str]]:
    """llamux's log records of the demo, kept (not printed) for its summary."""
    collected: list[str] = []

    def keep(record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            collected.append(record.getMessage())
        return False

    logger = logging.getLogger("llamux")
    logger.addFilter(keep)
    try:
        yield collected
    finally:
        logger.removeFilter(keep)
