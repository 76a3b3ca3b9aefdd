"""What ``llamux status`` shows: :func:`~llamux._status.status_data` for people.

A table (endpoint, rule, used, left, frees in, speed, state) when it fits the screen: boxed
on a terminal, plain aligned columns in a pipe or a file (never wrapped there unless
``COLUMNS`` says so). When it does not fit, each endpoint gets a line of its own with its
rules under it. An endpoint id is never broken: it is shortened in its middle (``…``) only
when the screen is narrower than the id itself. Numbers are compact (``12k``, ``1.0M``), as
on the dashboard; a bar draws a cell only for a share that rounds to it (eighths of a cell).

``bar``, ``bar_style``, ``span`` and ``state_text`` are also the demo's. No ``rich`` here:
the layout is computed (``_grid``), so that nothing is ever wrapped inside a word.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from .._policy.money import dollars
from .._policy.rules import USD
from .._status import EndpointData, InFlightData, PerformanceData, RuleData, StatusData
from ._grid import Cell, Column, Line, Row, fit, render, text_cell
from ._screen import Screen, middle_ellipsis, pad, width_of, wrap

BAR_WIDTH = 10
REASON_CHARS = 70
EIGHTHS = "▏▎▍▌▋▊▉"
PAINT = re.compile(r"\x1b\[[0-9;]*m")
COLUMNS = (
    Column("endpoint", wraps=True, cuts=False),
    Column("rule"),
    Column("used"),
    Column("left", right=True),
    Column("frees in"),
    Column("speed", wraps=True),
    Column("state", wraps=True),
)


# ------------------------------------------------------------------ text helpers


def compact(n: int) -> str:
    """``980``, ``9999``, ``12k``, ``1.0M``, ``15M``: the dashboard's ``compact()``."""
    if n >= 10_000_000:  # rounded half up, as JavaScript's toFixed
        return f"{math.floor(n / 1e6 + 0.5)}M"
    if n >= 1_000_000:
        return f"{math.floor(n / 1e5 + 0.5) / 10:.1f}M"
    if n >= 10_000:
        return f"{math.floor(n / 1e3 + 0.5)}k"
    return str(n)


def used_of(used: int, limit: int) -> str:
    """``12k/1.0M``; never the same figure twice unless the rule is full (59.9k/60k)."""
    shown, most = compact(used), compact(limit)
    if shown == most and used < limit:
        shown = f"{math.floor(used / 100) / 10:.1f}k" if used >= 10_000 else str(used)
        shown = str(used) if shown == most else shown
    return f"{shown}/{most}"


def span(seconds: float) -> str:
    """A short duration: ``14s``, ``12m``, ``23h``, ``3d``."""
    s = max(0, math.ceil(seconds))
    if s < 90:
        return f"{s}s"
    if s < 90 * 60:
        return f"{round(s / 60)}m"
    if s < 48 * 3600:
        return f"{round(s / 3600)}h"
    return f"{round(s / 86400)}d"


def bar(used: int, limit: int, width: int = BAR_WIDTH, unicode: bool = True) -> str:
    """``██▋░░░░░░░``: the used share of ``limit`` in eighths of a cell, rounded; a share
    that rounds to nothing draws nothing (2/900), and only a full rule fills the bar."""
    share = 1.0 if limit <= 0 else min(1.0, used / limit)
    steps = 8 if unicode else 1
    filled = round(share * width * steps)
    if used < limit:
        filled = min(filled, width * steps - 1)
    whole, part = divmod(filled, steps)
    drawn = ("█" if unicode else "#") * whole + (EIGHTHS[part - 1] if part else "")
    return drawn + ("░" if unicode else "-") * (width - len(drawn))


def bar_style(used: int, limit: int) -> str:
    if limit <= 0 or used >= limit:
        return "red"
    return "yellow" if used / limit >= 0.7 else "green"


def speed_text(perf: PerformanceData | None) -> str:
    """``0.84s · 120 tok/s`` (time to first token too when streams were measured)."""
    if perf is None or perf["latency"] is None:
        return ""
    parts = [f"{perf['latency']:.2f}s"]
    if perf["ttft"] is not None:
        parts.append(f"ttft {perf['ttft']:.2f}s")
    if perf["tokens_per_second"] is not None:
        parts.append(f"{perf['tokens_per_second']:.0f} tok/s")
    return " · ".join(parts)


def in_flight_text(flight: InFlightData | None) -> list[str]:
    """``["2/2 in flight"]`` for a scope with a concurrency limit, else nothing."""
    return [] if flight is None else [f"{flight['in_flight']}/{flight['limit']} in flight"]


def state_text(endpoint: EndpointData) -> tuple[str, str]:
    """(text, style) of an endpoint's state, for people."""
    state, cooling = endpoint["state"], endpoint["cooldown"]
    if state == "no_key":
        return f"no key (set {endpoint['api_key_env']})", "red"
    if cooling is not None and state == cooling["kind"]:
        reason = cooling["reason"]
        if len(reason) > REASON_CHARS:  # cut between words (status --json has it whole)
            cut = reason[: REASON_CHARS - 1]
            reason = (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "…"
        style = "red" if state == "disabled" else "yellow"
        return f"{state} {span(cooling['seconds'])}: {reason}", style
    if state == "full":
        return f"full ({_full_rules(endpoint['rules'])})", "yellow"
    if state == "busy":
        flight = endpoint["concurrency"]
        held = "its pool's" if flight is None else f"{flight['in_flight']}/{flight['limit']}"
        return f"busy ({held} in flight; frees as calls end)", "yellow"
    return "ok", "green"


def _full_rules(rules: Sequence[RuleData]) -> str:
    full = [r for r in rules if r["remaining"] == 0]
    if not full:
        return "its pool is full"
    soonest = max((r["frees_in"] or 0.0) for r in full)
    return f"{', '.join(r['rule'] for r in full)}; frees in {span(soonest)}"


def usage_line(rule: RuleData, unicode: bool = True, figures: int = 0) -> Line:
    """``██▋░░░░░░░ 12/30`` with the bar's style (the figures right-aligned in ``figures``
    columns); an ``auto`` limit not known yet shows its usage and ``auto?``; a limit the
    provider stated is marked ``(provider)``."""
    limit = rule["limit"]
    if limit is None:
        shown = "no limit" if rule["origin"] == "none" else "auto?"
        return ((f"{compact(rule['used'])} used, {shown}", "dim"),)
    line: Line = (
        (bar(rule["used"], limit, unicode=unicode), bar_style(rule["used"], limit)),
        (" " + pad(figures_of(rule), figures, right=True), ""),
    )
    if rule["origin"] in ("learned", "tightened"):
        line += ((" (provider)", "dim"),)
    return line


def _left(rule: RuleData) -> str:
    if rule["remaining"] is None:
        return ""
    return dollars(rule["remaining"]) if rule["metric"] == USD else compact(rule["remaining"])


def _frees(rule: RuleData) -> str:
    frees = rule["frees_in"]
    return "" if frees is None or rule["used"] == 0 else span(frees)


# ------------------------------------------------------------------ the two layouts


def _groups(data: StatusData) -> list[tuple[str, str, list[RuleData], tuple[str, str], str]]:
    """(id, sub-line, rules, (state, style), speed) of each endpoint, then of each pool.
    The sub-line names the key variable of endpoints that differ by it alone (a key list)."""
    out = []
    servers = Counter((ep["base_url"], ep["model"]) for ep in data["endpoints"])
    for ep in data["endpoints"]:
        id_, provider, model = ep["id"], ep["provider"], ep["model"]
        parts = [] if id_ == f"{provider}:{model}" else [f"{provider} · {model}"]
        if servers[ep["base_url"], model] > 1:
            parts.append(f"key ${ep['api_key_env']}")
        parts += in_flight_text(ep.get("concurrency"))
        under = " · ".join(parts)
        out.append((id_, under, ep["rules"], state_text(ep), speed_text(ep["performance"])))
    for pool in data["pools"]:
        under = " · ".join(
            ["shared by " + ", ".join(pool["endpoints"]), *in_flight_text(pool.get("concurrency"))]
        )
        out.append((f"pool:{pool['name']}", under, pool["rules"], ("", ""), ""))
    return out


def table_rows(data: StatusData, screen: Screen) -> tuple[list[Column], list[Row]]:
    """The table's columns (speed only if any was measured) and rows: one per rule."""
    groups = _groups(data)
    limited = [r for g in groups for r in g[2] if r["limit"] is not None]
    figures = max((width_of(plain_usage(r)) for r in limited), default=0)
    rows: list[Row] = []
    for id_, under, rules, (state, style), speed in groups:
        sub = text_cell(f"  {under}" if under else "", style="dim")  # indented: not an id
        heads: list[Cell] = [text_cell(id_), sub]
        if len(rules) < 2:
            heads = [heads[0] + heads[1]]
        for n, rule in enumerate(rules or [None]):
            cells: list[Cell] = [heads[n] if n < len(heads) else ()]
            if rule is None:
                cells += [text_cell("-"), text_cell("no limits"), (), ()]
            else:
                used = usage_line(rule, screen.unicode, figures)
                cells += [text_cell(rule["rule"]), (used,), text_cell(_left(rule))]
                cells.append(text_cell(_frees(rule)))
            cells += [
                text_cell(speed if n == 0 else ""),
                text_cell(state if n == 0 else "", style=style),
            ]
            rows.append(Row(tuple(cells), end_section=n == max(len(rules), 1) - 1))
    if not any(g[4] for g in groups):  # nothing measured yet: no speed column
        return [c for c in COLUMNS if c.header != "speed"], [_drop(row, 5) for row in rows]
    return list(COLUMNS), rows


def _drop(row: Row, index: int) -> Row:
    return Row(row.cells[:index] + row.cells[index + 1 :], row.end_section)


def stacked(data: StatusData, screen: Screen) -> list[str]:
    """Each endpoint on a line of its own (its state after it, or under it if it does not
    fit), its sub-line and speed dimmed, then one aligned line per rule (without bars if
    they do not fit)."""
    width, groups = screen.width, _groups(data)
    rules = [rule for g in groups for rule in g[2]]
    parts = [(r["rule"], plain_usage(r), _left(r), _frees(r)) for r in rules if r["limit"]]
    most = [max((width_of(p[i]) for p in parts), default=0) for i in range(4)]
    longest = 4 + most[0] + most[1] + (most[2] + 7 if most[2] else 0)
    longest += most[3] + 11 if most[3] else 0
    bars = width is None or longest + BAR_WIDTH + 2 <= width
    lines: list[str] = []
    for id_, under, group, (state, style), speed in groups:
        name = id_ if width is None else middle_ellipsis(id_, width)
        if state and (width is None or width_of(name) + 2 + width_of(state) <= width):
            lines.append(f"{screen.paint(name, 'bold')}  {screen.paint(state, style)}")
        else:
            lines.append(screen.paint(name, "bold"))
            lines += [screen.paint(t, style) for t in _indented(state, width)]
        for extra in (under, speed):
            lines += [screen.paint(t, "dim") for t in _indented(extra, width)]
        lines += [_rule_line(rule, most, screen, bars) for rule in group]
        if not group:
            lines.append("  no limits")
    return lines


def _indented(text: str, width: int | None) -> list[str]:
    """``text`` under a heading: indented by two, wrapped between words."""
    if not text:
        return []
    return wrap(f"  {text}", width, indent="  ")


def plain_usage(rule: RuleData) -> str:
    """The used figures of a rule without its bar: ``12/30``, ``3 used, auto?``."""
    if rule["limit"] is None:
        return "".join(t for t, _ in usage_line(rule))
    return figures_of(rule)


def figures_of(rule: RuleData) -> str:
    """A limited rule's used figures: ``12/30``, or ``$0.42/$1.00`` for a dollar budget."""
    limit = rule["limit"]
    assert limit is not None
    if rule["metric"] == USD:
        return f"{dollars(rule['used'])}/{dollars(limit)}"
    return used_of(rule["used"], limit)


def _rule_line(rule: RuleData, most: Sequence[int], screen: Screen, bars: bool) -> str:
    """``  rpm  ██▋░░░░░░░   12/30   18 left  frees in 41s``: its parts aligned with the
    other rules'; on a screen too narrow for them, continued under the figures."""
    limit, used = rule["limit"], rule["used"]
    head = f"  {pad(rule['rule'], most[0])}"
    if limit is None:  # an auto limit not known yet: its usage where the bar would be
        return f"{head}  {plain_usage(rule)}"
    parts = [pad(plain_usage(rule), most[1], right=True)]
    if bars:
        parts.insert(
            0, screen.paint(bar(used, limit, unicode=screen.unicode), bar_style(used, limit))
        )
    left, frees = _left(rule), _frees(rule)
    if most[2]:
        parts.append(f"{pad(left, most[2], right=True)} left" if left else " " * (most[2] + 5))
    if frees:
        parts.append(f"frees in {frees}")
    lines, line = [], head
    for part in parts:  # the parts never split; a screen too narrow gets them on more lines
        wide = width_of(_unpainted(line)) + 2 + width_of(_unpainted(part).rstrip())
        if screen.width is not None and wide > screen.width:
            lines.append(line.rstrip())
            line = " " * (len(head) + 2) + part.lstrip()
        else:
            line += "  " + part
    lines.append(line.rstrip())
    return "\n".join(lines)


def _unpainted(text: str) -> str:
    return PAINT.sub("", text)


def status_lines(data: StatusData, screen: Screen) -> list[str]:
    """The whole view for ``screen``: title, table (or stacked endpoints), warnings."""
    boxed = screen.tty
    columns, rows = table_rows(data, screen)
    widths = fit(columns, rows, screen.width, boxed)
    lines = [screen.paint("llamux status", "bold")] if screen.tty else []
    if widths is not None:
        lines += render(columns, rows, widths, screen, boxed)
    else:
        lines += stacked(data, screen)
    for warning in data["warnings"]:
        for text in wrap(f"warning: {warning}", screen.width, indent="  ", cut=False):
            lines.append(screen.paint(text, "yellow"))
    return lines


def print_status(data: StatusData, screen: Screen | None = None) -> None:
    """Print the status view to stdout (for ``screen``, else stdout's own)."""
    import sys

    screen = screen or Screen.of(sys.stdout)
    print("\n".join(status_lines(data, screen)))
