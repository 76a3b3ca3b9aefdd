"""What ``llamux check`` prints: each endpoint as it resolves (never a key's value)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from .._config.load import Config, Endpoint
from .._limit_notes import rule_line
from ._screen import wrap

if TYPE_CHECKING:
    from .._engine.quotas import Quotas


def config_report(
    path: Path, config: Config, quotas: Quotas, warnings: list[str], width: int | None = None
) -> str:
    """The whole report: summary, endpoints (each limit configured vs catalog vs learned),
    pools, routes, then the warnings (wrapped between words to ``width``, if given)."""
    lines = [_config_summary(path, config)]
    lines += [
        _endpoint_lines(n, endpoint, quotas) for n, endpoint in enumerate(config.endpoints, 1)
    ]
    for pool in config.pools:
        limits = " · ".join(f"{n} {v}" for n, v in pool.limits.items()) or "no limits"
        lines.append(f"pool {pool.name}: {limits}")
    lines += [f"route {r.name}: {', '.join(r.endpoints)}" for r in config.routes]
    lines += [
        text for line in warnings for text in wrap(f"warning: {line}", width, "  ", cut=False)
    ]
    return "\n".join(lines)


def _config_summary(path: Path, config: Config) -> str:
    count = len(config.endpoints)
    line = f"{path}: ok, {count} endpoint{'s' * (count != 1)}, strategy {config.strategy}"
    if config.store:
        line += f", store {re.sub(r'//[^/@]*@', '//***@', config.store)}"
    return line


def _endpoint_lines(number: int, endpoint: Endpoint, quotas: Quotas) -> str:
    has_key = bool(os.environ.get(endpoint.api_key_env))
    key = "set" if has_key else "NOT set: export it, or the endpoint is skipped"
    entry = quotas.entries.get(endpoint.id)
    rows = [rule_line(row, entry) for row in quotas.known.get(endpoint.id, ())]
    limits = "\n               ".join(rows) or "no limits"
    extra = f"\n     pool      {endpoint.pool}" if endpoint.pool else ""
    return (
        f"{number:>2}. {endpoint.id}\n"
        f"     base_url  {endpoint.base_url}\n"
        f"     key       ${endpoint.api_key_env} ({key})\n"
        f"     limits    {limits}\n"
        f"     resets    {_resets(endpoint)}{extra}"
    )


def _resets(endpoint: Endpoint) -> str:
    """``rpd: calendar days in UTC; rpm, tpm: rolling``."""
    zones: dict[str, list[str]] = {}
    for name, tz in endpoint.resets:
        zones.setdefault(tz, []).append(name)
    parts = [f"{', '.join(names)}: calendar periods in {tz}" for tz, names in zones.items()]
    rolling = [name for name in endpoint.limits.named() if name not in dict(endpoint.resets)]
    if rolling:
        parts.append(f"{', '.join(rolling)}: rolling windows")
    return "; ".join(parts) or "-"
