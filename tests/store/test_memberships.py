"""Memberships: bound to namespace ids, role changes, and the member cap under concurrency."""

from __future__ import annotations

import pytest

from openshell_server.store import (
    DEFAULT_MAX_MEMBERS,
    InvalidArgument,
    MemberLimitExceeded,
    NotFound,
    SqlStore,
)

from ._race import race

ADMIN = "https://idp#admin"


def test_put_change_remove_and_list(store: SqlStore) -> None:
    a = store.create_namespace("a", created_by=ADMIN)
    b = store.create_namespace("b", created_by=ADMIN)
    m = store.put_membership(a.id, "alice", "user", created_by=ADMIN)
    assert (m.namespace_id, m.principal_id, m.role, m.created_by) == (a.id, "alice", "user", ADMIN)
    store.put_membership(b.id, "alice", "auditor", created_by=ADMIN)
    store.put_membership(a.id, "bob", "namespace_admin", created_by=ADMIN)

    changed = store.put_membership(a.id, "alice", "namespace_admin", created_by="someone-else")
    assert changed.role == "namespace_admin"
    assert changed.created_by == ADMIN  # the original grant's metadata is kept
    assert store.get_membership(a.id, "alice").role == "namespace_admin"
    assert sorted(store.memberships_of("alice")) == sorted([(a.id, "namespace_admin"), (b.id, "auditor")])
    assert [x.principal_id for x in store.list_memberships(a.id)] == ["alice", "bob"]

    removed = store.remove_membership(a.id, "alice")
    assert removed.role == "namespace_admin"
    assert store.memberships_of("alice") == [(b.id, "auditor")]
    with pytest.raises(NotFound):
        store.remove_membership(a.id, "alice")
    with pytest.raises(NotFound):
        store.get_membership(a.id, "alice")
    assert store.memberships_of("nobody") == []


def test_bad_role_and_unknown_namespace(store: SqlStore) -> None:
    ns = store.create_namespace("a", created_by=ADMIN)
    with pytest.raises(InvalidArgument, match="platform_admin"):
        store.put_membership(ns.id, "alice", "platform_admin", created_by=ADMIN)
    with pytest.raises(InvalidArgument, match="empty"):
        store.put_membership(ns.id, "", "user", created_by=ADMIN)
    with pytest.raises(NotFound):
        store.put_membership("no-such-namespace", "alice", "user", created_by=ADMIN)


def test_default_cap_is_1000() -> None:
    assert DEFAULT_MAX_MEMBERS == 1000


def test_member_cap_holds_under_50_concurrent_adds(store: SqlStore) -> None:
    ns = store.create_namespace("capped", created_by=ADMIN)
    store.put_membership(ns.id, "existing", "user", created_by=ADMIN, max_members=10)
    outcomes = race(lambda i: store.put_membership(ns.id, f"p{i}", "user", created_by=ADMIN, max_members=10), 50)
    refused = [o for o in outcomes if isinstance(o, MemberLimitExceeded)]
    unexpected = [o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, MemberLimitExceeded)]
    assert unexpected == []
    assert len(refused) == 41
    assert len(store.list_memberships(ns.id)) == 10
    assert "maximum of 10 members" in str(refused[0])
    # At the cap, changing an existing member's role is still allowed.
    assert store.put_membership(ns.id, "existing", "auditor", created_by=ADMIN, max_members=10).role == "auditor"
