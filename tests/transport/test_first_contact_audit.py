"""Workstation first contact writes its namespace and membership only together with their audit events."""

from __future__ import annotations

from pathlib import Path

import pytest

from openshell_server import store as st
from openshell_server.audit import AuditWriteError
from openshell_server.transport import first_contact


def test_first_contact_is_audited_inside_its_transactions(tmp_path: Path) -> None:
    store = st.open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    events: list[tuple[str, str, str]] = []
    first_contact(store, "unix:alice", "user-alice", audit=lambda *e: events.append(e))
    assert events == [("unix:alice", "CreateNamespace", "user-alice"), ("unix:alice", "AddMember", "user-alice")]
    ns = store.get_namespace_by_name("user-alice")
    assert [(m.principal_id, m.role) for m in store.list_memberships(ns.id)] == [("unix:alice", "namespace_admin")]
    # A second contact writes nothing, so audits nothing.
    first_contact(store, "unix:alice", "user-alice", audit=lambda *e: events.append(e))
    assert len(events) == 2


def test_an_audit_failure_leaves_nothing_created(tmp_path: Path) -> None:
    store = st.open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")

    def broken(*_: str) -> None:
        raise AuditWriteError("disk full")

    with pytest.raises(AuditWriteError):
        first_contact(store, "unix:bob", "user-bob", audit=broken)
    with pytest.raises(st.NotFound):
        store.get_namespace_by_name("user-bob")
