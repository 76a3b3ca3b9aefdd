"""The quota headers the proxy puts on every answer, in OpenAI's dialect, from llamux's view.

``x-ratelimit-limit-requests``, ``-remaining-requests``, ``-reset-requests`` and the
``-tokens`` trio describe the route the request was sent to (its ``model``: ``auto``, a
route, an endpoint or an upstream model name): of the per-minute rules of the endpoints that
serve that route and kind (their own and their pools'), the tightest one of each metric, the
one with the least remaining. ``reset`` is the time until that rule frees capacity again
(Go-duration style, ``12.5s``). Clients that pace themselves from these headers then pace
against llamux's count. The store is read at most once a second per route and kind; the
request's own reservation updates its endpoint's numbers at once, so a client that sends one
request at a time sees them exact.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._policy.rules import UNLIMITED, Scope

if TYPE_CHECKING:
    from .._router import Router

FRESH = 1.0
"""Seconds the headers of one route and kind are reused."""
KEPT = 1024
"""Routes and kinds remembered, at most (a client's model names are its own strings)."""


class QuotaHeaders:
    """The quota headers of each route: the store's view, read at most once a second per
    route and kind, with the numbers of each request's own reservation (exact, no read)
    applied as they come."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self._lock = threading.Lock()
        self._read_at: dict[tuple[str, str], float] = {}
        self._rules: dict[tuple[str, str], list[Any]] = {}
        """(scope, rule) -> [limit, remaining, frees at]: the per-minute rules seen."""

    async def headers(
        self, model: Any, kind: str, fresh: Sequence[tuple[str, str, int]] = ()
    ) -> dict[str, str]:
        """The headers for requests of ``kind`` sent with ``model``; ``fresh``: the
        remaining counts (scope, rule, left) of the request just served."""
        router = self.router
        key = (model if isinstance(model, str) else "auto", kind)
        endpoints, _ = router.candidates(model, kind)
        scopes = {s.key: s for ep in endpoints for s in router.quotas.scopes[ep.id]}
        minute = [s for s in scopes.values() if any(r.window.unit == "minute" for r in s.rules)]
        if not minute:
            return {}
        now = router.clock.now()
        with self._lock:
            stale = now - self._read_at.get(key, -math.inf) >= FRESH
            if stale:
                if len(self._read_at) >= KEPT:
                    self._read_at.clear()
                self._read_at[key] = now
        if stale:
            if getattr(router.store, "inline", False):
                self._read(minute, now)
            else:
                await asyncio.to_thread(self._read, minute, now)
        with self._lock:
            for scope, rule, left in fresh:
                known = self._rules.get((scope, rule))
                if known is not None:
                    known[1] = left
            rows = [
                (name, *values) for (scope, name), values in self._rules.items() if scope in scopes
            ]
        out: dict[str, str] = {}
        for metric, prefix in (("requests", "r"), ("tokens", "t")):
            mine = [row for row in rows if row[0] == f"{prefix}pm"]
            if mine:
                _, limit, left, frees = min(mine, key=lambda row: (row[2], row[1]))
                out.update(_trio(metric, limit, left, frees, now))
        return out

    def _read(self, scopes: Sequence[Scope], now: float) -> None:
        usage = self.router.store.usage(scopes, now)
        with self._lock:
            if len(self._rules) >= KEPT * 4:
                self._rules.clear()
            for u in usage:
                if u.rule.window.unit == "minute" and u.limit != UNLIMITED:
                    frees = u.next_free_at if u.used else None
                    self._rules[(u.scope, u.rule.name)] = [u.limit, u.remaining, frees]


def _trio(metric: str, limit: int, left: int, frees: float | None, now: float) -> dict[str, str]:
    wait = 0.0 if frees is None else max(0.0, frees - now)
    return {
        f"x-ratelimit-limit-{metric}": str(limit),
        f"x-ratelimit-remaining-{metric}": str(max(0, left)),
        f"x-ratelimit-reset-{metric}": duration(wait),
    }


def duration(seconds: float) -> str:
    """``0s``, ``12.5s``, ``1m30s``: as OpenAI writes its reset headers."""
    if seconds <= 0:
        return "0s"
    whole = math.ceil(seconds * 1000) / 1000
    minutes, rest = divmod(whole, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text
