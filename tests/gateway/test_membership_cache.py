"""The membership-facts cache: local writes are seen at once, other replicas' writes within the TTL,
and a read that raced a local write is never cached."""

from __future__ import annotations

import time

import grpc

from openshell_server.facts import MEMBERSHIP_TTL_S, _MembershipCache
from tests.gateway.harness import GatewayUnderTest, api


def _can_list(stub: object, ns: str) -> bool:
    try:
        stub.ListSandboxes(api.ListSandboxesRequest(namespace=ns))  # type: ignore[attr-defined]
        return True
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND
        return False


def test_local_membership_writes_take_effect_on_the_next_call(gw_sqlite: GatewayUnderTest) -> None:
    admin = gw_sqlite.as_user("cache-admin", roles=("platform_admin",))
    admin.CreateNamespace(api.CreateNamespaceRequest(name="team"))
    user = gw_sqlite.as_user("cache-user")
    assert not _can_list(user, "team")  # also fills the cache with "no memberships"
    admin.AddMember(api.AddMemberRequest(namespace="team", principal=gw_sqlite.principal_id("cache-user"), role="user"))
    assert _can_list(user, "team")
    admin.RemoveMember(api.RemoveMemberRequest(namespace="team", principal=gw_sqlite.principal_id("cache-user")))
    assert not _can_list(user, "team")


def test_a_write_by_another_replica_is_seen_within_the_ttl(gw_sqlite: GatewayUnderTest) -> None:
    admin = gw_sqlite.as_user("cache-admin", roles=("platform_admin",))
    ns = admin.CreateNamespace(api.CreateNamespaceRequest(name="team")).namespace
    user = gw_sqlite.as_user("cache-user")
    assert not _can_list(user, "team")
    # Another gateway replica writes to the shared store: this process hears nothing of it.
    gw_sqlite.gateway.store.put_membership(ns.meta.id, gw_sqlite.principal_id("cache-user"), "user", created_by="x")
    time.sleep(MEMBERSHIP_TTL_S + 0.2)
    assert _can_list(user, "team")


class _RacingStore:
    """A store whose read is overtaken by a local write (the forget) before it returns."""

    def __init__(self, cache: _MembershipCache) -> None:
        self.cache = cache
        self.reads = 0
        self.answer: list[tuple[str, str]] = []

    def memberships_of(self, principal_id: str) -> list[tuple[str, str]]:
        self.reads += 1
        stale = list(self.answer)
        if self.reads == 1:
            self.answer = [("ns-1", "user")]
            self.cache.forget(principal_id)  # the write commits while this read is in flight
        return stale


def test_a_read_that_raced_a_local_write_is_not_cached() -> None:
    cache = _MembershipCache(max_entries=10, ttl_s=60)
    store = _RacingStore(cache)
    assert cache.get(store, "p") == ()  # the stale answer is returned to that one caller...
    second = cache.get(store, "p")  # ...but not cached: the next call reads again
    assert store.reads == 2 and [m.namespace_id for m in second] == ["ns-1"]
    cache.get(store, "p")
    assert store.reads == 2  # now cached


def test_forget_without_principal_clears_everyone() -> None:
    cache = _MembershipCache(max_entries=10, ttl_s=60)

    class Store:
        reads = 0

        def memberships_of(self, principal_id: str) -> list[tuple[str, str]]:
            Store.reads += 1
            return []

    s = Store()
    cache.get(s, "a")
    cache.get(s, "b")
    cache.forget(None)
    cache.get(s, "a")
    cache.get(s, "b")
    assert Store.reads == 4
