"""The gateway fixtures (one real server per test, SQLite and PostgreSQL) reused by the quota tests."""

from tests.gateway.conftest import backend_url, gw, gw_sqlite

__all__ = ["backend_url", "gw", "gw_sqlite"]
