"""The SQLite store's steps after a call: settle (the real usage, the charge moved to the
outcome's moment, the speed sample) and release, each one write transaction, or, for a
settle that only gives quota back, written first by the process's next step
(``sqlite_later``); the base of ``SQLiteStore`` (``sqlite.py``), which decides and charges."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from .._policy.performance import Sample
from .._policy.quota import Charge, moved
from .sqlite_ahead import Ahead, Lease
from .sqlite_later import Item, Later
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
    _later: Later
    """Settles held for the next step (see ``sqlite_later``)."""
    _ahead: Ahead
    """Requests reserved ahead for the next calls (see ``sqlite_ahead``)."""

    def _step(self) -> Step:
        """A write transaction with this connection's mirror checked at its start and
        dropped if the step fails, which first writes the settles held (see ``sqlite_step``)."""
        return Step(self._db.transaction(), self._mirrors, self._write_held)

    def _write_held(self, conn: sqlite3.Connection, mirror: Mirror) -> Callable[[], None] | None:
        """Write the settles held for this step, and give back what requests reserved ahead
        are left (``sqlite_ahead``); what holds the settles again if the step fails (the
        units given back are then lost to this process, and stay counted)."""
        for lease in self._ahead.end_all():
            self._give_back(conn, mirror, lease)
        items = self._later.take()
        if not items:
            return None
        try:
            for held, tokens, at, usd in items:
                self._settle(conn, mirror, held, tokens, at, usd)
        except BaseException:
            self._later.give_back(items)
            raise
        return lambda: self._later.give_back(items)

    def _give_back(self, conn: sqlite3.Connection, mirror: Mirror, lease: Lease) -> None:
        """Give back the units a lease still holds: a release of each, all at once."""
        cost = lease.cost
        self._release(conn, mirror, (cost.tokens, list(lease.charges), "", cost.usd), lease.units)

    def _flush_held(self) -> None:
        """Write the settles held now, and give back the requests reserved ahead, in a step
        of their own."""
        if self._later.items or self._ahead.held:
            with self._step():
                pass

    def _written(self) -> None:
        self._flush_held()

    def _hold(
        self,
        reservation_id: str,
        flying: tuple[Held, float] | None,
        tokens: int,
        now: float,
        usd: int | None,
        claims: list[Claim],
    ) -> bool:
        """Hold a settle of a reservation this process has in flight (``flying``, its record
        and deadline), if it only gives quota back and needs nothing else written now (no
        lease, no speed samples due)."""
        if flying is None or reservation_id in self._leased or flying[1] < now:
            return False
        held = flying[0]
        if max(0, tokens) > held[0] or (usd is not None and max(0, usd) > held[3]):
            return False  # more than estimated: others must count it now
        if claims and claims[0].batch:
            return False
        if self._flying.pop(reservation_id, None) is None:
            return False
        item: Item = (held, tokens, now, usd)
        if self._later.hold(item):
            return True
        self._flying[reservation_id] = flying
        return False

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
        flying = self._flying.get(reservation_id)
        if flying is not None and sample is not None:  # the speed: written once a second
            claims.append(self._samples.claim(flying[0][2], sample, now))

        def apply(conn: sqlite3.Connection, mirror: Mirror, held: Held) -> None:
            if sample is not None:
                if not claims:
                    claims.append(self._samples.claim(held[2], sample, now))
                fold_samples(conn, held[2], claims[0].batch)
            self._settle(conn, mirror, held, tokens, now, usd)

        try:
            if self._hold(reservation_id, flying, tokens, now, usd, claims):
                return True
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

    def _release(
        self, conn: sqlite3.Connection, mirror: Mirror, held: Held, units: int = 1
    ) -> None:
        """Give back everything ``held`` charged (``units`` times: a lease's unused units)."""
        estimate, charged, _, priced = held
        r, t, u = -units, -estimate * units, -priced * units
        self._forget_spent(conn, mirror, charged)
        conn.executemany(CORRECT, [(r, t, u, c.scope, c.window, c.bucket) for c in charged])
        for c in charged:
            mirror.correct(c.scope, c.window, c.bucket, r, t, u)
