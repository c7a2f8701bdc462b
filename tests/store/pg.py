"""Throwaway PostgreSQL databases for tests (importable by the gateway tests too).

The server comes from ``OPENSHELL_TEST_POSTGRES_URL`` (default: local trust-auth
``postgres`` on 127.0.0.1:5432). When it does not answer, tests are skipped with
the reason — unless ``OPENSHELL_REQUIRE_POSTGRES=1`` (set by CI), which turns the
skip into a failure so a missing server can never pass silently.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

__all__ = [
    "DEFAULT_POSTGRES_URL",
    "postgres_base_url",
    "postgres_unavailable_reason",
    "require_postgres",
    "reset_database",
    "temporary_database",
]

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def postgres_base_url() -> str:
    return os.environ.get("OPENSHELL_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL


def _admin_engine(url: str) -> sa.Engine:
    return sa.create_engine(
        url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 3}
    )


def postgres_unavailable_reason(url: str | None = None) -> str | None:
    """None when the server answers, else why not (one line)."""
    url = url or postgres_base_url()
    engine = _admin_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"PostgreSQL at {make_url(url).render_as_string(hide_password=True)} is unreachable: {first_line}"
    finally:
        engine.dispose()
    return None


def require_postgres(url: str | None = None) -> str:
    """Return the base URL, or skip (fail when OPENSHELL_REQUIRE_POSTGRES=1) if the server is down."""
    url = url or postgres_base_url()
    reason = postgres_unavailable_reason(url)
    if reason is not None:
        if os.environ.get("OPENSHELL_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason} (OPENSHELL_REQUIRE_POSTGRES=1)", pytrace=False)
        pytest.skip(f"{reason}; set OPENSHELL_TEST_POSTGRES_URL to a reachable server")
    return url


@contextmanager
def temporary_database(base_url: str | None = None, prefix: str = "openshell_test") -> Iterator[str]:
    """Create a uniquely named database, yield its URL, and drop it (even with connections left open)."""
    base = make_url(base_url or postgres_base_url())
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(base.render_as_string(hide_password=False))
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def reset_database(url: str) -> None:
    """Empty every table except Alembic's bookkeeping, keeping the migrated schema."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            tables = [t for t in sa.inspect(conn).get_table_names() if t != "alembic_version"]
            if tables:
                conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} CASCADE"))
    finally:
        engine.dispose()
