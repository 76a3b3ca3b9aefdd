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

FORKS = [0]
"""How many times this process is a fork's child (its parent's connections are not its own)."""
os.register_at_fork(after_in_child=lambda: FORKS.__setitem__(0, FORKS[0] + 1))

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
        self._forks = FORKS[0]
        self._impatient: set[int] = set()
        """The connections (by id) whose busy timeout is 0 (see ``_patience``)."""
        # ":memory:" is one database per connection: share one connection, one at a time
        self._shared: sqlite3.Connection | None = None
        self.serial = contextlib.nullcontext() if path != ":memory:" else threading.RLock()
        if path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.conn()

    def conn(self) -> sqlite3.Connection:
        if FORKS[0] != self._forks:  # forked: never reuse the parent's connections
            self._local = threading.local()
            self._connections = []
            self._impatient = set()
            self._forks = FORKS[0]
        held: _Held | None = getattr(self._local, "held", None)
        conn: sqlite3.Connection | None = self._shared or (held.conn if held else None)
        if conn is None:
            conn = self.guard(self._open_nowait if self.waitless() else self._open)
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

    def waitless(self) -> bool:
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
        nowait = self.waitless()
        if self._impatient and not nowait:
            held: _Held | None = getattr(self._local, "held", None)
            existing = self._shared or (held.conn if held else None)
            if existing is not None:  # (none yet: this call opens it, patient)
                self._patience(existing, True)
        try:
            with self.serial:
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

    def transaction(self) -> Transaction:
        """A write transaction (``BEGIN IMMEDIATE``) on this thread's connection, committed
        when its block ends, rolled back if the block raises."""
        return Transaction(self)

    def begin(self, conn: sqlite3.Connection, nowait: bool) -> None:
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


class Transaction:
    """One write transaction of a ``Connections`` (a class, not a generator: a store step
    runs two of these per call, and each layer of ``contextmanager`` costs a few µs)."""

    __slots__ = ("_conn", "_db", "_locked")

    def __init__(self, db: Connections) -> None:
        self._db = db
        self._conn: sqlite3.Connection | None = None
        self._locked = False

    def __enter__(self) -> sqlite3.Connection:
        db = self._db
        nowait = db.waitless()
        serial = db.serial
        if not isinstance(serial, contextlib.nullcontext):  # ":memory:": one user at a time
            if not serial.acquire(blocking=not nowait):
                raise WouldBlock("another thread holds the in-memory database")
            self._locked = True
        try:
            conn = db.conn()
            db.begin(conn, nowait)
        except BaseException as exc:
            self._unlock()
            if isinstance(exc, sqlite3.Error):
                raise store_error(db.path, exc) from exc
            raise
        self._conn = conn
        return conn

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        conn, self._conn = self._conn, None
        assert conn is not None
        try:
            if exc is None:
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error as failed:  # still open: end it, changing nothing
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise store_error(self._db.path, failed) from failed
                return
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error as failed:
                raise store_error(self._db.path, failed) from exc
            if isinstance(exc, sqlite3.Error):
                raise store_error(self._db.path, exc) from exc
        finally:
            self._unlock()

    def _unlock(self) -> None:
        serial = self._db.serial
        if self._locked and not isinstance(serial, contextlib.nullcontext):
            self._locked = False
            serial.release()


class _Held:
    """A thread's connection, in that thread's local storage: when the thread ends, its
    storage goes, and a finalizer closes the connection."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


def _busy(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` means another connection holds the lock."""
    return exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
