"""``llamux probe [ENDPOINT...]``: ask the providers for their limits, and learn them.

Each endpoint (default: every one with a key) is probed at the least cost (see
``_engine/probe``): OpenRouter through its key endpoint, which spends nothing; the others with
one chat request of one output token, reserved like any other. Since that costs quota, it
says so and asks first on a terminal (``--yes`` skips the question; without a terminal it is
required). It prints what each provider reported and what llamux enforces now (``--json``:
the same as data). Exit 0, or 3 if a provider failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from .._config.endpoint import limit_name
from .._errors import ConfigError
from .._limit_notes import rule_line
from ._commands import EXIT_OK, EXIT_PROVIDER, open_router
from ._status_view import span

if TYPE_CHECKING:
    from .._config.load import Endpoint
    from .._engine.probe import Probe
    from .._policy.ratelimits import Hint


def add_probe(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "endpoints", nargs="*", metavar="ENDPOINT", help="endpoint ids (default: all with keys)"
    )
    sub.add_argument(
        "--yes", action="store_true", help="do not ask before spending a request per endpoint"
    )
    sub.add_argument("--json", action="store_true", help="print the results as JSON")


def cmd_probe(args: argparse.Namespace) -> int:
    """Probe the endpoints; print what the providers reported and what llamux enforces."""
    from .._engine.probe import spends_request

    with open_router(args) as router:
        by_name: dict[str, list[Endpoint]] = {}
        for ep in router.endpoints:  # a key list's id names every endpoint of it
            for name in dict.fromkeys(n for n in (ep.id, ep.group) if n):
                by_name.setdefault(name, []).append(ep)
        unknown = [name for name in args.endpoints if name not in by_name]
        if unknown:
            raise ConfigError(
                f"no endpoint is named {unknown[0]!r}; use one of: {', '.join(by_name)}"
            )
        named = list(dict.fromkeys(ep for name in args.endpoints for ep in by_name[name]))
        chosen = named or [ep for ep in router.endpoints if router.key_of(ep) is not None]
        if not chosen:
            variables = sorted({ep.api_key_env for ep in router.endpoints})
            raise ConfigError(
                f"no endpoint has its key set ({', '.join(variables)}): export one, then "
                "probe again"
            )
        costly = [ep.id for ep in chosen if spends_request(ep) and router.key_of(ep)]
        if costly and not args.yes and not _agreed(costly):
            print("nothing sent")
            return EXIT_OK
        results = [router.probe(ep.id) for ep in chosen]
        entries = {ep.id: router.quotas.entries.get(ep.id) for ep in chosen}
        now = router.clock.now()
    if args.json:
        print(json.dumps([_data(result) for result in results], indent=2))
    else:
        _print(results, entries, now)
    return EXIT_PROVIDER if any(r.outcome == "failed" for r in results) else EXIT_OK


def _agreed(costly: list[str]) -> bool:
    """Whether the user agrees to spend one request on each of ``costly``."""
    count = len(costly)
    what = (
        f"llamux probe sends one chat request (1 output token) to each of {count} "
        f"endpoint{'s' * (count != 1)} ({', '.join(costly)}); it costs quota"
    )
    if not sys.stdin.isatty():
        raise ConfigError(f"{what}: pass --yes to go ahead")
    answer = input(f"{what}. Go ahead? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _print(results: list[Probe], entries: dict[str, Any], now: float) -> None:
    """One table: per endpoint, each rule with what the provider reported and what llamux
    enforces now; the outcome on the endpoint's first row."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title="llamux probe", title_justify="left", header_style="bold")
    for name in ("endpoint", "rule", "provider reports", "llamux enforces", "outcome"):
        table.add_column(name, overflow="fold")
    for result in results:
        reported = {rule_of(h): _hint_text(h, now) for h in result.hints if rule_of(h)}
        enforced = {k.name: rule_line(k, entries.get(result.endpoint)) for k in result.known}
        rules = [*enforced, *(r for r in reported if r not in enforced)] or ["-"]
        outcome = f"{result.outcome}: {result.detail}"
        for index, rule in enumerate(rules):
            cells = (
                result.endpoint if index == 0 else "",
                rule,
                reported.get(rule, ""),
                _after_name(enforced.get(rule, ""), rule),
                outcome if index == 0 else "",
            )  # as Text: an id such as "a:m:free" is no emoji code, "[x]" no markup
            table.add_row(*(Text(cell) for cell in cells), end_section=index == len(rules) - 1)
    Console(highlight=False, emoji=False).print(table)


def rule_of(hint: Hint) -> str:
    """The rule a hint speaks of (rpm ... tpd), or "" for a window llamux has none for."""
    try:
        return limit_name(hint.metric, hint.window)
    except ValueError:
        return ""


def _after_name(line: str, rule: str) -> str:
    return line.removeprefix(f"{rule} ").strip()


def _hint_text(hint: Hint, now: float) -> str:
    parts = [str(hint.limit) if hint.limit is not None else "?"]
    if hint.remaining is not None:
        parts.append(f"{hint.remaining} left")
    if hint.reset_at is not None:
        parts.append(f"resets in {span(hint.reset_at - now)}")
    return parts[0] + (f" ({', '.join(parts[1:])})" if len(parts) > 1 else "")


def _data(result: Probe) -> dict[str, Any]:
    return {
        "endpoint": result.endpoint,
        "outcome": result.outcome,
        "detail": result.detail,
        "via": result.via,
        "reported": [
            {
                "metric": h.metric,
                "window": h.window,
                "limit": h.limit,
                "remaining": h.remaining,
                "reset_at": h.reset_at,
                "used": h.used,
            }
            for h in result.hints
        ],
        "enforced": [
            {
                "rule": k.name,
                "limit": k.limit,
                "origin": k.origin,
                "configured": "auto" if k.auto else k.configured,
                "catalog": k.catalog,
                "learned": None if k.learned is None else k.learned.limit,
            }
            for k in result.known
        ],
    }
