"""Alembic migration environment of the gateway store (run by ``openshell_server.store.open_store``)."""
