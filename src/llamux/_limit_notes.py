"""What a config's limits are worth next to the provider's: configured vs catalog vs learned.

Plain text for ``llamux check``, ``llamux status`` and the dashboard: one line per rule
(:func:`rule_line`) and a warning wherever the table allows more than the provider does, a
catalog entry llamux relies on is old, or nothing is known of an endpoint yet.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from ._policy.known_limits import CATALOG, CONFIGURED, LEARNED, NONE, TIGHTENED, UNKNOWN, Known
from ._policy.ratelimits import DIALECTS

if TYPE_CHECKING:
    from ._config.catalog import ModelLimits
    from ._config.load import Endpoint
    from ._engine.quotas import Quotas


def day_of(moment: float) -> str:
    """The UTC date of an epoch time, ISO."""
    return datetime.fromtimestamp(moment, UTC).date().isoformat()


def rule_line(row: Known, entry: ModelLimits | None) -> str:
    """``rpm auto = 30 (catalog, checked 2026-12-01, confirmed)`` and the like."""
    said = "auto" if row.auto else str(row.configured)
    told = row.learned
    if row.origin == LEARNED and told is not None:
        return f"{row.name} auto = {told.limit} (learned {day_of(told.at)} from {told.source})"
    if row.origin == CATALOG and entry is not None:
        return f"{row.name} auto = {row.limit} (catalog, {_checked(entry)})"
    if row.origin == NONE:
        return f"{row.name} auto = no limit (the catalog lists none for this tier)"
    if row.origin == UNKNOWN:
        return f"{row.name} auto = not known yet (learned when the provider states it)"
    if row.origin == TIGHTENED and told is not None:
        return (
            f"{row.name} {said}, but the provider reported {told.limit} on {day_of(told.at)} "
            f"({told.source}): llamux keeps to {told.limit}"
        )
    extra = []
    if told is not None:
        extra.append(f"provider reported {told.limit} on {day_of(told.at)}")
    if row.catalog is not None and entry is not None:
        extra.append(f"catalog {row.catalog}, {_checked(entry)}")
    return f"{row.name} {said}" + (f" ({'; '.join(extra)})" if extra else "")


def limit_warnings(quotas: Quotas, today: date) -> list[str]:
    """A line for each rule whose table value is above what the provider reported or the
    catalog says, for each catalog entry in use older than 90 days, and for each endpoint
    nothing is known of yet (one request at a time)."""
    from ._config.catalog import stale  # the catalog's data is read on first use only

    lines = []
    for ep in quotas.endpoints:
        entry = quotas.entries.get(ep.id)
        rows = quotas.known.get(ep.id, ())
        for row in rows:
            lines += _row_warnings(ep, row, entry)
        uses_catalog = any(r.origin in (CATALOG, NONE) for r in rows)
        if entry is not None and entry.published and uses_catalog and stale(entry.checked, today):
            lines.append(
                f"endpoint {ep.id}: the catalog's limits for {ep.provider} {ep.model} were "
                f"checked on {entry.checked}, over 90 days ago; they may be out of date: "
                f"run `llamux probe {ep.id}` to learn the provider's own, or write numbers"
            )
        if ep.id in quotas.gated:
            silent = not DIALECTS.get(ep.dialect, DIALECTS["openai"])
            how = (
                f"{ep.provider} states its limits only in 429 answers: write them in the "
                "table if you know them"
                if silent
                else f"`llamux probe {ep.id}` asks now"
            )
            lines.append(
                f"endpoint {ep.id}: none of its auto limits is known yet (the catalog has no "
                "numbers for it and the provider has stated none): llamux sends it one "
                f"request at a time until the provider states one; {how}"
            )
    return lines


def _row_warnings(ep: Endpoint, row: Known, entry: ModelLimits | None) -> list[str]:
    said = row.configured
    if said is None:
        return []
    told = row.learned
    if row.origin == TIGHTENED and told is not None:
        return [
            f"endpoint {ep.id}: your table says {row.name} {said}; {ep.provider} reported "
            f"{told.limit} on {day_of(told.at)} ({told.source}): your table allows more than "
            f"the provider does (llamux keeps to {told.limit}); lower it, or write auto"
        ]
    listed = row.catalog
    if row.origin == CONFIGURED and told is None and listed is not None and entry and said > listed:
        return [
            f"endpoint {ep.id}: your table says {row.name} {said}; the catalog says "
            f"{ep.provider}'s tier allows {listed} ({_checked(entry)}): your table "
            "may allow more than the provider does; lower it, write auto, or run "
            f"`llamux probe {ep.id}`"
        ]
    return []


def _checked(entry: ModelLimits) -> str:
    kind = "confirmed" if entry.confirmed else "unconfirmed"
    return f"checked {entry.checked}, {kind}"
