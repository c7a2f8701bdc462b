"""Engine construction per backend and programmatic Alembic migrations.

SQLite: WAL journal with ``synchronous=FULL`` (a committed transaction is on disk
before COMMIT returns, so it survives ``kill -9`` and power loss), a busy timeout,
foreign keys on, and ``BEGIN IMMEDIATE`` for write transactions so concurrent
writers serialize on the database lock instead of failing on lock upgrade.
PostgreSQL (psycopg 3): a pre-pinged pool so a restarted server is reconnected
transparently; writers serialize per namespace with ``SELECT ... FOR UPDATE``.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL, Connection, Engine, make_url

from ._errors import InvalidArgument

__all__ = ["WRITE_OPTION", "create_store_engine", "migrate"]

# Execution option that marks a transaction as a writer (BEGIN IMMEDIATE on SQLite).
WRITE_OPTION = "openshell_write"
_MIGRATIONS = Path(__file__).with_name("migrations")
# Arbitrary constant: the PostgreSQL advisory lock that serializes concurrent migrators.
_MIGRATION_LOCK_KEY = 0x0E5E_11DB
_SQLITE_BUSY_TIMEOUT_MS = 30_000


def _normalise_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise InvalidArgument(f"database URL {url!r} is not a valid URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.drivername != "sqlite":
            raise InvalidArgument(f"use plain 'sqlite:///PATH' URLs, not {parsed.drivername!r}")
        if not parsed.database or parsed.database == ":memory:":
            raise InvalidArgument("an in-memory SQLite database is not persistent; give a file: sqlite:///PATH")
        return parsed
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            return parsed.set(drivername="postgresql+psycopg")
        if parsed.get_driver_name() != "psycopg":
            raise InvalidArgument("PostgreSQL URLs must use the psycopg 3 driver: postgresql+psycopg://...")
        return parsed
    raise InvalidArgument(f"unsupported database {backend!r}; use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB")


def _enable_wal(cur: sqlite3.Cursor) -> None:
    # Switching a fresh file to WAL needs an exclusive lock and SQLite answers "database is
    # locked" at once instead of calling the busy handler, so gateways starting together retry.
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_engine(url: URL) -> Engine:
    Path(url.database or "").expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, pool_size=8, max_overflow=16, pool_timeout=60)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so BEGIN is ours to issue.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cur)
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred BEGIN that later writes can fail with SQLITE_BUSY without waiting;
        # IMMEDIATE takes the write lock up front, honouring busy_timeout.
        writer = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


def create_store_engine(url: str) -> Engine:
    """An engine for ``url`` configured for its backend (see the module docstring)."""
    parsed = _normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return sa.create_engine(
        parsed,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        pool_timeout=60,
        # UTC sessions: timestamps come back already in UTC, with no per-row zone conversion.
        connect_args={} if "options" in parsed.query else {"options": "-c timezone=UTC"},
    )


def migrate(engine: Engine) -> None:
    """Upgrade the schema to the newest Alembic revision; safe with concurrent gateways."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
