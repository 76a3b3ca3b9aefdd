"""The SQLite state file's schema: numbered migrations, recorded in ``PRAGMA user_version``,
the checks that a file is a llamux state file of a version this llamux knows, and what its
failures mean for the user."""

from __future__ import annotations

import sqlite3

from .._errors import StoreError

APPLICATION_ID = 0x6C6C6D78  # "llmx": marks a file as a llamux state file

MIGRATIONS: tuple[str, ...] = (
    # 1: buckets, reservations, cool-downs
    """
    CREATE TABLE buckets (
        scope TEXT NOT NULL, win TEXT NOT NULL, bucket INTEGER NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0, tokens INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (scope, win, bucket)
    ) WITHOUT ROWID;
    CREATE TABLE reservations (
        id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, tokens INTEGER NOT NULL,
        created REAL NOT NULL, charges TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX reservations_created ON reservations (created);
    CREATE TABLE cooldowns (
        scope TEXT PRIMARY KEY, until REAL NOT NULL, reason TEXT NOT NULL, kind TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 2: measured performance (the fastest strategy) and counters (round robin)
    """
    CREATE TABLE performance (
        endpoint TEXT PRIMARY KEY, latency REAL, tps REAL, ttft REAL,
        samples INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    """,
    # 3: the limits each quota was last configured with (to warn when two configs disagree)
    """
    CREATE TABLE quotas (
        scope TEXT PRIMARY KEY, limits TEXT NOT NULL, seen REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # 4: scopes known to refuse until a moment (a decision passes them without their buckets)
    """
    CREATE TABLE spent (
        scope TEXT PRIMARY KEY, until REAL NOT NULL, endpoint TEXT NOT NULL,
        rule TEXT NOT NULL, used INTEGER NOT NULL, lim INTEGER NOT NULL,
        requested INTEGER NOT NULL, reason TEXT NOT NULL, win TEXT NOT NULL,
        requests INTEGER NOT NULL, tokens INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    # 5: limits the providers stated (headers, 429 bodies, probes), per scope and rule
    """
    CREATE TABLE learned (
        scope TEXT NOT NULL, rule TEXT NOT NULL, lim INTEGER NOT NULL, at REAL NOT NULL,
        source TEXT NOT NULL, PRIMARY KEY (scope, rule)
    ) WITHOUT ROWID;
    """,
    # 6: concurrency leases: one row per request in flight on a scope with a concurrency
    # limit, until it is settled, released or expires
    """
    CREATE TABLE leases (
        scope TEXT NOT NULL, id TEXT NOT NULL, expires REAL NOT NULL,
        PRIMARY KEY (scope, id)
    ) WITHOUT ROWID;
    CREATE INDEX leases_id ON leases (id);
    """,
    # 7: dollar budgets: micro-dollars per bucket, and each reservation's estimated price
    """
    ALTER TABLE buckets ADD COLUMN usd INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE reservations ADD COLUMN usd INTEGER NOT NULL DEFAULT 0;
    """,
    # 8: unsettled query reservations are capped per endpoint (oldest dropped first); the
    # once-a-minute sweep of those past their deadline scans the (bounded) table instead
    """
    DROP INDEX reservations_created;
    CREATE INDEX reservations_endpoint ON reservations (endpoint, created);
    """,
)


TABLES = (
    *("buckets", "reservations", "cooldowns", "performance", "counters", "quotas", "spent"),
    *("learned", "leases"),
)
"""Every table of the state file (what a full reset empties)."""


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the file to the current schema. The checks read the header and the schema in
    one transaction: read one by one, they could straddle another process's migration and
    take a half-seen llamux file for a foreign one."""
    if _header(conn) == (len(MIGRATIONS), APPLICATION_ID):
        return  # the common case, one read
    conn.execute("BEGIN IMMEDIATE")
    try:
        version, app = _header(conn)
        _check_ours(conn, path, version, app)
        for number in range(version + 1, len(MIGRATIONS) + 1):
            for statement in MIGRATIONS[number - 1].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _header(conn: sqlite3.Connection) -> tuple[int, int]:
    """(schema version, application id) from the file's header."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    return version, int(conn.execute("PRAGMA application_id").fetchone()[0])


def _check_ours(conn: sqlite3.Connection, path: str, version: int, app: int) -> None:
    if version > len(MIGRATIONS):
        raise StoreError(
            f"the state file {path} has schema version {version}, newer than this llamux "
            f"knows ({len(MIGRATIONS)}); upgrade llamux (pip install -U llamux) or point "
            "LLAMUX_STORE at another file"
        )
    tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if app not in (0, APPLICATION_ID) or (app == 0 and tables and version == 0):
        raise StoreError(
            f"{path} is an SQLite file but not a llamux state file; point LLAMUX_STORE "
            "(or store=) at a new path"
        )


def store_error(path: str, exc: sqlite3.Error) -> StoreError:
    """The ``StoreError`` for an SQLite failure on the state file ``path``: what to do."""
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in text:
        return StoreError(
            f"the state file {path} is corrupt or not an SQLite file ({text}); move it aside "
            "(it holds your usage history) or point LLAMUX_STORE at another file"
        )
    if "readonly" in text or "read-only" in text:
        return StoreError(
            f"the state file {path} cannot be written ({text}); fix its permissions or "
            "point LLAMUX_STORE at a writable file"
        )
    if "unable to open" in text:
        return StoreError(
            f"the state file {path} cannot be opened ({text}); check that its directory "
            "exists and is writable, or point LLAMUX_STORE elsewhere"
        )
    return StoreError(f"the state file {path} failed: {text}; if it persists, run llamux reset")
