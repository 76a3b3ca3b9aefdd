"""The demo's summary: served per endpoint, 429s, waits, what was learned, the end state."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ._demo_journal import clock_text
from ._demo_report import Report
from ._demo_scenario import CAPACITY, ENDPOINTS, PREFERRED
from ._status_view import span, state_text

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from .._status import EndpointData


def print_summary(console: Console, report: Report, seconds: float) -> None:
    """The summary table, the facts of the run, and the verdict."""
    from rich.markup import escape

    console.print()
    console.print(_table(report))
    console.print(_facts(report))
    if report.ok:
        console.print(f"[green]✓ all {report.requests} requests served without a single 429[/]")
    else:
        console.print(f"[red]✗ {escape(_failure(report, seconds))}[/]")


def _table(report: Report) -> Table:
    from rich import box
    from rich.table import Table

    took = (
        f"summary: {clock_text(report.simulated)} simulated, {report.wall:.1f} s real "
        f"({report.speed:g}x)"
    )
    table = Table(title=took, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD)
    for name in ("endpoint", "provider allows", "table said", "served", "429s"):
        table.add_column(name, justify="right" if name in ("served", "429s") else "left")
    served = report.served_by()
    for e in ENDPOINTS:
        stats = report.stats[e.name]
        table.add_row(e.name, e.limits, e.written, str(served[e.name]), str(stats.refused))
    table.add_row("total", "", "", str(report.served), str(report.refused), style="bold")
    return table


def _facts(report: Report) -> Table:
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column()
    failed = f", {report.failed_over} failed over" if report.failed_over else ""
    grid.add_row("requests served", f"{report.served}/{report.requests}{failed}")
    grid.add_row("429s from the provider", _refusals(report))
    grid.add_row("waited for capacity", _waits(report))
    back = [e for e in report.kinds("back") if e.endpoint == PREFERRED]
    if back:
        times = "once" if len(back) == 1 else f"{len(back)} times"
        when = ", ".join(clock_text(e.at) for e in back)
        grid.add_row(f"back on {PREFERRED}", f"{times} ({when}), when its minute window rolled")
    for number, line in enumerate(_learned(report)):
        grid.add_row("learned" if number == 0 else "", line)
    for number, line in enumerate(report.warnings):
        grid.add_row("llamux warned" if number == 0 else "", line)
    for number, endpoint in enumerate(report.final["endpoints"]):
        grid.add_row("at the end" if number == 0 else "", _end_state(endpoint))
    return grid


def _refusals(report: Report) -> str:
    if report.refused == 0:
        return "0: no request was ever sent over a limit"
    return f"{report.refused}: the provider refused what llamux let through (a bug: report it)"


def _waits(report: Report) -> str:
    waits = report.waits()
    if not waits:
        return "no request had to wait"
    average = sum(waits) / len(waits)
    return (
        f"{len(waits)} of {report.requests} requests, {average:.0f} s on average, "
        f"{max(waits):.0f} s at most"
    )


def _learned(report: Report) -> list[str]:
    """``mid-b rpm 5 (the table said 15)``, per endpoint whose limits the provider stated
    below the table's or in place of ``auto``."""
    lines = []
    tables = {e.name: e.table for e in ENDPOINTS}
    for name, rules in report.learned().items():
        said = tables.get(name, {})
        parts = [f"{rule} {limit}" for rule, (limit, _) in rules.items()]
        told = " · ".join(said.get(rule, "?") for rule in rules)
        if all(origin == "learned" for _, origin in rules.values()):
            told = "auto"
        lines.append(f"{name} {' · '.join(parts)} (the table said {told})")
    return lines


def _end_state(endpoint: EndpointData) -> str:
    """``fast-a  ok, 7/12 requests in the last minute``; a full or resting endpoint says
    when it frees and why."""
    name, state = endpoint["id"], endpoint["state"]
    rpm = next((r for r in endpoint["rules"] if r["rule"] == "rpm"), None)
    used = "" if rpm is None else f"{rpm['used']}/{rpm['limit'] or '?'} requests in the last minute"
    if state == "ok":
        idle = rpm is not None and rpm["used"] == 0
        return f"{name:<7} ok, idle" if idle or not used else f"{name:<7} ok, {used}"
    if state == "full":
        spent = [r["frees_in"] or 0.0 for r in endpoint["rules"] if r["remaining"] == 0]
        return f"{name:<7} full ({used}), frees in {span(max(spent, default=0.0))}"
    return f"{name:<7} {state_text(endpoint)[0]}"


def _failure(report: Report, seconds: float) -> str:
    if report.served == report.requests:
        return f"the provider answered {report.refused} × HTTP 429"
    unserved = [o.error for o in report.outcomes if o.endpoint is None]
    text = f"{report.requests - report.served} of {report.requests} requests not served"
    if unserved:
        text += f": {unserved[0]}"
    needed = math.ceil((report.requests / CAPACITY + 2) * 60 / report.speed)
    if needed > seconds:
        text += (
            f" (the endpoints admit {CAPACITY} a minute, {60 / report.speed:g} s of real "
            f"time: give --seconds {needed})"
        )
    return text
