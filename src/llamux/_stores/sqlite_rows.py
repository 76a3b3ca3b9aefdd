"""The SQL of the SQLite store's tables, and the conversions of their rows."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from .._policy.passing import Spent
from .._policy.performance import ALPHA, Sample
from .._policy.quota import UNSETTLED_KEPT, Charge, Refusal, kept_until
from .._policy.rules import Scope
from .sqlite_mirror import Mirror

UPSERT = (
    "INSERT INTO buckets (scope, win, bucket, requests, tokens, usd) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (scope, win, bucket) DO UPDATE SET "
    "requests = requests + excluded.requests, tokens = tokens + excluded.tokens, "
    "usd = usd + excluded.usd"
)
SPENT_COLUMNS = "scope, until, endpoint, rule, used, lim, requested, reason, win, requests, tokens"
PASSING_ALL = (
    "SELECT 'c', scope, until, reason, kind, NULL, NULL, NULL, NULL, NULL, NULL, NULL "
    f"FROM cooldowns UNION ALL SELECT 's', {SPENT_COLUMNS} FROM spent"
)
"""Every cool-down and remembered refusal, ended ones too (for a connection's mirror)."""
PASSING = (
    "SELECT 'c', scope, until, reason, kind, NULL, NULL, NULL, NULL, NULL, NULL, NULL "
    "FROM cooldowns WHERE until > ? "
    f"UNION ALL SELECT 's', {SPENT_COLUMNS} FROM spent WHERE until > ?"
)
"""What a decision passes without reading buckets: cool-downs ('c') and spent scopes ('s')."""
GENERATION = "llamux:generation"
"""The counter bumped whenever something refused until a known moment could fit sooner."""
BUMP = (
    "INSERT INTO counters (key, value) VALUES (?, 1) "
    "ON CONFLICT (key) DO UPDATE SET value = value + 1"
)
REMEMBER = f"INSERT OR REPLACE INTO spent ({SPENT_COLUMNS}) VALUES ({','.join('?' * 11)})"
EWMA = (
    "CASE WHEN excluded.{0} IS NULL THEN {0} WHEN {0} IS NULL THEN excluded.{0} "
    "ELSE {0} + ?5 * (excluded.{0} - {0}) END"
)
FOLD = (
    "INSERT INTO performance (endpoint, latency, tps, ttft, samples) VALUES (?1, ?2, ?3, ?4, 1) "
    "ON CONFLICT (endpoint) DO UPDATE SET "
    + ", ".join(f"{c} = {EWMA.format(c)}" for c in ("latency", "tps", "ttft"))
    + ", samples = samples + 1"
)
"""Fold a sample into an endpoint's moving averages (``performance.ewma``), ?5 the weight."""
CORRECT = (
    "UPDATE buckets SET requests = max(0, requests + ?), tokens = max(0, tokens + ?), "
    "usd = max(0, usd + ?) WHERE scope = ? AND win = ? AND bucket = ?"
)


def placeholders(n: int) -> str:
    return ",".join("?" * n)


Rows = dict[tuple[str, str], dict[int, tuple[int, int, int]]]


def read_snapshot(conn: sqlite3.Connection, keys: list[str]) -> Rows:
    snapshot: Rows = {}
    rows = conn.execute(
        f"SELECT scope, win, bucket, requests, tokens, usd FROM buckets "
        f"WHERE scope IN ({placeholders(len(keys))})",
        keys,
    )
    for scope, win, bucket, requests, tokens, usd in rows:
        snapshot.setdefault((scope, win), {})[bucket] = (requests, tokens, usd)
    return snapshot


_TOTALS: dict[int, str] = {}


def read_totals(conn: sqlite3.Connection, scopes: Sequence[Scope], now: float) -> Rows:
    """What an admission needs, summed by SQLite instead of read row by row: per (scope,
    window) a few buckets whose sums from each of its windows' oldest counted bucket on are
    exact (a bucket at each such oldest, holding the usage up to the next one). ``decide``
    and ``remaining_after`` read only such sums; a refusal's retry time needs the real
    buckets (``read_snapshot``)."""
    groups = [
        (scope.key, window.key, window.oldest_counted(now))
        for scope in scopes
        for window, _ in scope.groups
    ]
    query = _TOTALS.get(len(groups))
    if query is None:
        query = _TOTALS[len(groups)] = " UNION ALL ".join(
            f"SELECT {i}, coalesce(sum(requests), 0), coalesce(sum(tokens), 0), "
            "coalesce(sum(usd), 0) FROM buckets WHERE scope = ? AND win = ? AND bucket >= ?"
            for i in range(len(groups))
        )
    sums: dict[tuple[str, str], list[tuple[int, int, int, int]]] = {}
    for index, r, t, u in conn.execute(query, [value for group in groups for value in group]):
        key, win, start = groups[index]
        sums.setdefault((key, win), []).append((start, r, t, u))
    totals: Rows = {}
    for pair, found in sums.items():
        found.sort()  # by oldest counted: each window's sum includes every later one's
        buckets = totals[pair] = {}
        later = (0, 0, 0)
        for start, r, t, u in reversed(found):
            buckets[start] = (r - later[0], t - later[1], u - later[2])
            later = (r, t, u)
    return totals


def prune_buckets(
    conn: sqlite3.Connection,
    scopes: Sequence[Scope],
    pruned: dict[tuple[str, str], int],
    now: float,
    mirror: Mirror,
) -> None:
    """Delete the buckets no window counts any more, once per (scope, window) each time
    its oldest kept bucket moves on (``pruned``: where it was at this process's last
    sweep). No bucket older than that is ever written again."""
    for scope in scopes:
        for window in scope.windows:
            key, oldest = (scope.key, window.key), window.keep_from(now)
            if pruned.get(key) != oldest:
                if len(pruned) > 65536:  # scopes come from a config: a safety net
                    pruned.clear()
                pruned[key] = oldest
                conn.execute(
                    "DELETE FROM buckets WHERE scope = ? AND win = ? AND bucket < ?",
                    (scope.key, window.key, oldest),
                )
                mirror.prune(scope.key, window.key, oldest)


Held = tuple[int, list[Charge], str, int]
"""A reservation's record: estimated tokens, charges, endpoint, estimated micro-dollars."""


def take_reservation(conn: sqlite3.Connection, reservation_id: str, now: float) -> Held | None:
    """Remove a reservation; its estimate, charges, endpoint and price (None: unknown, or
    past its settle deadline: removed all the same, its estimate stays counted)."""
    row = conn.execute(
        "DELETE FROM reservations WHERE id = ? RETURNING tokens, charges, endpoint, usd, created",
        (reservation_id,),
    ).fetchone()
    if row is None or kept_until(float(row[4]), 0.0) < now:
        return None
    return int(row[0]), load_charges(str(row[1])), str(row[2]), int(row[3])


def cap_reservations(conn: sqlite3.Connection, endpoint: str) -> None:
    """Drop ``endpoint``'s unsettled query reservations beyond the newest ``UNSETTLED_KEPT``."""
    conn.execute(
        "DELETE FROM reservations WHERE id IN (SELECT id FROM reservations "
        "WHERE endpoint = ? ORDER BY created DESC, id LIMIT -1 OFFSET ?)",
        (endpoint, UNSETTLED_KEPT),
    )


def fold_samples(conn: sqlite3.Connection, endpoint: str, samples: Sequence[Sample]) -> None:
    """Fold ``samples`` into ``endpoint``'s moving averages, in order (inside a
    transaction): one statement per sample, the arithmetic of ``performance.fold``."""
    if samples:
        conn.executemany(
            FOLD,
            [(endpoint, s.latency, s.tokens_per_second, s.ttft, ALPHA) for s in samples],
        )


def dump_charges(items: Sequence[Charge]) -> str:
    return json.dumps([[c.scope, c.window, c.bucket] for c in items], separators=(",", ":"))


def load_charges(text: str) -> list[Charge]:
    return [Charge(str(s), str(w), int(b)) for s, w, b in json.loads(text)]


def spent_row(memo: Spent) -> tuple[object, ...]:
    r = memo.refusal
    fields = (r.scope, r.retry_at, r.endpoint, r.rule, r.used, r.limit, r.requested, r.reason)
    return (*fields, memo.window, memo.requests, memo.tokens)


def spent_of(row: tuple[Any, ...]) -> Spent:
    scope, until, endpoint, rule, used, limit, requested, reason, window, requests, tokens = row
    refusal = Refusal(endpoint, scope, rule, used, limit, requested, float(until), reason)
    return Spent(refusal, window, int(requests), int(tokens))


def forget_spent(conn: sqlite3.Connection, scopes: Sequence[str]) -> bool:
    """Usage in these scopes is given back or moved: what they refused may fit sooner.
    Returns whether anything was forgotten (the generation was bumped)."""
    gone = conn.execute(f"DELETE FROM spent WHERE scope IN ({placeholders(len(scopes))})", scopes)
    if gone.rowcount > 0:
        conn.execute(BUMP, (GENERATION,))
        return True
    return False


def generation_of(conn: sqlite3.Connection) -> int:
    """The store's generation (see ``Pick``): 0 before anything bumped it."""
    row = conn.execute("SELECT value FROM counters WHERE key = ?", (GENERATION,)).fetchone()
    return int(row[0]) if row else 0


def read_leases(
    conn: sqlite3.Connection, scopes: Sequence[Scope], now: float
) -> dict[str, list[float]]:
    """The expiries of the live leases of each of ``scopes`` with a concurrency limit; the
    expired ones are deleted first (storage stays bounded by the limits)."""
    keys = [scope.key for scope in scopes if scope.concurrency is not None]
    if not keys:
        return {}
    marks = placeholders(len(keys))
    conn.execute(f"DELETE FROM leases WHERE scope IN ({marks}) AND expires <= ?", (*keys, now))
    found: dict[str, list[float]] = {key: [] for key in keys}
    rows = conn.execute(f"SELECT scope, expires FROM leases WHERE scope IN ({marks})", keys)
    for scope, expires in rows:
        found[scope].append(float(expires))
    return found


def give_back_leases(conn: sqlite3.Connection, reservation_id: str) -> bool:
    """Delete a reservation's leases; if it held any, a refused request may fit now (the
    generation is bumped, and True returned)."""
    gone = conn.execute("DELETE FROM leases WHERE id = ?", (reservation_id,))
    if gone.rowcount > 0:
        conn.execute(BUMP, (GENERATION,))
        return True
    return False
