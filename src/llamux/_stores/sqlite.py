"""The embedded default store: one SQLite file shared by every thread and process of a machine.

WAL journal, one ``BEGIN IMMEDIATE`` transaction per operation (so a reservation checks and
charges every rule atomically against all other processes), ``synchronous=NORMAL`` (a
process crash loses nothing; only a power cut may lose the last transactions), schema
migrations as a numbered list recorded in ``PRAGMA user_version``. Two things make a call
cheaper than two transactions: a settle that only gives back waits for the process's next
one (``sqlite_later``), and a call far from its limits reserves the next few calls' quota
in its own (``sqlite_ahead``), so most calls in a busy process need no transaction at all.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from .._errors import StoreError
from .._policy.passing import (
    MADE_LIMIT,
    Candidate,
    Pick,
    Spent,
    cooling,
    judge,
    single,
    still_spent,
    walk,
)
from .._policy.performance import Sample
from .._policy.quota import (
    SETTLE_DEADLINE,
    Cooldown,
    Cost,
    Refusal,
    Reservation,
    kept_until,
    lease_until,
    read_now,
)
from .._policy.rules import Scope
from .._policy.window import Window
from .sqlite_ahead import Ahead, lease_for, lease_rows, unit_of
from .sqlite_connections import Connections
from .sqlite_later import Later
from .sqlite_mirror import Mirror, Mirrors
from .sqlite_rows import (
    BUMP,
    GENERATION,
    PASSING,
    PASSING_ALL,
    REMEMBER,
    UPSERT,
    Held,
    cap_reservations,
    dump_charges,
    fold_samples,
    generation_of,
    placeholders,
    prune_buckets,
    read_leases,
    read_snapshot,
    read_totals,
    spent_of,
    spent_row,
)
from .sqlite_samples import HeldSamples
from .sqlite_schema import TABLES
from .sqlite_settles import SQLiteSettles

log = logging.getLogger("llamux")

PRUNE_EVERY = 60.0
CAP_EVERY = 64
"""A process checks an endpoint's count of unsettled reservations every this many it made
there: the table holds at most about ``UNSETTLED_KEPT`` + this per process, per endpoint."""


class SQLiteStore(SQLiteSettles):
    """Quota state in one SQLite file (``":memory:"`` for a private, per-connection one)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self._db = Connections(self.path)  # opens and migrates now: a bad file fails here
        self._pruned_at = 0.0
        self._made: dict[tuple[str, Cooldown], Refusal] = {}  # refusals of resting scopes
        self._parsed: dict[tuple[Any, ...], Spent] = {}  # rows of the spent table, parsed
        self._flying: dict[str, tuple[Held, float]] = {}
        """Reservations held in flight (``flight > 0``: a call llamux makes itself, settled by
        this process and no other), by id: its record (``Held``) and its settle deadline. Kept
        here, not in the table: one write and one delete fewer per call. If the process dies,
        its in-flight charges lapse as documented; nothing else could have settled them."""
        self._leased: set[str] = set()
        """The reservations of ``_flying`` that hold concurrency leases (in the table)."""
        self._mirrors = Mirrors()
        """Each connection's copy of what decisions read (see ``sqlite_mirror``)."""
        self._samples = HeldSamples()
        """Speed samples not yet written (at most one write per endpoint per second)."""
        self._pruned: dict[tuple[str, str], int] = {}
        """Per (scope, window), its oldest kept bucket at this process's last sweep."""
        self._made_at: dict[str, int] = {}
        """Per endpoint, the unsettled query reservations this process made there (to cap)."""
        self._later = Later(self._flush_held)
        """Settles held for this process's next step (see ``sqlite_later``)."""
        self._ahead = Ahead()
        """Requests reserved ahead for the next calls (see ``sqlite_ahead``)."""

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    def nowait(self) -> AbstractContextManager[None]:
        """Within it, on this thread, a step that would wait for another writer raises
        ``WouldBlock`` at once, before it changes anything (see ``waiting``)."""
        return self._db.nowait()

    # -- operations --------------------------------------------------------------------

    def reserve(
        self,
        endpoint: str,
        scopes: Sequence[Scope],
        cost: Cost,
        now: float | Callable[[], float],
        flight: float = 0.0,
    ) -> Reservation | Refusal:
        return single(self.reserve_first([Candidate(endpoint, scopes, cost)], now, flight))

    def reserve_first(
        self,
        candidates: Iterable[Candidate],
        now: float | Callable[[], float],
        flight: float = 0.0,
    ) -> Pick:
        first: Candidate | None = getattr(candidates, "first", None)  # the router's walk
        ahead = first is not None and flight > 0  # a call llamux makes: it may lease
        if ahead and first is not None:
            made = self._leased_unit(first, now, flight)
            if made is not None:
                return Pick(made, (), None)
        with self._step() as (conn, mirror):
            at = read_now(now)  # after BEGIN IMMEDIATE: a wait for the lock is not lost
            resting: dict[str, Cooldown] | None = None
            known: dict[str, Spent] = {}

            def one(candidate: Candidate, passed: bool) -> Reservation | Refusal:
                # past a known prefix few candidates are left: read what rests for each;
                # else read it for all scopes at once (or hold it all, see ``Mirror``)
                nonlocal resting, known
                if mirror.stable or mirror.resting is not None:
                    resting, known = self._passing_held(conn, mirror)
                elif passed:
                    resting, known = self._passing(conn, at, candidate.scopes)
                elif resting is None:
                    resting, known = self._passing(conn, at)
                return (
                    cooling(candidate, resting, at, self._made)
                    or still_spent(candidate, known, at)
                    or self._reserve(conn, mirror, candidate, at, flight, ahead)
                )

            if mirror.generation is None:
                mirror.generation = generation_of(conn)
            return walk(candidates, mirror.generation, at, one)

    def _passing_held(
        self, conn: sqlite3.Connection, mirror: Mirror
    ) -> tuple[dict[str, Cooldown], dict[str, Spent]]:
        """Every cool-down and remembered refusal, as the mirror holds them (read once)."""
        if mirror.resting is None or mirror.known is None:
            mirror.resting, mirror.known = self._parse(conn.execute(PASSING_ALL))
        return mirror.resting, mirror.known

    def _passing(
        self, conn: sqlite3.Connection, now: float, scopes: Sequence[Scope] | None = None
    ) -> tuple[dict[str, Cooldown], dict[str, Spent]]:
        """Every scope (of ``scopes``, default all) resting at ``now`` and every refusal
        remembered until later, in one read (a row per such scope); each remembered row is
        parsed once per process."""
        if scopes is None:
            return self._parse(conn.execute(PASSING, (now, now)))
        keys = [scope.key for scope in scopes]
        marks = placeholders(len(keys))
        query = PASSING.replace("until > ?", f"until > ? AND scope IN ({marks})")
        return self._parse(conn.execute(query, (now, *keys, now, *keys)))

    def _parse(self, rows: Iterable[Any]) -> tuple[dict[str, Cooldown], dict[str, Spent]]:
        """Rows of ``PASSING``: the cool-downs and the remembered refusals, by scope."""
        resting: dict[str, Cooldown] = {}
        known: dict[str, Spent] = {}
        for row in rows:
            if row[0] == "c":
                resting[row[1]] = Cooldown(row[1], float(row[2]), row[3], row[4])
                continue
            memo = self._parsed.get(row)
            if memo is None:
                if len(self._parsed) > MADE_LIMIT:
                    self._parsed.clear()
                memo = self._parsed[row] = spent_of(row[1:])
            known[row[1]] = memo
        return resting, known

    def _reserve(
        self,
        conn: sqlite3.Connection,
        mirror: Mirror,
        candidate: Candidate,
        now: float,
        flight: float,
        ahead: bool = False,
    ) -> Reservation | Refusal:
        reservation, memo = self._judge(conn, mirror, candidate, now, flight)
        if not isinstance(reservation, Reservation):
            if memo is not None:
                conn.execute(REMEMBER, spent_row(memo))
                if mirror.known is not None:
                    mirror.known[memo.refusal.scope] = memo
            return reservation
        self._charge(conn, mirror, reservation, candidate.cost, now, flight)
        if ahead:
            self._lend(conn, mirror, reservation, candidate)
        prune_buckets(conn, candidate.scopes, self._pruned, now, mirror)
        if now - self._pruned_at > PRUNE_EVERY:
            self._pruned_at = now
            conn.execute("DELETE FROM reservations WHERE created < ?", (now - SETTLE_DEADLINE,))
            stale = [r for r, fly in self._flying.items() if fly[1] < now]
            for rid in stale:  # never settled (a stream dropped unread): as the table's rows
                self._flying.pop(rid, None)
                self._leased.discard(rid)
        return reservation

    def _leased_unit(
        self, first: Candidate, now: float | Callable[[], float], flight: float
    ) -> Reservation | None:
        """A reservation for ``first`` from its endpoint's lease, without a step (see
        ``sqlite_ahead``), or None."""
        lease = self._ahead.take(first.endpoint, first.scopes, first.cost)
        if lease is None:
            return None
        if first.ready is not None:
            first.ready()
        made = unit_of(lease, first.endpoint, read_now(now))
        self._fly(made, flight)
        return made

    def _fly(self, made: Reservation, flight: float) -> None:
        """Keep the record of a reservation in flight in this process, which settles it
        (see ``_flying``)."""
        held = (made.tokens, list(made.charges), made.endpoint, made.usd)
        self._flying[made.id] = (held, kept_until(made.created, flight))

    def _lend(
        self, conn: sqlite3.Connection, mirror: Mirror, made: Reservation, candidate: Candidate
    ) -> None:
        """Charge a lease for the next calls beside ``made``, if far from every limit."""
        lease = lease_for(made, candidate.scopes, candidate.cost)
        if lease is not None:
            rows = lease_rows(lease)
            conn.executemany(UPSERT, rows)
            for row in rows:
                mirror.add(*row)
            self._ahead.grant(made.endpoint, lease)
            self._later.wake()  # the flusher gives back what is left if no step comes

    def _judge(
        self,
        conn: sqlite3.Connection,
        mirror: Mirror,
        candidate: Candidate,
        now: float,
        flight: float,
    ) -> tuple[Reservation | Refusal, Spent | None]:
        """The decision on one candidate: on the buckets the mirror holds (read into it
        first when this connection is alone on the file), else on the sums SQLite adds up,
        with the buckets read only to say when a refusal frees."""
        scopes = candidate.scopes
        keys = [scope.key for scope in scopes]
        leases = read_leases(conn, scopes, now)
        snapshot = mirror.snapshot(keys)
        if snapshot is None and mirror.stable:  # alone on the file: worth holding them all
            mirror.load(keys, read_snapshot(conn, keys))
            snapshot = mirror.snapshot(keys)
        if snapshot is not None:
            return judge(candidate, snapshot, now, flight, leases)
        decided = judge(candidate, read_totals(conn, scopes, now), now, flight, leases)
        if isinstance(decided[0], Reservation):
            return decided
        return judge(candidate, read_snapshot(conn, keys), now, flight, leases)

    def _charge(
        self,
        conn: sqlite3.Connection,
        mirror: Mirror,
        reservation: Reservation,
        cost: Cost,
        now: float,
        flight: float,
    ) -> None:
        """Record an admitted reservation: its leases, its charges, and its record (in this
        process while in flight, else in the table, capped per endpoint)."""
        if reservation.leases:  # in the same transaction as the charges
            until = lease_until(now, flight)
            conn.executemany(
                "INSERT OR REPLACE INTO leases (scope, id, expires) VALUES (?, ?, ?)",
                [(scope, reservation.id, until) for scope in reservation.leases],
            )
            if flight > 0:
                self._leased.add(reservation.id)
        charged = [(c.scope, c.window, c.bucket) for c in reservation.charges]
        conn.executemany(UPSERT, [(*c, cost.requests, cost.tokens, cost.usd) for c in charged])
        for c in charged:
            mirror.add(*c, cost.requests, cost.tokens, cost.usd)
        endpoint = reservation.endpoint
        if flight > 0:  # held in flight: this process settles it (see ``_flying``)
            self._fly(reservation, flight)
            return
        conn.execute(
            "INSERT INTO reservations (id, endpoint, tokens, created, charges, usd) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                reservation.id,
                endpoint,
                cost.tokens,
                now,
                dump_charges(reservation.charges),
                cost.usd,
            ),
        )
        made = self._made_at[endpoint] = self._made_at.get(endpoint, 0) + 1
        if made % CAP_EVERY == 0:
            cap_reservations(conn, endpoint)

    def absorb(self, scope: str, window: str, requests: int, tokens: int, now: float) -> None:
        bucket = Window.from_key(window).charge_bucket(now)
        with self._step() as (conn, mirror):
            conn.execute(UPSERT, (scope, window, bucket, max(0, requests), max(0, tokens), 0))
            mirror.add(scope, window, bucket, max(0, requests), max(0, tokens), 0)

    def cool_down(self, scope: str, until: float, reason: str, kind: str, now: float) -> None:
        with self._step() as (conn, mirror):
            mirror.resting = mirror.known = None  # read again by the next decision
            conn.execute(
                "INSERT INTO cooldowns (scope, until, reason, kind) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (scope) DO UPDATE SET until = excluded.until, "
                "reason = excluded.reason, kind = excluded.kind "
                "WHERE cooldowns.until <= ? OR excluded.until >= cooldowns.until",
                (scope, until, reason, kind, now),
            )

    def record(self, endpoint: str, sample: Sample) -> None:
        with self._db.transaction() as conn:
            fold_samples(conn, endpoint, [sample])

    def reset(self, scope: str | None = None) -> None:
        with self._step() as (conn, mirror):
            mirror.forget()
            if scope is None:
                last = generation_of(conn)
                for table in TABLES:
                    conn.execute(f"DELETE FROM {table}")
                self._flying.clear()
                self._leased.clear()
                self._samples.forget()
                conn.execute(  # never back to a value a decision may have seen
                    "INSERT INTO counters (key, value) VALUES (?, ?)",
                    (GENERATION, last + 1),
                )
                return
            conn.execute("DELETE FROM performance WHERE endpoint = ?", (scope,))
            self._samples.forget(scope)
            conn.execute("DELETE FROM buckets WHERE scope = ?", (scope,))
            conn.execute("DELETE FROM cooldowns WHERE scope = ?", (scope,))
            conn.execute("DELETE FROM quotas WHERE scope = ?", (scope,))
            conn.execute("DELETE FROM learned WHERE scope = ?", (scope,))
            conn.execute("DELETE FROM spent WHERE scope = ?", (scope,))
            conn.execute("DELETE FROM leases WHERE scope = ?", (scope,))
            conn.execute("DELETE FROM reservations WHERE endpoint = ?", (scope,))
            for rid in [r for r, fly in self._flying.items() if fly[0][2] == scope]:
                self._flying.pop(rid, None)
            conn.execute(BUMP, (GENERATION,))

    def close(self) -> None:
        try:
            self._flush_held()
        except StoreError as exc:  # their estimates stay counted: conservative
            log.warning("llamux: held settles were not written at close (%s)", exc)
        self._later.closed = True
        held = self._samples.take_all()
        try:
            if held:
                with self._db.transaction() as conn:
                    for endpoint, samples in held.items():
                        fold_samples(conn, endpoint, samples)
        except StoreError as exc:  # speeds only: nothing a quota depends on
            log.debug("llamux: the last speed samples were not written (%s)", exc)
        finally:
            self._mirrors.forget()
            self._db.close()
