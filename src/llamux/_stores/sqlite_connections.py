"""The connections of one SQLite file: one per thread, closed when its thread ends; the
transactions every step runs in (``BEGIN IMMEDIATE``); and ``nowait``, for steps on an event
loop that must not wait for another writer (see ``waiting``)."""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from .sqlite_schema import migrate, store_error
from .waiting import WouldBlock

BUSY_MS = 60_000
"""How long a step waits for another writer before it fails (milliseconds)."""

T = TypeVar("T")


class Connections:
    """Connections to the file at ``path`` (``":memory:"``: one shared, one user at a time)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._impatient: set[int] = set()
        """The connections (by id) whose busy timeout is 0 (see ``_patience``)."""
        # ":memory:" is one database per connection: share one connection, one at a time
        self._shared: sqlite3.Connection | None = None
        self._serial = contextlib.nullcontext() if path != ":memory:" else threading.RLock()
        if path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.conn()

    def conn(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:  # forked: never reuse the parent's connections
            self._local = threading.local()
            self._connections = []
            self._impatient = set()
            self._pid = os.getpid()
        held: _Held | None = getattr(self._local, "held", None)
        conn: sqlite3.Connection | None = self._shared or (held.conn if held else None)
        if conn is None:
            conn = self.guard(self._open_nowait if self._waitless() else self._open)
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
            self._impatient.discard(id(conn))
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
            if _busy(exc):
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

    def guard(self, action: Callable[[], T]) -> T:
        """Run a read; like a step, it gives up at once within ``nowait``."""
        nowait = self._waitless()
        if self._impatient and not nowait:
            held: _Held | None = getattr(self._local, "held", None)
            existing = self._shared or (held.conn if held else None)
            if existing is not None:  # (none yet: this call opens it, patient)
                self._patience(existing, True)
        try:
            with self._serial:
                return action()
        except sqlite3.OperationalError as exc:
            if nowait and _busy(exc):
                raise WouldBlock(str(exc)) from None
            raise store_error(self.path, exc) from exc
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
    def transaction(self) -> Iterator[sqlite3.Connection]:
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
        conn = self.conn()
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
        self._patience(conn, not nowait)
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if nowait and _busy(exc):
                raise WouldBlock(str(exc)) from None
            raise

    def _patience(self, conn: sqlite3.Connection, wait: bool) -> None:
        """Make ``conn`` wait for other writers (``BUSY_MS``) or not at all. Changed only when
        it must: an event loop's connection stays impatient between its steps."""
        impatient = id(conn) in self._impatient
        if impatient == wait:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_MS if wait else 0}")
            if wait:
                self._impatient.discard(id(conn))
            else:
                self._impatient.add(id(conn))

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
            self._impatient = set()
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


def _busy(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` means another connection holds the lock."""
    return exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
