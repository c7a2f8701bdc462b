"""Backend fixtures: every store test runs once on a SQLite file and once on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from openshell_server.store import SqlStore, open_store

from .pg import require_postgres, reset_database, temporary_database


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database created for this test session (migrated once), dropped afterwards."""
    base = require_postgres()
    with temporary_database(base) as url:
        open_store(url).close()
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("postgres_url")
    reset_database(url)
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    s = open_store(store_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[SqlStore]:
    """A store on PostgreSQL only, for what only a shared server can show (several processes)."""
    reset_database(postgres_url)
    s = open_store(postgres_url)
    try:
        yield s
    finally:
        s.close()
