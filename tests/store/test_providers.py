"""Providers (write-only credentials), service accounts and the gateway config document."""

from __future__ import annotations

import dataclasses

import pytest

from openshell_server.store import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    ProviderInUse,
    SqlStore,
)

ADMIN = "https://idp#admin"
PROFILE = {"endpoints": ["api.github.com:443"], "env": {"GH_HOST": "github.com"}}


def test_provider_crud_and_credentials_stay_out_of_records(store: SqlStore) -> None:
    ns = store.create_namespace("a", created_by=ADMIN)
    pv = store.create_provider(
        ns.id,
        "gh",
        type="github",
        created_by=ADMIN,
        profile=PROFILE,
        labels={"k": "v"},
        credentials={"GITHUB_TOKEN": "s3cret"},
    )
    assert pv.profile == PROFILE
    assert "credentials" not in {f.name for f in dataclasses.fields(pv)}
    assert "s3cret" not in repr(pv)
    assert "s3cret" not in repr(store.list_providers([ns.id]))
    assert store.get_provider(ns.id, "gh") == pv
    assert store.get_provider_by_id(pv.id) == pv
    assert store.get_provider_credentials(pv.id) == {"GITHUB_TOKEN": "s3cret"}
    assert store.list_providers(None, label_selector={"k": "v"}) == [pv]
    assert store.list_providers(None, ids=[pv.id]) == [pv]
    assert store.list_providers(None, ids=[]) == []

    # Updating the profile alone keeps the credentials; giving credentials replaces them all.
    updated = store.update_provider(pv.id, expected_resource_version=1, profile={"endpoints": ["x:1"]})
    assert updated.profile == {"endpoints": ["x:1"], "env": {}}
    assert updated.resource_version == 2
    assert store.get_provider_credentials(pv.id) == {"GITHUB_TOKEN": "s3cret"}
    store.update_provider(pv.id, credentials={"OTHER": "v2"})
    assert store.get_provider_credentials(pv.id) == {"OTHER": "v2"}
    with pytest.raises(Conflict):
        store.update_provider(pv.id, expected_resource_version=1, type="gitlab")
    assert store.get_provider_by_id(pv.id).type == "github"

    assert store.delete_provider(pv.id).id == pv.id
    with pytest.raises(NotFound):
        store.get_provider_credentials(pv.id)
    with pytest.raises(NotFound):
        store.delete_provider(pv.id)


def test_provider_input_validation(store: SqlStore) -> None:
    ns = store.create_namespace("a", created_by=ADMIN)
    with pytest.raises(InvalidArgument, match="unknown field"):
        store.create_provider(ns.id, "p", type="t", created_by=ADMIN, profile={"secrets": 1})
    with pytest.raises(InvalidArgument, match="endpoints"):
        store.create_provider(ns.id, "p", type="t", created_by=ADMIN, profile={"endpoints": "a.com"})
    with pytest.raises(InvalidArgument, match="environment variable"):
        store.create_provider(ns.id, "p", type="t", created_by=ADMIN, credentials={"BAD NAME": "x"})
    with pytest.raises(InvalidArgument, match="type"):
        store.create_provider(ns.id, "p", type="", created_by=ADMIN)
    assert store.list_providers([ns.id]) == []


def test_provider_delete_is_refused_while_attached(store: SqlStore) -> None:
    ns = store.create_namespace("a", created_by=ADMIN)
    pv = store.create_provider(ns.id, "gh", type="github", created_by=ADMIN)
    one = store.create_sandbox(ns.id, "one", created_by="x", provider_ids=[pv.id]).sandbox
    store.create_sandbox(ns.id, "two", created_by="x", provider_ids=[pv.id])
    with pytest.raises(ProviderInUse) as err:
        store.delete_provider(pv.id)
    assert err.value.sandboxes == ["sandbox/one", "sandbox/two"]
    assert "detach it first" in str(err.value)
    store.detach_provider(one.id, pv.id)
    store.delete_sandbox(store.get_sandbox(ns.id, "two").id)
    store.delete_provider(pv.id)
    with pytest.raises(NotFound):
        store.get_provider(ns.id, "gh")


def test_service_accounts(store: SqlStore) -> None:
    a = store.create_namespace("a", created_by=ADMIN)
    b = store.create_namespace("b", created_by=ADMIN)
    bot = store.create_service_account(a.id, "bot", created_by=ADMIN, labels={"role": "ci"})
    other = store.create_service_account(b.id, "bot", created_by=ADMIN)
    assert (bot.namespace_id, bot.name, bot.created_by, bot.resource_version) == (a.id, "bot", ADMIN, 1)
    assert store.get_service_account(a.id, "bot") == bot
    assert store.get_service_account_by_id(other.id) == other
    assert store.list_service_accounts([a.id]) == [bot]
    assert len(store.list_service_accounts(None)) == 2
    assert store.list_service_accounts(None, label_selector={"role": "ci"}) == [bot]
    with pytest.raises(AlreadyExists):
        store.create_service_account(a.id, "bot", created_by=ADMIN)
    store.delete_service_account(bot.id)
    with pytest.raises(NotFound):
        store.get_service_account_by_id(bot.id)
    reborn = store.create_service_account(a.id, "bot", created_by=ADMIN)
    assert reborn.id != bot.id  # tokens bound to the old id stay dead


def test_gateway_config_compare_and_swap(store: SqlStore) -> None:
    initial = store.get_gateway_config()
    assert (initial.doc, initial.resource_version) == ({}, 0)
    with pytest.raises(Conflict):
        store.update_gateway_config({"deny": []}, updated_by=ADMIN, expected_resource_version=3)
    first = store.update_gateway_config({"deny": ["169.254.169.254"]}, updated_by=ADMIN, expected_resource_version=0)
    assert first.resource_version == 1
    assert store.get_gateway_config().doc == {"deny": ["169.254.169.254"]}
    with pytest.raises(Conflict, match="resource_version is 1, expected 0"):
        store.update_gateway_config({}, updated_by=ADMIN, expected_resource_version=0)
    second = store.update_gateway_config({"deny": []}, updated_by="root")
    assert (second.resource_version, second.updated_by) == (2, "root")
    assert store.get_gateway_config() == second
