"""Sandboxes: CRUD, per-namespace uniqueness, SQL-side listing, attachments, logs, expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from openshell_server.store import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    QuotaLimits,
    SqlStore,
)

ADMIN = "https://idp#admin"
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def test_create_get_update_delete(store: SqlStore) -> None:
    ns = store.create_namespace("a", created_by=ADMIN)
    created = store.create_sandbox(
        ns.id, "box", created_by="alice", gpus=1, labels={"app": "x"}, spec={"image": "python:3.11"}, now=T0
    )
    sb = created.sandbox
    assert not created.exceeded
    assert (sb.namespace_id, sb.name, sb.gpus, sb.phase, sb.created_by) == (ns.id, "box", 1, "Provisioning", "alice")
    assert (sb.created_at, sb.expires_at, sb.resource_version) == (T0, None, 1)
    assert sb.spec == {"image": "python:3.11"}
    assert store.get_sandbox(ns.id, "box") == sb
    assert store.get_sandbox_by_id(sb.id) == sb

    running = store.update_sandbox(sb.id, expected_resource_version=1, phase="Ready", message="up")
    assert (running.phase, running.message, running.resource_version) == ("Ready", "up", 2)
    with pytest.raises(Conflict):
        store.update_sandbox(sb.id, expected_resource_version=1, phase="Error")
    assert store.get_sandbox_by_id(sb.id).phase == "Ready"

    assert store.delete_sandbox(sb.id).id == sb.id
    with pytest.raises(NotFound):
        store.get_sandbox_by_id(sb.id)
    with pytest.raises(NotFound):
        store.delete_sandbox(sb.id)


def test_names_are_unique_per_namespace_not_globally(store: SqlStore) -> None:
    a = store.create_namespace("a", created_by=ADMIN)
    b = store.create_namespace("b", created_by=ADMIN)
    store.create_sandbox(a.id, "same", created_by="x")
    store.create_sandbox(b.id, "same", created_by="x")
    store.create_provider(a.id, "same", type="t", created_by="x")
    store.create_provider(b.id, "same", type="t", created_by="x")
    store.create_service_account(a.id, "same", created_by="x")
    store.create_service_account(b.id, "same", created_by="x")
    with pytest.raises(AlreadyExists, match="sandbox 'same' already exists in namespace 'a'"):
        store.create_sandbox(a.id, "same", created_by="x")
    with pytest.raises(AlreadyExists, match="provider 'same'"):
        store.create_provider(a.id, "same", type="t", created_by="x")
    with pytest.raises(AlreadyExists, match="service account 'same'"):
        store.create_service_account(a.id, "same", created_by="x")
    with pytest.raises(InvalidArgument, match="DNS-1123"):
        store.create_sandbox(a.id, "Bad_Name", created_by="x")
    with pytest.raises(InvalidArgument, match="gpus"):
        store.create_sandbox(a.id, "neg", created_by="x", gpus=-1)
    assert store.get_sandbox(a.id, "same").namespace_id == a.id
    assert store.get_sandbox(b.id, "same").namespace_id == b.id


def test_list_filters_by_namespace_and_labels_and_pages(store: SqlStore) -> None:
    a = store.create_namespace("a", created_by=ADMIN)
    b = store.create_namespace("b", created_by=ADMIN)
    c = store.create_namespace("c", created_by=ADMIN)
    for ns in (a, b, c):
        for i in range(5):
            store.create_sandbox(ns.id, f"s{i}", created_by="x", labels={"parity": "even" if i % 2 == 0 else "odd"})
    visible = store.list_sandboxes([a.id, c.id]).items
    assert {s.namespace_id for s in visible} == {a.id, c.id}
    assert len(visible) == 10
    assert len(store.list_sandboxes(None).items) == 15
    assert store.list_sandboxes([]).items == []
    odd = store.list_sandboxes([b.id], label_selector={"parity": "odd"}).items
    assert [s.name for s in odd] == ["s1", "s3"]
    assert store.list_sandboxes(None, label_selector={"parity": "odd", "missing": "x"}).items == []

    seen: list[tuple[str, str]] = []
    token = ""
    while True:
        page = store.list_sandboxes([a.id, b.id, c.id], page_size=4, page_token=token)
        assert len(page.items) <= 4
        seen.extend((s.namespace_id, s.name) for s in page.items)
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == 15
    assert seen == sorted(seen)  # stable keyset order, no duplicates or gaps
    with pytest.raises(InvalidArgument, match="page_token"):
        store.list_sandboxes(None, page_token="not-a-token")
    with pytest.raises(InvalidArgument, match="label key"):
        store.list_sandboxes(None, label_selector={"$.x": "y"})


def test_attach_only_same_namespace_providers(store: SqlStore) -> None:
    a = store.create_namespace("a", created_by=ADMIN)
    b = store.create_namespace("b", created_by=ADMIN)
    mine = store.create_provider(a.id, "gh", type="github", created_by=ADMIN)
    theirs = store.create_provider(b.id, "gh", type="github", created_by=ADMIN)
    sb = store.create_sandbox(a.id, "box", created_by="x", provider_ids=[mine.id]).sandbox
    assert sb.provider_ids == frozenset({mine.id})
    with pytest.raises(NotFound, match="not found in the sandbox's namespace"):
        store.attach_provider(sb.id, theirs.id)
    with pytest.raises(NotFound):
        store.create_sandbox(a.id, "other", created_by="x", provider_ids=[theirs.id])
    with pytest.raises(NotFound):
        store.get_sandbox(a.id, "other")  # the refused create left nothing behind

    detached = store.detach_provider(sb.id, mine.id)
    assert detached.provider_ids == frozenset()
    assert detached.resource_version == sb.resource_version + 1
    with pytest.raises(NotFound, match="not attached"):
        store.detach_provider(sb.id, mine.id)
    attached = store.attach_provider(sb.id, mine.id)
    assert attached.provider_ids == frozenset({mine.id})
    assert store.attach_provider(sb.id, mine.id) == attached  # idempotent
    assert store.list_sandboxes([a.id]).items[0].provider_ids == frozenset({mine.id})


def test_logs_append_read_trim_and_cascade(store: SqlStore) -> None:
    ns = store.create_namespace("a", created_by=ADMIN)
    sb = store.create_sandbox(ns.id, "box", created_by="x").sandbox
    assert store.append_sandbox_logs(sb.id, ["one", "two"], now=T0) == 2
    assert store.append_sandbox_logs(sb.id, ["three", "four", "five"], keep=4) == 5
    lines = store.read_sandbox_logs(sb.id)
    assert [(x.seq, x.line) for x in lines] == [(2, "two"), (3, "three"), (4, "four"), (5, "five")]
    assert lines[0].at == T0
    assert [x.line for x in store.read_sandbox_logs(sb.id, after_seq=3, limit=1)] == ["four"]
    with pytest.raises(NotFound):
        store.append_sandbox_logs("missing", ["x"])
    store.delete_sandbox(sb.id)
    again = store.create_sandbox(ns.id, "box", created_by="x").sandbox
    assert store.read_sandbox_logs(again.id) == []


def test_lifetime_sets_expiry_and_expired_listing(store: SqlStore) -> None:
    ns = store.create_namespace("a", created_by=ADMIN, limits=QuotaLimits(max_sandbox_lifetime_seconds=60))
    short = store.create_sandbox(ns.id, "short", created_by="x", lifetime_seconds=10, now=T0).sandbox
    capped = store.create_sandbox(ns.id, "capped", created_by="x", lifetime_seconds=3600, now=T0).sandbox
    default = store.create_sandbox(ns.id, "default", created_by="x", now=T0).sandbox
    free_ns = store.create_namespace("free", created_by=ADMIN)
    forever = store.create_sandbox(free_ns.id, "forever", created_by="x", now=T0).sandbox
    assert short.expires_at == T0 + timedelta(seconds=10)
    assert capped.expires_at == T0 + timedelta(seconds=60)
    assert default.expires_at == T0 + timedelta(seconds=60)
    assert forever.expires_at is None
    assert store.list_expired_sandboxes(T0 + timedelta(seconds=9)) == []
    assert [s.name for s in store.list_expired_sandboxes(T0 + timedelta(seconds=10))] == ["short"]
    expired = store.list_expired_sandboxes(T0 + timedelta(days=365))
    assert {s.name for s in expired} == {"short", "capped", "default"}
    assert len(store.list_expired_sandboxes(T0 + timedelta(days=365), limit=1)) == 1


def test_sandbox_refs_and_adoption_by_id(store: SqlStore) -> None:
    a = store.create_namespace("a", created_by=ADMIN)
    b = store.create_namespace("b", created_by=ADMIN, limits=QuotaLimits(max_sandboxes=1))
    one = store.create_sandbox(a.id, "one", created_by="alice").sandbox
    store.update_sandbox(one.id, phase="Ready")
    store.create_sandbox(b.id, "full", created_by="alice")
    # Adoption keeps the driver's id and is not refused by a hard quota (the sandbox runs anyway),
    # but the excess is still reported.
    adopted = store.create_sandbox(b.id, "stray", created_by="system", sandbox_id="drv-1", enforce_quota=False)
    assert adopted.sandbox.id == "drv-1" and adopted.exceeded
    assert sorted(store.list_sandbox_refs()) == sorted(
        [
            (one.id, a.id, "Ready"),
            (store.get_sandbox(b.id, "full").id, b.id, "Provisioning"),
            ("drv-1", b.id, "Provisioning"),
        ]
    )
