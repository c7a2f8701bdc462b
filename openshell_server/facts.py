"""Builds the authorization facts for a call from the store: principals and resources.

Store records become :mod:`openshell_authz` domain objects here and nowhere else.
The namespace of an existing object always comes from the store, never from the caller.

Membership facts are cached per store and principal id (bounded LRU) so a call does
not cost a database round trip for them. Staleness bound: a membership write made
through this process (AddMember, RemoveMember, DeleteNamespace, the workstation
broker) calls :func:`forget_memberships` after it commits and is seen by every call
that starts afterwards; a write made by another gateway replica sharing the database
is seen at most ``MEMBERSHIP_TTL_S`` (1 s) after it commits, plus the length of one
store query. A fill that raced with a local write is discarded, never cached.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable

from openshell_authz import (
    LocalPrincipal,
    Membership,
    Namespace,
    NamespaceRole,
    Principal,
    Provider,
    Quota,
    Sandbox,
    ServiceAccount,
    ServiceAccountPrincipal,
    SupervisorPrincipal,
    UserPrincipal,
)
from openshell_server import store as st
from openshell_server.authn import AuthenticationError, Identity

__all__ = [
    "MEMBERSHIP_TTL_S",
    "forget_memberships",
    "namespace_model",
    "principal_for",
    "provider_model",
    "sandbox_model",
    "service_account_model",
]

#: How long a cached membership list is trusted (the cross-replica staleness bound).
MEMBERSHIP_TTL_S = 1.0
MEMBERSHIP_CACHE_SIZE = 10_000


# Namespace models by the exact record fields they are built from: a repeated call gets the
# same (frozen) object back, so its Cedar entity fragment is not rebuilt either.
_NAMESPACE_MODELS: dict[tuple[object, ...], Namespace] = {}
_NAMESPACE_MODELS_MAX = 4096


def namespace_model(rec: st.NamespaceRecord) -> Namespace:
    key = (rec.id, rec.name, rec.phase, rec.limits, rec.ceiling, rec.quota_mode, tuple(sorted(rec.labels.items())))
    model = _NAMESPACE_MODELS.get(key)
    if model is None:
        model = _build_namespace_model(rec)
        if len(_NAMESPACE_MODELS) >= _NAMESPACE_MODELS_MAX:
            _NAMESPACE_MODELS.clear()  # crude bound; refilled by the next calls
        _NAMESPACE_MODELS[key] = model
    return model


def _build_namespace_model(rec: st.NamespaceRecord) -> Namespace:
    return Namespace(
        id=rec.id,
        name=rec.name,
        phase=rec.phase,
        quota=Quota(
            max_sandboxes=rec.limits.max_sandboxes,
            max_gpus=rec.limits.max_gpus,
            max_sandbox_lifetime_seconds=rec.limits.max_sandbox_lifetime_seconds,
            quota_mode=rec.quota_mode,
        ),
        ceiling=Quota(
            max_sandboxes=rec.ceiling.max_sandboxes,
            max_gpus=rec.ceiling.max_gpus,
            max_sandbox_lifetime_seconds=rec.ceiling.max_sandbox_lifetime_seconds,
            quota_mode=rec.quota_mode,
        ),
        labels=tuple(sorted(rec.labels.items())),
    )


def sandbox_model(rec: st.SandboxRecord, ns: Namespace) -> Sandbox:
    return Sandbox(id=rec.id, name=rec.name, namespace=ns, provider_ids=rec.provider_ids, created_by=rec.created_by)


def provider_model(rec: st.ProviderRecord, ns: Namespace) -> Provider:
    return Provider(id=rec.id, name=rec.name, namespace=ns)


def service_account_model(rec: st.ServiceAccountRecord, ns: Namespace) -> ServiceAccount:
    return ServiceAccount(id=rec.id, name=rec.name, namespace=ns)


class _MembershipCache:
    """principal id -> (valid until, memberships), LRU-bounded, with a write generation."""

    def __init__(self, max_entries: int, ttl_s: float) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._entries: OrderedDict[str, tuple[float, tuple[Membership, ...]]] = OrderedDict()
        self._lock = threading.Lock()
        # Bumped by every forget: a fill that read the store before a local write committed
        # and was forgotten must not be stored afterwards (it could hold the old answer).
        self._generation = 0
        # The principal last built per id, with the identity and membership tuple it came from:
        # reusing the same object lets the authorizer reuse its Cedar entity as well.
        self._principals: dict[str, tuple[Identity, tuple[Membership, ...], Principal]] = {}

    def principal(
        self, identity: Identity, memberships: tuple[Membership, ...], build: Callable[[], Principal]
    ) -> Principal:
        hit = self._principals.get(identity.principal_id)
        if hit is not None and hit[1] is memberships and hit[0] == identity:
            return hit[2]
        principal = build()
        if len(self._principals) >= self.max_entries:
            self._principals.clear()  # crude bound; refilled by the next calls
        self._principals[identity.principal_id] = (identity, memberships, principal)
        return principal

    def get(self, store: st.Store, principal_id: str) -> tuple[Membership, ...]:
        now = time.monotonic()
        entry = self._entries.get(principal_id)  # a plain dict read is atomic
        if entry is not None and entry[0] > now:
            return entry[1]
        generation = self._generation
        fresh = tuple(
            Membership(namespace_id=ns_id, role=NamespaceRole(role))
            for ns_id, role in store.memberships_of(principal_id)
        )
        with self._lock:
            if generation == self._generation:
                self._entries[principal_id] = (now + self.ttl_s, fresh)
                self._entries.move_to_end(principal_id)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return fresh

    def forget(self, principal_id: str | None) -> None:
        with self._lock:
            self._generation += 1
            if principal_id is None:
                self._entries.clear()
            else:
                self._entries.pop(principal_id, None)


# One cache per store object: several gateways (tests) in one process never share facts.
_caches: weakref.WeakKeyDictionary[st.Store, _MembershipCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def _cache_for(store: st.Store) -> _MembershipCache:
    cache = _caches.get(store)
    if cache is None:
        with _caches_lock:
            cache = _caches.setdefault(store, _MembershipCache(MEMBERSHIP_CACHE_SIZE, MEMBERSHIP_TTL_S))
    return cache


def forget_memberships(store: st.Store, principal_id: str | None = None) -> None:
    """Drop cached memberships of ``principal_id`` (None: of everyone) after a membership write to ``store``.

    Call it after the write committed. Calls that start afterwards read the store again.
    """
    _cache_for(store).forget(principal_id)


def _memberships(store: st.Store, principal_id: str) -> tuple[Membership, ...]:
    return _cache_for(store).get(store, principal_id)


def principal_for(identity: Identity, store: st.Store) -> Principal:
    """The principal with its current facts (memberships, its sandbox, its account).

    A token whose service account or sandbox no longer exists authenticates nobody.
    """
    if identity.kind == "local":
        memberships = _memberships(store, identity.principal_id)
        return _cache_for(store).principal(identity, memberships, lambda: LocalPrincipal(memberships=memberships))
    if identity.kind == "user":
        memberships = _memberships(store, identity.principal_id)
        return _cache_for(store).principal(
            identity,
            memberships,
            lambda: UserPrincipal(
                id=identity.principal_id,
                issuer=identity.issuer,
                subject=identity.subject,
                global_roles=frozenset(identity.global_roles),
                memberships=memberships,
            ),
        )
    if identity.kind == "service_account":
        try:
            rec = store.get_service_account_by_id(identity.service_account_id or "")
            ns = store.get_namespace_by_id(rec.namespace_id)
        except st.NotFound:
            raise AuthenticationError("the service account of this token no longer exists") from None
        if ns.name != identity.namespace or rec.name != identity.sa_name:
            raise AuthenticationError("the service account of this token no longer exists")
        return ServiceAccountPrincipal(id=rec.id, name=rec.name, namespace_id=ns.id, namespace_name=ns.name)
    if identity.kind == "supervisor":
        try:
            sbx = store.get_sandbox_by_id(identity.sandbox_id or "")
            ns = store.get_namespace_by_id(sbx.namespace_id)
        except st.NotFound:
            raise AuthenticationError("the sandbox of this token no longer exists") from None
        return SupervisorPrincipal(sandbox=sandbox_model(sbx, namespace_model(ns)))
    raise AuthenticationError("unsupported identity kind")
