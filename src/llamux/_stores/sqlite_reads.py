"""The SQLite store's reads, and its small writes no decision reads back (the limits a
config declared, round-robin turns, learned limits): the base of ``SQLiteSettles``
(settle and release, ``sqlite_settles.py``) and of ``SQLiteStore``, which adds the steps
that decide and count (``sqlite.py``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .._policy.known_limits import Learned
from .._policy.performance import Performance
from .._policy.quota import Cooldown, RuleUsage, live, rule_usage
from .._policy.rules import Scope
from .sqlite_connections import Connections
from .sqlite_rows import placeholders, read_snapshot
from .sqlite_samples import HeldSamples
from .sqlite_schema import TABLES


class SQLiteReads:
    """What an SQLite store reads without deciding, over its connections ``_db``."""

    _db: Connections
    _samples: HeldSamples
    """Speed samples this process holds (folded into its own readings)."""

    def _written(self) -> None:
        """Before a read of usage: write what this process still holds (``SQLiteSettles``)."""

    def declare(self, limits: Mapping[str, str], now: float) -> dict[str, str]:
        keys = list(limits)
        with self._db.transaction() as conn:
            rows = conn.execute(
                f"SELECT scope, limits FROM quotas WHERE scope IN ({placeholders(len(keys))})",
                keys,
            ).fetchall()
            conn.executemany(
                "INSERT OR REPLACE INTO quotas (scope, limits, seen) VALUES (?, ?, ?)",
                [(key, text, now) for key, text in limits.items()],
            )
        return {str(scope): str(text) for scope, text in rows if limits[scope] != text}

    def counted_scopes(self, since: float) -> set[str]:
        rows = self._db.guard(
            lambda: (
                self._db.conn()
                .execute(
                    "SELECT DISTINCT scope FROM buckets WHERE bucket >= ? "
                    "AND (requests > 0 OR tokens > 0 OR usd > 0)",
                    (math.floor(since),),
                )
                .fetchall()
            )
        )
        return {str(row[0]) for row in rows}

    def cooldowns(self, now: float) -> dict[str, Cooldown]:
        rows = self._db.guard(
            lambda: (
                self._db.conn()
                .execute("SELECT scope, until, reason, kind FROM cooldowns WHERE until > ?", (now,))
                .fetchall()
            )
        )
        return {r[0]: Cooldown(r[0], float(r[1]), r[2], r[3]) for r in rows}

    def usage(self, scopes: Sequence[Scope], now: float) -> list[RuleUsage]:
        self._written()
        snapshot = self._db.guard(lambda: read_snapshot(self._db.conn(), [s.key for s in scopes]))
        return [row for scope in scopes for row in rule_usage(scope, snapshot, now)]

    def in_flight(self, scopes: Sequence[Scope], now: float) -> dict[str, int]:
        keys = [scope.key for scope in scopes if scope.concurrency is not None]
        if not keys:
            return {}

        def read() -> list[Any]:
            query = f"SELECT scope, expires FROM leases WHERE scope IN ({placeholders(len(keys))})"
            return self._db.conn().execute(query, keys).fetchall()

        found: dict[str, list[float]] = {key: [] for key in keys}
        for scope, expires in self._db.guard(read):
            found[str(scope)].append(float(expires))
        return {key: len(live(expiries, now)) for key, expiries in found.items()}

    def performance(self, endpoints: Sequence[str]) -> dict[str, Performance]:
        keys = list(endpoints)
        rows = self._db.guard(
            lambda: (
                self._db.conn()
                .execute(
                    "SELECT endpoint, latency, tps, ttft, samples FROM performance "
                    f"WHERE endpoint IN ({placeholders(len(keys))})",
                    keys,
                )
                .fetchall()
            )
        )
        found = {r[0]: Performance(r[1], r[2], r[3], int(r[4])) for r in rows}
        return {k: v for k, v in self._samples.merged(found).items() if k in keys}

    def turn(self, key: str) -> int:
        with self._db.transaction() as conn:
            row = conn.execute(
                "INSERT INTO counters (key, value) VALUES (?, 1) "
                "ON CONFLICT (key) DO UPDATE SET value = value + 1 RETURNING value",
                (key,),
            ).fetchone()
            return int(row[0])

    def learn(self, scope: str, limits: Mapping[str, int], now: float, source: str) -> None:
        rows = [(scope, name, max(0, int(lim)), now, source) for name, lim in limits.items()]
        with self._db.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO learned (scope, rule, lim, at, source) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    def learned(self, scopes: Sequence[str]) -> dict[str, dict[str, Learned]]:
        keys = list(scopes)
        if not keys:
            return {}

        def read() -> list[Any]:
            query = (
                "SELECT scope, rule, lim, at, source FROM learned "
                f"WHERE scope IN ({placeholders(len(keys))})"
            )
            return self._db.conn().execute(query, keys).fetchall()

        found: dict[str, dict[str, Learned]] = {}
        for scope, rule, lim, at, source in self._db.guard(read):
            found.setdefault(str(scope), {})[str(rule)] = Learned(int(lim), float(at), str(source))
        return found

    def stats(self) -> dict[str, int]:
        """Row counts per table: state size is bounded by endpoints, not by requests."""
        self._written()

        def count() -> dict[str, int]:
            conn = self._db.conn()
            return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES}

        return self._db.guard(count)
