"""Namespaces: CRUD, uniqueness, label selectors, compare-and-swap and two-phase deletion."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from openshell_server.store import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NamespaceNotEmpty,
    NamespacePhase,
    NamespaceTerminating,
    NotFound,
    QuotaLimits,
    QuotaMode,
    SqlStore,
)

ADMIN = "https://idp#admin"


def test_ensure_default_is_idempotent(store: SqlStore) -> None:
    first = store.ensure_default()
    second = store.ensure_default()
    assert first.id == second.id
    assert first.name == "default"
    assert first.phase == NamespacePhase.ACTIVE
    assert [n.name for n in store.list_namespaces()] == ["default"]


def test_create_get_list_and_metadata(store: SqlStore) -> None:
    now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    ns = store.create_namespace(
        "team-ml",
        created_by=ADMIN,
        labels={"openshell.dev/team": "ml"},
        limits=QuotaLimits(3, 2, 60),
        ceiling=QuotaLimits(5, 4, 600),
        quota_mode="soft",
        now=now,
    )
    assert ns.created_by == ADMIN
    assert ns.created_at == now
    assert ns.resource_version == 1
    assert ns.deletion_timestamp is None
    assert ns.quota_mode == QuotaMode.SOFT
    assert ns.effective_limits == QuotaLimits(3, 2, 60)
    assert store.get_namespace_by_name("team-ml") == ns
    assert store.get_namespace_by_id(ns.id) == ns
    other = store.create_namespace("infra", created_by=ADMIN, labels={"openshell.dev/team": "infra"})
    assert [n.name for n in store.list_namespaces()] == ["infra", "team-ml"]
    assert store.list_namespaces(ids=[other.id]) == [other]
    assert store.list_namespaces(ids=[]) == []
    assert store.list_namespaces(label_selector={"openshell.dev/team": "ml"}) == [ns]
    assert store.list_namespaces(label_selector={"openshell.dev/team": "nope"}) == []


def test_duplicate_and_invalid_names(store: SqlStore) -> None:
    store.create_namespace("dup", created_by=ADMIN)
    with pytest.raises(AlreadyExists, match="'dup' already exists"):
        store.create_namespace("dup", created_by=ADMIN)
    for bad in ("Upper", "-lead", "trail-", "a" * 64, "", "under_score"):
        with pytest.raises(InvalidArgument, match="DNS-1123"):
            store.create_namespace(bad, created_by=ADMIN)
    with pytest.raises(InvalidArgument, match="quota mode"):
        store.create_namespace("mode", created_by=ADMIN, quota_mode="lenient")
    with pytest.raises(InvalidArgument, match="label key"):
        store.create_namespace("lbl", created_by=ADMIN, labels={'bad"key': "x"})
    with pytest.raises(NotFound):
        store.get_namespace_by_name("missing")


def test_effective_limits_take_the_stricter_nonzero_value() -> None:
    assert QuotaLimits(0, 8, 100).effective(QuotaLimits(5, 4, 0)) == QuotaLimits(5, 4, 100)
    with pytest.raises(ValueError, match="non-negative"):
        QuotaLimits(-1)


def test_update_is_compare_and_swap(store: SqlStore) -> None:
    ns = store.create_namespace("cas", created_by=ADMIN)
    updated = store.update_namespace(
        ns.id, expected_resource_version=1, labels={"a": "b"}, limits=QuotaLimits(max_sandboxes=2)
    )
    assert updated.resource_version == 2
    assert updated.labels == {"a": "b"}
    assert updated.limits.max_sandboxes == 2
    with pytest.raises(Conflict, match="resource_version is 2, expected 1"):
        store.update_namespace(ns.id, expected_resource_version=1, labels={})
    assert store.get_namespace_by_id(ns.id).labels == {"a": "b"}
    unconditional = store.update_namespace(ns.id, quota_mode="soft", ceiling=QuotaLimits(max_gpus=1))
    assert (unconditional.resource_version, unconditional.quota_mode) == (3, QuotaMode.SOFT)
    assert unconditional.ceiling.max_gpus == 1
    with pytest.raises(NotFound):
        store.update_namespace("no-such-id", labels={})


def test_two_phase_delete_with_blockers_and_idempotent_reentry(store: SqlStore) -> None:
    ns = store.create_namespace("doomed", created_by=ADMIN)
    store.put_membership(ns.id, "alice", "user", created_by=ADMIN)
    sb = store.create_sandbox(ns.id, "box", created_by="alice").sandbox
    pv = store.create_provider(ns.id, "gh", type="github", created_by=ADMIN)
    sa = store.create_service_account(ns.id, "bot", created_by=ADMIN)

    with pytest.raises(Conflict, match="not terminating"):
        store.finish_delete_namespace(ns.id)
    first = store.begin_delete_namespace(ns.id)
    assert first.phase == NamespacePhase.TERMINATING
    assert first.deletion_timestamp is not None
    again = store.begin_delete_namespace(ns.id)
    assert again == first  # idempotent: no second version bump, same timestamp

    with pytest.raises(NamespaceNotEmpty) as err:
        store.finish_delete_namespace(ns.id)
    assert err.value.blockers == ["sandbox/box", "provider/gh", "serviceaccount/bot"]
    assert "sandbox/box" in str(err.value)
    assert store.get_namespace_by_id(ns.id).phase == NamespacePhase.TERMINATING

    # Terminating refuses every create, but reads and deletes keep working.
    with pytest.raises(NamespaceTerminating):
        store.create_sandbox(ns.id, "late", created_by="alice")
    with pytest.raises(NamespaceTerminating):
        store.create_provider(ns.id, "late", type="x", created_by=ADMIN)
    with pytest.raises(NamespaceTerminating):
        store.create_service_account(ns.id, "late", created_by=ADMIN)
    with pytest.raises(NamespaceTerminating):
        store.put_membership(ns.id, "bob", "user", created_by=ADMIN)
    # Updates cannot revive it.
    assert store.update_namespace(ns.id, labels={"x": "y"}).phase == NamespacePhase.TERMINATING

    store.delete_sandbox(sb.id)
    store.delete_provider(pv.id)
    with pytest.raises(NamespaceNotEmpty) as err:
        store.finish_delete_namespace(ns.id)
    assert err.value.blockers == ["serviceaccount/bot"]
    store.delete_service_account(sa.id)
    store.finish_delete_namespace(ns.id)

    with pytest.raises(NotFound):
        store.get_namespace_by_id(ns.id)
    with pytest.raises(NotFound):
        store.begin_delete_namespace(ns.id)
    assert store.memberships_of("alice") == []

    reborn = store.create_namespace("doomed", created_by=ADMIN)
    assert reborn.id != ns.id
    assert reborn.phase == NamespacePhase.ACTIVE
    assert store.list_memberships(reborn.id) == []
    assert store.list_sandboxes([reborn.id]).items == []
