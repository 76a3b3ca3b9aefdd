"""A step of the SQLite store: one write transaction, with its connection's mirror checked
at the start and dropped if the step fails, and what the step writes first (the settles
the process holds, ``sqlite_later``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from .sqlite_connections import Transaction
from .sqlite_mirror import Mirror, Mirrors

Before = Callable[[sqlite3.Connection, Mirror], Callable[[], None] | None]
"""What a step writes first; it returns what undoes its taking if the step fails."""


class Step:
    """A store step (a class, not a generator: a call runs two of these, and each layer of
    ``contextmanager`` costs a few µs). If the step fails, its mirror is dropped: what it
    applied may have been rolled back."""

    __slots__ = ("_before", "_mirror", "_mirrors", "_transaction", "_undo")

    def __init__(
        self, transaction: Transaction, mirrors: Mirrors, before: Before | None = None
    ) -> None:
        self._transaction = transaction
        self._mirrors = mirrors
        self._mirror: Mirror | None = None
        self._before = before
        self._undo: Callable[[], None] | None = None

    def __enter__(self) -> tuple[sqlite3.Connection, Mirror]:
        conn = self._transaction.__enter__()
        try:
            mirror = self._mirror = self._mirrors.of(conn)
            mirror.check(conn)
            if self._before is not None:
                self._undo = self._before(conn, mirror)
        except BaseException as exc:
            self._failed()
            self._transaction.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return conn, mirror

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if exc is not None:
            self._failed()
        try:
            self._transaction.__exit__(kind, exc, tb)
        except BaseException:
            if exc is None:  # the commit failed: nothing this step wrote holds
                self._failed()
            raise

    def _failed(self) -> None:
        if self._mirror is not None:
            self._mirror.forget()
        undo, self._undo = self._undo, None
        if undo is not None:
            undo()
