"""What ``llamux status`` shows: :func:`status_data` (plain, JSON-ready) and its rich table.

``status_data`` is shared by ``llamux status --json`` and the proxy; ``rich`` is imported
only by the functions that render.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from ._quota import Cooldown, RuleUsage
    from ._router import EndpointStatus, Router

BAR_WIDTH = 10
REASON_CHARS = 70


class RuleData(TypedDict):
    scope: str
    rule: str
    metric: str
    window: str
    limit: int
    used: int
    remaining: int
    next_free_at: float | None
    frees_in: float | None


class CooldownData(TypedDict):
    kind: str
    until: float
    seconds: float
    reason: str


class PerformanceData(TypedDict):
    latency: float | None
    tokens_per_second: float | None
    ttft: float | None
    samples: int


class EndpointData(TypedDict):
    id: str
    provider: str
    model: str
    base_url: str
    api_key_env: str
    has_key: bool
    pool: str | None
    state: str
    """``ok``, ``full``, ``no_key``, ``cooldown``, ``parked`` or ``disabled``."""
    cooldown: CooldownData | None
    rules: list[RuleData]
    performance: PerformanceData | None
    """Measured speed (moving averages over the store), ``None`` before any call."""


class PoolData(TypedDict):
    name: str
    endpoints: list[str]
    rules: list[RuleData]


class StatusData(TypedDict):
    now: float
    endpoints: list[EndpointData]
    pools: list[PoolData]
    warnings: list[str]
    """What the store holds that this config disagrees with (see ``Router.warnings``)."""


def status_data(router: Router) -> StatusData:
    """Every endpoint's state and usage per rule, and each pool's, as JSON-ready data."""
    now = router.clock.now()
    rows = router.status()
    pools: dict[str, PoolData] = {}
    for row in rows:
        name = row.endpoint.pool
        if name is None:
            continue
        if name not in pools:
            shared = [_rule(u, now) for u in row.usage if u.scope == f"pool:{name}"]
            pools[name] = PoolData(name=name, endpoints=[], rules=shared)
        pools[name]["endpoints"].append(row.endpoint.id)
    endpoints = [_endpoint(row, now) for row in rows]
    pooled = list(pools.values())
    return StatusData(now=now, endpoints=endpoints, pools=pooled, warnings=router.warnings())


def _endpoint(row: EndpointStatus, now: float) -> EndpointData:
    ep = row.endpoint
    # an endpoint's own quota is shown by its id; a pool's by ``pool:NAME``
    rules = [_rule(u, now, ep.id if u.scope == row.quota else u.scope) for u in row.usage]
    cooling = _cooldown(row.cooldown, now)
    if not row.has_key:
        state = "no_key"
    elif cooling is not None:
        state = cooling["kind"]
    elif any(r["remaining"] == 0 for r in rules):
        state = "full"
    else:
        state = "ok"
    own = [r for r in rules if r["scope"] == ep.id]
    return EndpointData(
        id=ep.id,
        provider=ep.provider,
        model=ep.model,
        base_url=ep.base_url,
        api_key_env=ep.api_key_env,
        has_key=row.has_key,
        pool=ep.pool,
        state=state,
        cooldown=cooling,
        rules=own,
        performance=_performance(row),
    )


def _performance(row: EndpointStatus) -> PerformanceData | None:
    perf = row.performance
    if perf is None:
        return None
    return PerformanceData(
        latency=perf.latency,
        tokens_per_second=perf.tokens_per_second,
        ttft=perf.ttft,
        samples=perf.samples,
    )


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


def _rule(usage: RuleUsage, now: float, scope: str | None = None) -> RuleData:
    free = usage.next_free_at
    return RuleData(
        scope=usage.scope if scope is None else scope,
        rule=usage.rule.name,
        metric=usage.rule.metric,
        window=usage.rule.window.label,
        limit=usage.limit,
        used=usage.used,
        remaining=usage.remaining,
        next_free_at=free,
        frees_in=None if free is None else max(0.0, free - now),
    )


def _cooldown(cooldown: Cooldown | None, now: float) -> CooldownData | None:
    if cooldown is None:
        return None
    seconds = max(0.0, cooldown.until - now)
    return CooldownData(
        kind=cooldown.kind, until=cooldown.until, seconds=seconds, reason=cooldown.reason
    )


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
    """``████░░░░░░ 12/30`` with the bar coloured by how full it is."""
    from rich.text import Text

    text = Text(bar(rule["used"], rule["limit"]), style=bar_style(rule["used"], rule["limit"]))
    text.append(f" {rule['used']}/{rule['limit']}")
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
            str(rule["remaining"]),
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
