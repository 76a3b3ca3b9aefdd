"""The embedded default store: one SQLite file shared by every thread and process of a machine.

WAL journal, one ``BEGIN IMMEDIATE`` transaction per operation (so a reservation checks and
charges every rule atomically against all other processes), ``synchronous=NORMAL`` (a
process crash loses nothing; only a power cut may lose the last transactions), schema
migrations as a numbered list recorded in ``PRAGMA user_version``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from .._policy.passing import MADE_LIMIT, Candidate, Pick, Spent, cooling, spent, still_spent
from .._policy.performance import ALPHA, Performance, Sample
from .._policy.quota import (
    RESERVATION_TTL,
    Charge,
    Cooldown,
    Cost,
    Refusal,
    Reservation,
    RuleUsage,
    Scope,
    charges,
    decide,
    moved,
    read_now,
    remaining_after,
    rule_usage,
)
from .._policy.window import Window
from .sqlite_schema import migrate, store_error
from .waiting import WouldBlock

BUSY_MS = 60_000
"""How long a step waits for another writer before it fails (milliseconds)."""
PRUNE_EVERY = 60.0
TABLES = ("buckets", "reservations", "cooldowns", "performance", "counters", "quotas", "spent")

_UPSERT = (
    "INSERT INTO buckets (scope, win, bucket, requests, tokens) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (scope, win, bucket) DO UPDATE SET "
    "requests = requests + excluded.requests, tokens = tokens + excluded.tokens"
)
_SPENT_COLUMNS = "scope, until, endpoint, rule, used, lim, requested, reason, win, requests, tokens"
_PASSING = (
    "SELECT 'c', scope, until, reason, kind, NULL, NULL, NULL, NULL, NULL, NULL, NULL "
    "FROM cooldowns WHERE until > ? "
    f"UNION ALL SELECT 's', {_SPENT_COLUMNS} FROM spent WHERE until > ?"
)
"""What a decision passes without reading buckets: cool-downs ('c') and spent scopes ('s')."""
GENERATION = "llamux:generation"
"""The counter bumped whenever something refused until a known moment could fit sooner."""
_BUMP = (
    "INSERT INTO counters (key, value) VALUES (?, 1) "
    "ON CONFLICT (key) DO UPDATE SET value = value + 1"
)
_REMEMBER = f"INSERT OR REPLACE INTO spent ({_SPENT_COLUMNS}) VALUES ({','.join('?' * 11)})"
_EWMA = (
    "CASE WHEN excluded.{0} IS NULL THEN {0} WHEN {0} IS NULL THEN excluded.{0} "
    "ELSE {0} + ?5 * (excluded.{0} - {0}) END"
)
_FOLD = (
    "INSERT INTO performance (endpoint, latency, tps, ttft, samples) VALUES (?1, ?2, ?3, ?4, 1) "
    "ON CONFLICT (endpoint) DO UPDATE SET "
    + ", ".join(f"{c} = {_EWMA.format(c)}" for c in ("latency", "tps", "ttft"))
    + ", samples = samples + 1"
)
"""Fold a sample into an endpoint's moving averages (``performance.ewma``), ?5 the weight."""
_CORRECT = (
    "UPDATE buckets SET requests = max(0, requests + ?), tokens = max(0, tokens + ?) "
    "WHERE scope = ? AND win = ? AND bucket = ?"
)

T = TypeVar("T")


class SQLiteStore:
    """Quota state in one SQLite file (``":memory:"`` for a private, per-connection one)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._pruned_at = 0.0
        self._made: dict[tuple[str, Cooldown], Refusal] = {}  # refusals of resting scopes
        self._parsed: dict[tuple[Any, ...], Spent] = {}  # rows of the spent table, parsed
        # ":memory:" is one database per connection: share one connection, one at a time
        self._shared: sqlite3.Connection | None = None
        self._serial = contextlib.nullcontext() if self.path != ":memory:" else threading.RLock()
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self._conn()  # open and migrate now, so a bad file fails at construction

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    # -- connections -------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:  # forked: never reuse the parent's connections
            self._local = threading.local()
            self._connections = []
            self._pid = os.getpid()
        held: _Held | None = getattr(self._local, "held", None)
        conn: sqlite3.Connection | None = self._shared or (held.conn if held else None)
        if conn is None:
            conn = self._guard(self._open_nowait if self._waitless() else self._open)
            with self._lock:
                self._connections.append(conn)
            if self.path == ":memory:":
                self._shared = conn
            else:  # closed when its thread ends: a thread per request never piles them up
                held = self._local.held = _Held(conn)
                weakref.finalize(held, self._forget, conn)
        return conn

    def _forget(self, conn: sqlite3.Connection) -> None:
        """Close a connection whose thread has ended."""
        with self._lock:
            if conn not in self._connections:
                return  # closed by close() already
            self._connections.remove(conn)
        with contextlib.suppress(sqlite3.Error):
            conn.close()

    def _open(self) -> sqlite3.Connection:
        """Connect, switch to WAL and migrate. Processes that open a new file at the same
        moment race for the switch to WAL, which SQLite answers with "database is locked"
        without waiting: retry that for up to a minute."""
        deadline = time.monotonic() + 60
        while True:
            try:
                return self._open_once()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(random.uniform(0.005, 0.05))

    def _open_nowait(self) -> sqlite3.Connection:
        """A connection for this thread, or ``WouldBlock`` if opening it would wait."""
        try:
            return self._open_once(timeout=0)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise WouldBlock(str(exc)) from None
            raise

    def _waitless(self) -> bool:
        return bool(getattr(self._local, "nowait", False))

    def _open_once(self, timeout: float = BUSY_MS / 1000) -> sqlite3.Connection:
        path = str(Path(self.path).expanduser()) if self.path != ":memory:" else self.path
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":  # once per file: WAL is kept in it
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
            conn.execute("PRAGMA synchronous = NORMAL")
            migrate(conn, self.path)
        except BaseException:
            conn.close()
            raise
        return conn

    def _guard(self, action: Callable[[], T]) -> T:
        try:
            with self._serial:
                return action()
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from exc

    @contextmanager
    def nowait(self) -> Iterator[None]:
        """Within it, on this thread, a step that would wait for another writer raises
        ``WouldBlock`` at once, before it changes anything (see ``waiting``)."""
        self._local.nowait = True
        try:
            yield
        finally:
            self._local.nowait = False

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if not self._waitless():
            with self._serial:
                yield from self._transaction_body(False)
            return
        if isinstance(self._serial, contextlib.nullcontext):
            yield from self._transaction_body(True)
            return
        if not self._serial.acquire(blocking=False):
            raise WouldBlock("another thread holds the in-memory database")
        try:
            yield from self._transaction_body(True)
        finally:
            self._serial.release()

    def _transaction_body(self, nowait: bool) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        try:
            self._begin(conn, nowait)
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from exc

    def _begin(self, conn: sqlite3.Connection, nowait: bool) -> None:
        """``BEGIN IMMEDIATE``: wait for the write lock, or with ``nowait`` give up at once."""
        if not nowait:
            conn.execute("BEGIN IMMEDIATE")
            return
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise WouldBlock(str(exc)) from None
            raise
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_MS}")

    # -- operations --------------------------------------------------------------------

    def reserve(
        self,
        endpoint: str,
        scopes: Sequence[Scope],
        cost: Cost,
        now: float | Callable[[], float],
        flight: float = 0.0,
    ) -> Reservation | Refusal:
        pick = self.reserve_first([Candidate(endpoint, scopes, cost)], now, flight)
        return pick.reservation or pick.refusals[0]

    def reserve_first(
        self,
        candidates: Iterable[Candidate],
        now: float | Callable[[], float],
        flight: float = 0.0,
    ) -> Pick:
        refusals: list[Refusal] = []
        with self._transaction() as conn:
            now = read_now(now)  # after BEGIN IMMEDIATE: a wait for the lock is not lost
            row = conn.execute("SELECT value FROM counters WHERE key = ?", (GENERATION,))
            found = row.fetchone()
            generation = int(found[0]) if found else 0
            begin = getattr(candidates, "begin", None)  # a Walk: it may know a refused prefix
            passed = begin(generation, now) if begin is not None else ()
            refusals += passed
            # past a known prefix few candidates are left: read what rests for each of them;
            # else read it for all scopes at once
            resting, known = ({}, {}) if passed else self._passing(conn, now)
            for candidate in candidates:
                if passed:
                    resting, known = self._passing(conn, now, candidate.scopes)
                outcome = (
                    cooling(candidate, resting, now, self._made)
                    or still_spent(candidate, known, now)
                    or self._reserve(conn, candidate, now, flight)
                )
                if isinstance(outcome, Reservation):
                    return Pick(outcome, tuple(refusals), generation)
                refusals.append(outcome)
        return Pick(None, tuple(refusals), generation)

    def _passing(
        self, conn: sqlite3.Connection, now: float, scopes: Sequence[Scope] | None = None
    ) -> tuple[dict[str, Cooldown], dict[str, Spent]]:
        """Every scope (of ``scopes``, default all) resting at ``now`` and every refusal
        remembered until later, in one read (a row per such scope); each remembered row is
        parsed once per process."""
        resting: dict[str, Cooldown] = {}
        known: dict[str, Spent] = {}
        if scopes is None:
            rows = conn.execute(_PASSING, (now, now))
        else:
            keys = [scope.key for scope in scopes]
            marks = _placeholders(len(keys))
            query = _PASSING.replace("until > ?", f"until > ? AND scope IN ({marks})")
            rows = conn.execute(query, (now, *keys, now, *keys))
        for row in rows:
            if row[0] == "c":
                resting[row[1]] = Cooldown(row[1], float(row[2]), row[3], row[4])
                continue
            memo = self._parsed.get(row)
            if memo is None:
                if len(self._parsed) > MADE_LIMIT:
                    self._parsed.clear()
                memo = self._parsed[row] = _spent_of(row[1:])
            known[row[1]] = memo
        return resting, known

    def _reserve(
        self, conn: sqlite3.Connection, candidate: Candidate, now: float, flight: float
    ) -> Reservation | Refusal:
        endpoint, scopes, cost = candidate.endpoint, candidate.scopes, candidate.cost
        snapshot = _snapshot(conn, [scope.key for scope in scopes])
        refusal = decide(endpoint, scopes, snapshot, {}, cost, now)  # cooling: checked
        if refusal is not None:
            memo = spent(refusal, scopes, cost)
            if memo is not None:
                conn.execute(_REMEMBER, _spent_row(memo))
            return refusal
        if candidate.ready is not None:
            candidate.ready()
        reservation = Reservation(
            os.urandom(16).hex(),
            endpoint,
            cost.tokens,
            now,
            charges(scopes, now, flight),
            remaining_after(scopes, snapshot, cost, now),
        )
        conn.executemany(
            _UPSERT,
            [
                (c.scope, c.window, c.bucket, cost.requests, cost.tokens)
                for c in reservation.charges
            ],
        )
        conn.execute(
            "INSERT INTO reservations (id, endpoint, tokens, created, charges) "
            "VALUES (?, ?, ?, ?, ?)",
            (reservation.id, endpoint, cost.tokens, now, _dump(reservation.charges)),
        )
        _prune_buckets(conn, scopes, snapshot, now)
        if now - self._pruned_at > PRUNE_EVERY:
            self._pruned_at = now
            conn.execute("DELETE FROM reservations WHERE created < ?", (now - RESERVATION_TTL,))
        return reservation

    def settle(
        self, reservation_id: str, tokens: int, now: float, sample: Sample | None = None
    ) -> bool:
        with self._transaction() as conn:
            held = _take(conn, reservation_id)
            if held is None:
                return False
            estimate, charged, endpoint = held
            _forget_spent(conn, charged)
            if sample is not None:
                _record(conn, endpoint, sample)
            actual = max(0, tokens)
            pairs = moved(charged, now)  # to the buckets of the outcome's moment
            stay = [
                (0, actual - estimate, c.scope, c.window, c.bucket)
                for c, b in pairs
                if b == c.bucket
            ]
            go = [(c, b) for c, b in pairs if b != c.bucket]
            conn.executemany(
                _CORRECT, [*stay, *((-1, -estimate, c.scope, c.window, c.bucket) for c, _ in go)]
            )
            if go:
                conn.executemany(_UPSERT, [(c.scope, c.window, b, 1, actual) for c, b in go])
            return True

    def release(self, reservation_id: str, now: float) -> bool:
        with self._transaction() as conn:
            held = _take(conn, reservation_id)
            if held is None:
                return False
            estimate, charged, _ = held
            _forget_spent(conn, charged)
            conn.executemany(
                _CORRECT, [(-1, -estimate, c.scope, c.window, c.bucket) for c in charged]
            )
            return True

    def absorb(self, scope: str, window: str, requests: int, tokens: int, now: float) -> None:
        bucket = Window.from_key(window).charge_bucket(now)
        with self._transaction() as conn:
            conn.execute(_UPSERT, (scope, window, bucket, max(0, requests), max(0, tokens)))

    def declare(self, limits: Mapping[str, str], now: float) -> dict[str, str]:
        keys = list(limits)
        with self._transaction() as conn:
            rows = conn.execute(
                f"SELECT scope, limits FROM quotas WHERE scope IN ({_placeholders(len(keys))})",
                keys,
            ).fetchall()
            conn.executemany(
                "INSERT OR REPLACE INTO quotas (scope, limits, seen) VALUES (?, ?, ?)",
                [(key, text, now) for key, text in limits.items()],
            )
        return {str(scope): str(text) for scope, text in rows if limits[scope] != text}

    def counted_scopes(self, since: float) -> set[str]:
        rows = self._guard(
            lambda: (
                self._conn()
                .execute(
                    "SELECT DISTINCT scope FROM buckets WHERE bucket >= ? "
                    "AND (requests > 0 OR tokens > 0)",
                    (math.floor(since),),
                )
                .fetchall()
            )
        )
        return {str(row[0]) for row in rows}

    def cool_down(self, scope: str, until: float, reason: str, kind: str, now: float) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO cooldowns (scope, until, reason, kind) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (scope) DO UPDATE SET until = excluded.until, "
                "reason = excluded.reason, kind = excluded.kind "
                "WHERE cooldowns.until <= ? OR excluded.until >= cooldowns.until",
                (scope, until, reason, kind, now),
            )

    def cooldowns(self, now: float) -> dict[str, Cooldown]:
        rows = self._guard(
            lambda: (
                self._conn()
                .execute("SELECT scope, until, reason, kind FROM cooldowns WHERE until > ?", (now,))
                .fetchall()
            )
        )
        return {r[0]: Cooldown(r[0], float(r[1]), r[2], r[3]) for r in rows}

    def usage(self, scopes: Sequence[Scope], now: float) -> list[RuleUsage]:
        snapshot = self._guard(lambda: _snapshot(self._conn(), [s.key for s in scopes]))
        return [row for scope in scopes for row in rule_usage(scope, snapshot, now)]

    def record(self, endpoint: str, sample: Sample) -> None:
        with self._transaction() as conn:
            _record(conn, endpoint, sample)

    def performance(self, endpoints: Sequence[str]) -> dict[str, Performance]:
        keys = list(endpoints)
        rows = self._guard(
            lambda: (
                self._conn()
                .execute(
                    "SELECT endpoint, latency, tps, ttft, samples FROM performance "
                    f"WHERE endpoint IN ({_placeholders(len(keys))})",
                    keys,
                )
                .fetchall()
            )
        )
        return {r[0]: Performance(r[1], r[2], r[3], int(r[4])) for r in rows}

    def turn(self, key: str) -> int:
        with self._transaction() as conn:
            row = conn.execute(
                "INSERT INTO counters (key, value) VALUES (?, 1) "
                "ON CONFLICT (key) DO UPDATE SET value = value + 1 RETURNING value",
                (key,),
            ).fetchone()
            return int(row[0])

    def reset(self, scope: str | None = None) -> None:
        with self._transaction() as conn:
            if scope is None:
                row = conn.execute("SELECT value FROM counters WHERE key = ?", (GENERATION,))
                last = row.fetchone()
                for table in TABLES:
                    conn.execute(f"DELETE FROM {table}")
                conn.execute(  # never back to a value a decision may have seen
                    "INSERT INTO counters (key, value) VALUES (?, ?)",
                    (GENERATION, (int(last[0]) if last else 0) + 1),
                )
                return
            conn.execute("DELETE FROM performance WHERE endpoint = ?", (scope,))
            conn.execute("DELETE FROM buckets WHERE scope = ?", (scope,))
            conn.execute("DELETE FROM cooldowns WHERE scope = ?", (scope,))
            conn.execute("DELETE FROM quotas WHERE scope = ?", (scope,))
            conn.execute("DELETE FROM spent WHERE scope = ?", (scope,))
            conn.execute("DELETE FROM reservations WHERE endpoint = ?", (scope,))
            conn.execute(_BUMP, (GENERATION,))

    def stats(self) -> dict[str, int]:
        """Row counts per table: state size is bounded by endpoints, not by requests."""

        def count() -> dict[str, int]:
            conn = self._conn()
            return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES}

        return self._guard(count)

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()
        self._shared = None


class _Held:
    """A thread's connection, in that thread's local storage: when the thread ends, its
    storage goes, and a finalizer closes the connection."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


def _snapshot(
    conn: sqlite3.Connection, keys: list[str]
) -> dict[tuple[str, str], dict[int, tuple[int, int]]]:
    snapshot: dict[tuple[str, str], dict[int, tuple[int, int]]] = {}
    rows = conn.execute(
        f"SELECT scope, win, bucket, requests, tokens FROM buckets "
        f"WHERE scope IN ({_placeholders(len(keys))})",
        keys,
    )
    for scope, win, bucket, requests, tokens in rows:
        snapshot.setdefault((scope, win), {})[bucket] = (requests, tokens)
    return snapshot


def _prune_buckets(
    conn: sqlite3.Connection,
    scopes: Sequence[Scope],
    snapshot: dict[tuple[str, str], dict[int, tuple[int, int]]],
    now: float,
) -> None:
    for scope in scopes:
        for window in scope.windows:
            oldest = window.keep_from(now)
            buckets = snapshot.get((scope.key, window.key), {})
            if any(b < oldest for b in buckets):
                conn.execute(
                    "DELETE FROM buckets WHERE scope = ? AND win = ? AND bucket < ?",
                    (scope.key, window.key, oldest),
                )


def _take(conn: sqlite3.Connection, reservation_id: str) -> tuple[int, list[Charge], str] | None:
    """Remove a reservation; its estimate, charges and endpoint (None: unknown)."""
    row = conn.execute(
        "DELETE FROM reservations WHERE id = ? RETURNING tokens, charges, endpoint",
        (reservation_id,),
    ).fetchone()
    return None if row is None else (int(row[0]), _load(str(row[1])), str(row[2]))


def _record(conn: sqlite3.Connection, endpoint: str, sample: Sample) -> None:
    """Fold ``sample`` into ``endpoint``'s moving averages (inside a transaction): in one
    statement, the arithmetic of ``performance.fold``."""
    values = (sample.latency, sample.tokens_per_second, sample.ttft)
    conn.execute(_FOLD, (endpoint, *values, ALPHA))


def _dump(items: Sequence[Charge]) -> str:
    return json.dumps([[c.scope, c.window, c.bucket] for c in items], separators=(",", ":"))


def _load(text: str) -> list[Charge]:
    return [Charge(str(s), str(w), int(b)) for s, w, b in json.loads(text)]


def _spent_row(memo: Spent) -> tuple[object, ...]:
    r = memo.refusal
    fields = (r.scope, r.retry_at, r.endpoint, r.rule, r.used, r.limit, r.requested, r.reason)
    return (*fields, memo.window, memo.requests, memo.tokens)


def _spent_of(row: tuple[Any, ...]) -> Spent:
    scope, until, endpoint, rule, used, limit, requested, reason, window, requests, tokens = row
    refusal = Refusal(endpoint, scope, rule, used, limit, requested, float(until), reason)
    return Spent(refusal, window, int(requests), int(tokens))


def _forget_spent(conn: sqlite3.Connection, charged: Sequence[Charge]) -> None:
    """Usage in these scopes is given back or moved: what they refused may fit sooner."""
    scopes = list({c.scope: None for c in charged})
    gone = conn.execute(f"DELETE FROM spent WHERE scope IN ({_placeholders(len(scopes))})", scopes)
    if gone.rowcount > 0:
        conn.execute(_BUMP, (GENERATION,))
