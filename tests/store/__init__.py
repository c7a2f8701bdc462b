"""Conformance suite of the gateway store, run against SQLite and PostgreSQL."""
