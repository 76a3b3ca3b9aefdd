"""The SQLite store's steps after a call: settle (the real usage, the charge moved to the
outcome's moment, the speed sample) and release, each one write transaction; the base of
``SQLiteStore`` (``sqlite.py``), which decides and charges."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from .._policy.performance import Sample
from .._policy.quota import Charge, moved
from .sqlite_mirror import Mirror, Mirrors
from .sqlite_reads import SQLiteReads
from .sqlite_rows import (
    CORRECT,
    UPSERT,
    Held,
    fold_samples,
    forget_spent,
    give_back_leases,
    take_reservation,
)
from .sqlite_samples import Claim
from .sqlite_step import Step


class SQLiteSettles(SQLiteReads):
    """Settle and release over the connections ``_db``, with each connection's mirror."""

    _mirrors: Mirrors
    _flying: dict[str, tuple[Held, float]]
    """Reservations held in flight by this process: record and settle deadline, by id."""
    _leased: set[str]
    """The reservations of ``_flying`` that hold concurrency leases."""

    def _step(self) -> Step:
        """A write transaction with this connection's mirror checked at its start and
        dropped if the step fails (see ``sqlite_step``)."""
        return Step(self._db.transaction(), self._mirrors)

    def _on_record(
        self,
        reservation_id: str,
        now: float,
        apply: Callable[[sqlite3.Connection, Mirror, Held], None],
    ) -> bool:
        """One step on a reservation: ``apply`` to its record (from this process if it was
        held in flight, put back if the step fails; else from the table, removed there);
        False, and nothing applied, past its settle deadline or if it is unknown. Its
        concurrency leases are given back in the same step."""
        flying = self._flying.pop(reservation_id, None)
        try:
            with self._step() as (conn, mirror):
                if flying is None:
                    held = take_reservation(conn, reservation_id, now)
                else:
                    held = flying[0] if flying[1] >= now else None
                if held is not None:
                    leased = flying is None or reservation_id in self._leased
                    if leased and give_back_leases(conn, reservation_id):
                        mirror.bumped()
                    apply(conn, mirror, held)
        except BaseException:
            if flying is not None:
                self._flying[reservation_id] = flying
            raise
        self._leased.discard(reservation_id)
        return held is not None

    def settle(
        self,
        reservation_id: str,
        tokens: int,
        now: float,
        sample: Sample | None = None,
        usd: int | None = None,
    ) -> bool:
        claims: list[Claim] = []

        def apply(conn: sqlite3.Connection, mirror: Mirror, held: Held) -> None:
            if sample is not None:  # the speed: written at most once a second
                claims.append(self._samples.claim(held[2], sample, now))
                fold_samples(conn, held[2], claims[0].batch)
            self._settle(conn, mirror, held, tokens, now, usd)

        try:
            return self._on_record(reservation_id, now, apply)
        except BaseException:
            for claim in claims:
                self._samples.undo(claim)
            raise

    def _settle(
        self,
        conn: sqlite3.Connection,
        mirror: Mirror,
        held: Held,
        tokens: int,
        now: float,
        usd: int | None,
    ) -> None:
        """Correct the buckets ``held`` charged with the real usage, moved to ``now`` (the
        buckets of the outcome's moment)."""
        estimate, charged, _, priced = held
        self._forget_spent(conn, mirror, charged)
        actual, paid = max(0, tokens), priced if usd is None else max(0, usd)
        corrections: list[tuple[int, int, int, str, str, int]] = []
        additions: list[tuple[str, str, int, int, int, int]] = []
        for c, bucket in moved(charged, now):
            if bucket == c.bucket:
                corrections.append((0, actual - estimate, paid - priced, c.scope, c.window, bucket))
            else:
                corrections.append((-1, -estimate, -priced, c.scope, c.window, c.bucket))
                additions.append((c.scope, c.window, bucket, 1, actual, paid))
        conn.executemany(CORRECT, corrections)
        if additions:
            conn.executemany(UPSERT, additions)
        if mirror.loaded:
            for r, t, u, scope, window, bucket in corrections:
                mirror.correct(scope, window, bucket, r, t, u)
            for scope, window, bucket, r, t, u in additions:
                mirror.add(scope, window, bucket, r, t, u)

    def _forget_spent(
        self, conn: sqlite3.Connection, mirror: Mirror, charged: Sequence[Charge]
    ) -> None:
        """Usage in these scopes is given back or moved: what they refused may fit sooner.
        Nothing to write when the mirror holds no refusal of theirs."""
        known = mirror.known
        if known is not None and (not known or not any(c.scope in known for c in charged)):
            return
        scopes = list({c.scope: None for c in charged})
        if forget_spent(conn, scopes):
            mirror.bumped()
        if known is not None:
            for scope in scopes:
                known.pop(scope, None)

    def release(self, reservation_id: str, now: float) -> bool:
        return self._on_record(reservation_id, now, self._release)

    def _release(self, conn: sqlite3.Connection, mirror: Mirror, held: Held) -> None:
        """Give back everything ``held`` charged."""
        estimate, charged, _, priced = held
        self._forget_spent(conn, mirror, charged)
        conn.executemany(
            CORRECT, [(-1, -estimate, -priced, c.scope, c.window, c.bucket) for c in charged]
        )
        for c in charged:
            mirror.correct(c.scope, c.window, c.bucket, -1, -estimate, -priced)
