"""Gateway fixtures: one real server per test, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.gateway.harness import GatewayUnderTest, start_gateway
from tests.store.pg import require_postgres, temporary_database


@pytest.fixture(params=["sqlite", "postgres"])
def backend_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "sqlite":
        yield ""
        return
    base = require_postgres()
    with temporary_database(base, prefix="openshell_gw") as url:
        yield url


@contextmanager
def backend_database(backend: str) -> Iterator[str]:
    """The store URL for ``backend``: "" (SQLite in the data dir) or a fresh PostgreSQL database."""
    if backend == "sqlite":
        yield ""
        return
    with temporary_database(require_postgres(), prefix="openshell_gw") as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def module_gw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayUnderTest]:
    """One OIDC gateway per test module and backend, for suites that build one world and sweep it."""
    with (
        backend_database(request.param) as url,
        start_gateway(tmp_path_factory.mktemp("gw") / "data", database_url=url) as g,
    ):
        yield g


@pytest.fixture
def gw(tmp_path: Path, backend_url: str) -> Iterator[GatewayUnderTest]:
    """An OIDC gateway (real JWKS issuer) on both store backends."""
    with start_gateway(tmp_path / "data", database_url=backend_url) as g:
        yield g


@pytest.fixture
def gw_sqlite(tmp_path: Path) -> Iterator[GatewayUnderTest]:
    with start_gateway(tmp_path / "data") as g:
        yield g


@pytest.fixture
def local_gw(tmp_path: Path) -> Iterator[GatewayUnderTest]:
    """A single-player gateway (no OIDC): the caller is the local platform admin."""
    with start_gateway(tmp_path / "data", oidc=False) as g:
        yield g
