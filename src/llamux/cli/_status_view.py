"""What ``llamux status`` shows: the rich table of :func:`~llamux._status.status_data`.

``rich`` is imported only by the functions that render.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._status import EndpointData, PerformanceData, RuleData, StatusData

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

BAR_WIDTH = 10
REASON_CHARS = 70


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


# ------------------------------------------------------------------ text helpers


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


def bar(used: int, limit: int, width: int = BAR_WIDTH) -> str:
    """``████░░░░░░``: the used share of ``limit`` (any use shows at least one block)."""
    share = 1.0 if limit <= 0 else min(1.0, used / limit)
    filled = round(share * width)
    if used > 0 and filled == 0:
        filled = 1
    return "█" * filled + "░" * (width - filled)


def bar_style(used: int, limit: int) -> str:
    if limit <= 0 or used >= limit:
        return "red"
    return "yellow" if used / limit >= 0.7 else "green"


def state_text(endpoint: EndpointData) -> tuple[str, str]:
    """(text, style) of an endpoint's state, for people."""
    state, cooling = endpoint["state"], endpoint["cooldown"]
    if state == "no_key":
        return f"no key (set {endpoint['api_key_env']})", "red"
    if cooling is not None and state == cooling["kind"]:
        reason = cooling["reason"]
        if len(reason) > REASON_CHARS:
            reason = reason[: REASON_CHARS - 1] + "…"
        style = "red" if state == "disabled" else "yellow"
        return f"{state} {span(cooling['seconds'])}: {reason}", style
    if state == "full":
        return f"full ({_full_rules(endpoint['rules'])})", "yellow"
    return "ok", "green"


def _full_rules(rules: Sequence[RuleData]) -> str:
    full = [r for r in rules if r["remaining"] == 0]
    if not full:
        return "its pool is full"
    soonest = max((r["frees_in"] or 0.0) for r in full)
    return f"{', '.join(r['rule'] for r in full)}; frees in {span(soonest)}"


# ------------------------------------------------------------------ rendering


def usage_text(rule: RuleData) -> Text:
    """``████░░░░░░ 12/30`` with the bar coloured by how full it is; an ``auto`` limit
    not known yet shows its usage and ``auto?``."""
    from rich.text import Text

    limit = rule["limit"]
    if limit is None:
        shown = "no limit" if rule["origin"] == "none" else "auto?"
        return Text(f"{rule['used']} used, {shown}", style="dim")
    text = Text(bar(rule["used"], limit), style=bar_style(rule["used"], limit))
    text.append(f" {rule['used']}/{limit}")
    if rule["origin"] in ("learned", "tightened"):
        text.append(" (provider)", style="dim")
    return text


def status_table(data: StatusData) -> Table:
    """One row per endpoint and rule, then one per pool rule.

    The provider and model show (dimmed, under the id) only when the id is not already
    ``provider:model``.
    """
    from rich.table import Table

    table = Table(title="llamux status", title_justify="left", header_style="bold")
    for name in ("endpoint", "rule", "used", "left", "frees in", "speed", "state"):
        wraps = name in ("endpoint", "state")
        table.add_column(
            name, no_wrap=not wraps, overflow="fold", justify="right" if name == "left" else "left"
        )
    for endpoint in data["endpoints"]:
        id_, provider, model = endpoint["id"], endpoint["provider"], endpoint["model"]
        under = "" if id_ == f"{provider}:{model}" else f"{provider} · {model}"
        speed = speed_text(endpoint["performance"])
        _add_rows(table, (id_, under), endpoint["rules"], state_text(endpoint), speed)
    for pool in data["pools"]:
        under = "shared by " + ", ".join(pool["endpoints"])
        _add_rows(table, (f"pool:{pool['name']}", under), pool["rules"], ("", ""), "")
    return table


def _add_rows(
    table: Table,
    names: tuple[str, str],
    rules: list[RuleData],
    state: tuple[str, str],
    speed: str,
) -> None:
    """The rows of one endpoint or pool: its id first, its dimmed sub-line second."""
    from rich.text import Text

    state_cell = Text(state[0], style=state[1])
    heads = [Text(names[0]), Text(names[1], style="dim")]
    if len(rules) < 2:
        heads = [Text("\n").join(h for h in heads if h.plain)]
    if not rules:
        table.add_row(heads[0], "-", "no limits", "", "", speed, state_cell, end_section=True)
        return
    for index, rule in enumerate(rules):
        frees = rule["frees_in"]
        table.add_row(
            heads[index] if index < len(heads) else "",
            rule["rule"],
            usage_text(rule),
            "" if rule["remaining"] is None else str(rule["remaining"]),
            "" if frees is None or rule["used"] == 0 else span(frees),
            speed if index == 0 else "",
            state_cell if index == 0 else "",
            end_section=index == len(rules) - 1,
        )


def print_status(data: StatusData, console: Console | None = None) -> None:
    """Print the status table (to stdout unless ``console`` says otherwise)."""
    from rich.console import Console

    console = console or Console()
    console.print(status_table(data))
    for warning in data["warnings"]:
        console.print(f"warning: {warning}", style="yellow", markup=False, highlight=False)
