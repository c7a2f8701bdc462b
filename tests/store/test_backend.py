"""Backend behaviour: migrations, URL handling, the protocol, durability and reconnection."""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from openshell_server.store import InvalidArgument, NotFound, SqlStore, Store, before_commit, open_store
from openshell_server.store._schema import metadata

from ._race import race

WORKER = Path(__file__).with_name("_worker.py")
REPO = Path(__file__).resolve().parents[2]


def test_migrated_schema_matches_the_table_definitions(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == "0001"


def test_listing_uses_indexes_on_sqlite(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'plan.db'}")
    try:
        with store.engine.connect() as conn:

            def plan(sql: str) -> str:
                return " | ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))

            listing = plan("SELECT id FROM sandboxes WHERE namespace_id IN ('a','b') ORDER BY namespace_id, name")
            # An index search on namespace_id that also yields the order: no table scan, no sort.
            assert "SEARCH sandboxes USING INDEX" in listing and "(namespace_id=?)" in listing, listing
            assert "SCAN" not in listing and "TEMP B-TREE" not in listing, listing
            assert "COVERING INDEX ix_memberships_principal_id_namespace_id_role" in plan(
                "SELECT namespace_id, role FROM memberships WHERE principal_id = 'x'"
            )
            assert "ix_sandboxes_expires_at" in plan("SELECT id FROM sandboxes WHERE expires_at <= '2030'")
    finally:
        store.close()


def test_sqlite_runs_in_wal_with_full_sync(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'wal.db'}")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    finally:
        store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("mysql://u@h/db", "unsupported database"),
        ("postgresql+psycopg2://u@h/db", "psycopg 3"),
        ("not a url", "not a valid URL"),
    ],
)
def test_bad_urls_are_refused_with_a_clear_message(url: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        open_store(url)


def test_store_implements_the_protocol_exactly(store: SqlStore) -> None:
    assert isinstance(store, Store)
    for name, member in inspect.getmembers(Store):
        if name.startswith("_") or not callable(member):
            continue
        assert inspect.signature(getattr(SqlStore, name)) == inspect.signature(member), name


def test_concurrent_open_store_migrates_once(store_url: str, store: SqlStore) -> None:
    # Several gateways starting together against one (already migrated or fresh) database.
    outcomes = race(lambda _i: open_store(store_url), 4)
    for o in outcomes:
        assert not isinstance(o, BaseException), o
        o.close()


def test_fresh_concurrent_open_store_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    outcomes = race(lambda _i: open_store(url), 4)
    for o in outcomes:
        assert not isinstance(o, BaseException), o
    assert outcomes[0].ensure_default().name == "default"  # type: ignore[union-attr]
    for o in outcomes:
        o.close()  # type: ignore[union-attr]


def test_committed_writes_survive_kill_9_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'durable.db'}"
    setup = open_store(url)
    ns = setup.ensure_default()
    setup.close()
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), "durable", url, ns.id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    committed: list[str] = []
    assert proc.stdout is not None
    try:
        while len(committed) < 25:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "worker exited"
            committed.append(line.strip())
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    reopened = open_store(url)
    try:
        names = {s.name for s in reopened.list_sandboxes([ns.id]).items}
        assert set(committed) <= names
    finally:
        reopened.close()


@pytest.mark.postgres
def test_postgres_store_reconnects_after_connections_are_killed(pg_store: SqlStore, postgres_url: str) -> None:
    ns = pg_store.ensure_default()
    assert pg_store.get_namespace_by_id(ns.id) == ns  # the pool now holds a live connection
    database = sa.engine.make_url(postgres_url).database
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            killed = conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": database},
            ).scalar_one()
    finally:
        admin.dispose()
    assert killed >= 1
    # What a server restart does to the pool: every pooled connection is dead. pre-ping replaces them.
    assert pg_store.get_namespace_by_id(ns.id) == ns
    assert pg_store.create_sandbox(ns.id, "after-restart", created_by="x").sandbox.name == "after-restart"


def test_before_commit_hook_runs_in_the_write_and_a_failure_rolls_it_back(store: SqlStore) -> None:
    calls: list[str] = []

    def failing() -> None:
        calls.append("fail")
        raise OSError("audit disk full")

    with before_commit(failing), pytest.raises(OSError, match="audit disk full"):
        store.create_namespace("unaudited", created_by="x")
    assert calls == ["fail"]
    with pytest.raises(NotFound):
        store.get_namespace_by_name("unaudited")

    with before_commit(lambda: calls.append("ok")):
        store.create_namespace("audited", created_by="x")
        store.get_namespace_by_name("audited")  # reads never run the hook
    assert calls == ["fail", "ok"]
