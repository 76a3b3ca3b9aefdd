"""What the demo shows while it runs: a rich live view on a terminal, plain lines elsewhere.

Both show a :class:`Frame`, the run at one moment: the simulated clock, per endpoint its
bars (from :func:`~llamux._status.status_data`), what it served and its state, and the
journal's events. ``rich`` is imported only by the functions that render.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._status import EndpointData, RuleData, StatusData
from ._demo_journal import Event, clock_text
from ._demo_scenario import CAPACITY, ENDPOINTS
from ._demo_traffic import CALM_PAUSE, CLIENTS, RUSH_PAUSE, Outcome, pace
from ._status_view import bar, bar_style, span, state_text

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table
    from rich.text import Text

LOG_LINES = 7
SNAPSHOT = 30.0
"""Simulated seconds between two status lines of the plain output."""
STYLES = {"down": "yellow", "back": "green", "wait": "yellow", "learned": "cyan", "429": "bold red"}


@dataclass(frozen=True)
class Frame:
    """The run at one moment (``at``: simulated seconds since the start)."""

    at: float
    speed: float
    requests: int
    outcomes: Sequence[Outcome]
    data: StatusData
    waiting: int
    calm: bool
    refused: int
    events: Sequence[Event]

    @property
    def served(self) -> int:
        return sum(o.endpoint is not None for o in self.outcomes)


def intro(console: Console, url: str, requests: int, seconds: float, speed: float) -> None:
    """What the demo is about to do, and on which endpoints."""
    from rich.table import Table

    console.print(
        f"[bold]llamux demo[/]: a fake OpenAI-compatible provider at {url}, as strict as a "
        "real one (a request over a limit gets HTTP 429), on simulated time: the clock runs "
        f"{speed:g}x, a minute passes in {60 / speed:.1f} s. Endpoints, by preference:"
    )
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("", "endpoint", "provider allows", "answers in", "the router's table says"):
        table.add_column(name, no_wrap=name != "the router's table says")
    notes = {"the same": "the same", "auto": "auto (llamux learns them)"}
    for number, e in enumerate(ENDPOINTS, 1):
        note = notes.get(e.written, f"{e.written} (out of date)")
        table.add_row(f"  {number}.", e.name, e.limits, f"{e.latency:.1f} s", note)
    console.print(table)
    console.print(
        f"{CLIENTS} clients send {requests} requests through one Router (store memory://): "
        f"a rush of about {pace(RUSH_PAUSE)} a minute, more than the {CAPACITY} the three "
        f"admit together, then a calm of about {pace(CALM_PAUSE)}. A request waits for "
        f"capacity when all are full (the run is bounded by {seconds:g} s of real time)."
    )
    console.print()


# ------------------------------------------------------------------ plain lines


class PlainView:
    """Plain lines: each event as it happens, and a status line every ``SNAPSHOT``."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._next = 0.0

    def show(self, frame: Frame, fresh: Sequence[Event]) -> None:
        for event in fresh:
            self._line(event.at, event.text)
        if frame.at >= self._next:
            self._line(frame.at, status_line(frame))
            self._next = (frame.at // SNAPSHOT + 1) * SNAPSHOT

    def end(self, frame: Frame) -> None:
        self._line(frame.at, status_line(frame))

    def _line(self, at: float, text: str) -> None:
        """``1:03  text``, a long text wrapped under itself (never inside a word)."""
        head = f"{clock_text(at)}  "
        width = max(len(head) + 20, self.console.width)
        lines = textwrap.wrap(
            text,
            width,
            initial_indent=head,
            subsequent_indent=" " * len(head),
            break_long_words=False,
            break_on_hyphens=False,
        )
        for line in lines:
            self.console.print(line, markup=False, soft_wrap=True)


def status_line(frame: Frame) -> str:
    """``45/90 served · 2 waiting · rpm fast-a 12/12, mid-b 10/10, slow-c 3/8``."""
    rpm = []
    for endpoint in frame.data["endpoints"]:
        rule = next((r for r in endpoint["rules"] if r["rule"] == "rpm"), None)
        if rule is not None:
            limit = "?" if rule["limit"] is None else str(rule["limit"])
            rpm.append(f"{endpoint['id']} {rule['used']}/{limit}")
    head = f"{frame.served}/{frame.requests} served"
    return f"{head} · {frame.waiting} waiting · rpm {', '.join(rpm)}"


# ------------------------------------------------------------------ the live view


def live_view(frame: Frame) -> RenderableType:
    """The header lines, the endpoints' table and the last events."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    phase = f"calm: about {pace(CALM_PAUSE)}" if frame.calm else f"rush: about {pace(RUSH_PAUSE)}"
    phase += " requests a minute"
    head = Text.assemble(
        ("llamux demo", "bold"),
        f"  simulated time {clock_text(frame.at)} ({frame.speed:g}x)  ",
        (phase, "dim"),
    )
    counts = Text.assemble(
        f"{frame.served}/{frame.requests} served · ",
        (f"{frame.waiting} waiting for capacity", "yellow" if frame.waiting else ""),
        " · ",
        (f"{frame.refused} × 429", "green" if frame.refused == 0 else "bold red"),
    )
    panel = Panel(_log(frame.events[-LOG_LINES:]), title="what happened", title_align="left")
    return Group(head, counts, endpoints_table(frame), panel)


def _log(events: Sequence[Event]) -> RenderableType:
    """The last events, each text wrapped under itself."""
    from rich.table import Table
    from rich.text import Text

    if not events:
        return Text("starting…", style="dim")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for event in events:
        grid.add_row(clock_text(event.at), Text(event.text, style=STYLES.get(event.kind, "dim")))
    return grid


def endpoints_table(frame: Frame) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("endpoint", "rpm", "tpm", "served", "state"):
        table.add_column(name, justify="right" if name == "served" else "left", no_wrap=True)
    counts = Counter(o.endpoint for o in frame.outcomes)
    for ep in frame.data["endpoints"]:
        rules = {r["rule"]: r for r in ep["rules"]}
        cells = [
            usage(rules[name], width) if name in rules else Text("-")
            for name, width in (("rpm", 10), ("tpm", 6))
        ]
        table.add_row(ep["id"], *cells, str(counts[ep["id"]]), endpoint_state(ep))
    return table


def usage(rule: RuleData, width: int) -> Text:
    """``██████░░░░ 7/12``; an ``auto`` limit not known yet: ``1 used, auto?``."""
    from rich.text import Text

    limit = rule["limit"]
    if limit is None:
        return Text(f"{rule['used']} used, auto?", style="dim")
    text = Text(bar(rule["used"], limit, width), style=bar_style(rule["used"], limit))
    text.append(f" {rule['used']}/{limit}")
    return text


def endpoint_state(endpoint: EndpointData) -> Text:
    """``ok``, ``full, frees in 12s``, ``learning (1 at a time)``, or the status view's."""
    from rich.text import Text

    rules = endpoint["rules"]
    if endpoint["state"] == "full":
        spent = [r["frees_in"] or 0.0 for r in rules if r["remaining"] == 0]
        return Text(f"full, frees in {span(max(spent, default=0.0))}", style="yellow")
    if endpoint["state"] == "ok" and rules and all(r["limit"] is None for r in rules):
        return Text("learning (1 at a time)", style="cyan")
    text, style = state_text(endpoint)
    return Text(text, style=style)
