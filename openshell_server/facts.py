"""Builds the authorization facts for a call from the store: principals and resources.

Store records become :mod:`openshell_authz` domain objects here and nowhere else.
The namespace of an existing object always comes from the store, never from the caller.
"""

from __future__ import annotations

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

__all__ = ["namespace_model", "principal_for", "provider_model", "sandbox_model", "service_account_model"]


def namespace_model(rec: st.NamespaceRecord) -> Namespace:
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


def _memberships(store: st.Store, principal_id: str) -> tuple[Membership, ...]:
    return tuple(
        Membership(namespace_id=ns_id, role=NamespaceRole(role)) for ns_id, role in store.memberships_of(principal_id)
    )


def principal_for(identity: Identity, store: st.Store) -> Principal:
    """The principal with its current facts (memberships, its sandbox, its account).

    A token whose service account or sandbox no longer exists authenticates nobody.
    """
    if identity.kind == "local":
        return LocalPrincipal(memberships=_memberships(store, identity.principal_id))
    if identity.kind == "user":
        return UserPrincipal(
            id=identity.principal_id,
            issuer=identity.issuer,
            subject=identity.subject,
            global_roles=frozenset(identity.global_roles),
            memberships=_memberships(store, identity.principal_id),
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
