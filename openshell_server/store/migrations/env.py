"""Alembic environment: migrates the connection handed over by ``open_store``.

Online only, on the caller's connection and transaction, so ``open_store`` controls
locking (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL).
"""

from __future__ import annotations

from alembic import context

from openshell_server.store._schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through openshell_server.store.open_store(url), not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
