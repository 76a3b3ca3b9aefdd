"""What one connection knows of the state file between its own transactions.

A decision on SQLite reads the store's generation, the resting and spent scopes and the
buckets of its candidates. While no other connection writes, all of it is what this
connection itself last wrote: SQLite's ``PRAGMA data_version`` (unchanged until another
connection commits) tells that, in one cheap read inside the write transaction. The mirror
keeps those reads and applies this connection's own writes to them, exactly as the SQL does
(the same additions and ``max(0, ...)`` corrections), so a process that is alone on its file
decides without reading a row. When another connection has written, the mirror is dropped
and filled again from the file. A transaction that fails drops it too.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from .._policy.passing import Spent
from .._policy.quota import Cooldown

Rows = dict[tuple[str, str], dict[int, tuple[int, int, int]]]


class Mirror:
    """One connection's copy of what decisions read (see the module's docstring)."""

    def __init__(self) -> None:
        self.version: int | None = None
        self.stable = False
        """Whether no other connection wrote between this connection's last two steps."""
        self.generation: int | None = None
        self.resting: dict[str, Cooldown] | None = None
        """Every cool-down row by scope (ended ones too: their readers compare the time)."""
        self.known: dict[str, Spent] | None = None
        """Every remembered refusal by scope (their readers compare the time)."""
        self.buckets: Rows = {}
        self.loaded: set[str] = set()
        """The scopes whose every bucket is in ``buckets``."""

    def check(self, conn: sqlite3.Connection) -> None:
        """At the start of a write transaction: keep what is held only if no other
        connection has committed since this one's last step."""
        version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        stable = version == self.version
        if not stable:
            self.forget()
            self.version = version
        self.stable = stable

    def forget(self) -> None:
        """Drop everything held (another connection wrote, or a step failed)."""
        self.stable = False
        self.version = None
        self.generation = None
        self.resting = None
        self.known = None
        self.buckets = {}
        self.loaded = set()

    def snapshot(self, keys: Sequence[str]) -> Rows | None:
        """The buckets of the scopes ``keys``, if all are held."""
        if not all(key in self.loaded for key in keys):
            return None
        return self.buckets

    def load(self, keys: Sequence[str], rows: Rows) -> None:
        """Hold the buckets just read of the scopes ``keys`` (every bucket of each)."""
        for pair in [pair for pair in self.buckets if pair[0] in keys]:
            del self.buckets[pair]
        for pair, buckets in rows.items():
            if pair[0] in keys:
                self.buckets[pair] = dict(buckets)
        self.loaded.update(keys)

    def add(self, scope: str, window: str, bucket: int, r: int, t: int, u: int) -> None:
        """As ``UPSERT``: add to a bucket, creating it."""
        if scope in self.loaded:
            held = self.buckets.setdefault((scope, window), {})
            old = held.get(bucket, (0, 0, 0))
            held[bucket] = (old[0] + r, old[1] + t, old[2] + u)

    def correct(self, scope: str, window: str, bucket: int, r: int, t: int, u: int) -> None:
        """As ``CORRECT``: add to an existing bucket, never below zero."""
        if scope in self.loaded:
            held = self.buckets.get((scope, window))
            old = held.get(bucket) if held is not None else None
            if held is not None and old is not None:
                held[bucket] = (max(0, old[0] + r), max(0, old[1] + t), max(0, old[2] + u))

    def prune(self, scope: str, window: str, oldest: int) -> None:
        """As the sweep: drop the buckets before ``oldest``."""
        held = self.buckets.get((scope, window))
        if held:
            for stale in [b for b in held if b < oldest]:
                del held[stale]

    def bumped(self) -> None:
        """This connection bumped the generation."""
        if self.generation is not None:
            self.generation += 1


class Mirrors:
    """The mirror of each connection (by identity: a connection of another thread, or a
    new one after a fork, gets its own)."""

    def __init__(self) -> None:
        self._held: dict[int, tuple[sqlite3.Connection, Mirror]] = {}

    def of(self, conn: sqlite3.Connection) -> Mirror:
        entry = self._held.get(id(conn))
        if entry is None or entry[0] is not conn:
            if len(self._held) > 256:  # connections of ended threads: start afresh
                self._held.clear()
            entry = self._held[id(conn)] = (conn, Mirror())
        return entry[1]

    def forget(self) -> None:
        """Drop every mirror (a reset, or closing)."""
        self._held.clear()
