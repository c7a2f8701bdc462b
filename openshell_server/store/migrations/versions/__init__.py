"""Alembic revisions of the gateway store, oldest first."""
