"""Resolves what an RPC acts on, from its (openshell.v1.authz) annotation and the store.

The annotation names the Cedar action, the kind of target and the request fields
that locate it. For an existing object the namespace comes from the store: the
caller's namespace field only selects where to look up the name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message

from openshell_authz import (
    AttachContext,
    Context,
    Gateway,
    ListContext,
    MemberContext,
    Namespace,
    NamespaceRole,
    Provider,
    Quota,
    Resource,
    UpdateNamespaceContext,
)
from openshell_server import facts, validation
from openshell_server import store as st
from openshell_server.api import authz_pb2
from openshell_server.status import Denied

__all__ = ["Rule", "Target", "build_context", "resolve"]

import grpc


@dataclass(frozen=True, slots=True)
class Rule:
    """The (openshell.v1.authz) annotation of one RPC, as plain data."""

    method: str
    action: str
    target: int
    namespace_field: str
    name_field: str
    id_field: str
    mutating: bool
    list: bool

    @classmethod
    def from_proto(cls, method: str, ann: authz_pb2.Authz) -> Rule:
        return cls(
            method, ann.action, ann.target, ann.namespace_field, ann.name_field, ann.id_field, ann.mutating, ann.list
        )


@dataclass(slots=True)
class Target:
    """What the call is about: the Cedar resource plus the store records behind it."""

    kind: str
    resource: Resource
    namespace: Namespace | None = None
    namespace_record: st.NamespaceRecord | None = None
    record: Any = None
    name: str = ""
    all_namespaces: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    by_id: str = ""  # set when the caller named the target by id: denials then echo only that id

    @property
    def namespace_name(self) -> str:
        return self.namespace.name if self.namespace else ""

    def describe(self) -> str:
        if self.kind == "gateway":
            return "the gateway"
        if self.kind == "namespace":
            return f'namespace "{self.namespace_name}"'
        return f'{self.kind.replace("_", " ")} "{self.name}" in namespace "{self.namespace_name}"'

    def not_found(self) -> Denied:
        """The one answer for "does not exist" and "exists where you cannot look".

        It only repeats what the caller sent: a sandbox named by id is reported by that id,
        so a refused id never reveals the sandbox's name or namespace.
        """
        if self.by_id:
            return _missing_id(self.by_id)
        return Denied(grpc.StatusCode.NOT_FOUND, f"{self.describe()} not found")


_KINDS = {
    authz_pb2.TARGET_GATEWAY: "gateway",
    authz_pb2.TARGET_NAMESPACE: "namespace",
    authz_pb2.TARGET_SANDBOX: "sandbox",
    authz_pb2.TARGET_PROVIDER: "provider",
    authz_pb2.TARGET_SERVICE_ACCOUNT: "service_account",
}


def _field(request: Message, name: str) -> Any:
    return getattr(request, name) if name else ""


def _missing(kind: str, name: str, ns_name: str) -> Denied:
    if kind == "namespace":
        return Denied(grpc.StatusCode.NOT_FOUND, f'namespace "{name}" not found')
    return Denied(grpc.StatusCode.NOT_FOUND, f'{kind.replace("_", " ")} "{name}" in namespace "{ns_name}" not found')


def _missing_id(sandbox_id: str) -> Denied:
    return Denied(grpc.StatusCode.NOT_FOUND, f'sandbox "{sandbox_id[:64]}" not found')


def resolve(rule: Rule, request: Message, store: st.Store, gateway_id: str) -> Target:
    kind = _KINDS.get(rule.target)
    if kind is None:
        raise Denied(grpc.StatusCode.PERMISSION_DENIED, "this RPC has no authorization rule")
    if kind == "gateway":
        return Target("gateway", Gateway())

    if rule.list and getattr(request, "all_namespaces", False):
        return Target("namespace", Gateway(), all_namespaces=True)

    if rule.id_field:  # supervisor RPCs name their sandbox by id
        sandbox_id = str(_field(request, rule.id_field))
        if not sandbox_id:
            raise validation.InvalidArgument(rule.id_field, "is required")
        try:
            rec = store.get_sandbox_by_id(sandbox_id)
            ns_rec = store.get_namespace_by_id(rec.namespace_id)
        except st.NotFound:
            raise _missing_id(sandbox_id) from None
        ns = facts.namespace_model(ns_rec)
        return Target("sandbox", facts.sandbox_model(rec, ns), ns, ns_rec, rec, rec.name, by_id=sandbox_id)

    ns_name = validation.namespace_name(
        str(_field(request, rule.namespace_field)), field=rule.namespace_field or "namespace", gateway_id=gateway_id
    )
    # Every field is checked for syntax before the store is asked: an invalid name must get
    # the same answer whether or not its namespace exists (else the answer reveals which).
    name = ""
    if kind != "namespace":
        name = validation.object_name(str(_field(request, rule.name_field)), field=rule.name_field)
    try:
        ns_rec = store.get_namespace_by_name(ns_name)
    except st.NotFound:
        raise _missing(kind, name or ns_name, ns_name) from None
    ns = facts.namespace_model(ns_rec)
    if kind == "namespace":
        return Target("namespace", ns, ns, ns_rec, ns_rec, ns_rec.name)

    try:
        if kind == "sandbox":
            rec = store.get_sandbox(ns_rec.id, name)
            return Target(kind, facts.sandbox_model(rec, ns), ns, ns_rec, rec, name)
        if kind == "provider":
            rec = store.get_provider(ns_rec.id, name)
            return Target(kind, facts.provider_model(rec, ns), ns, ns_rec, rec, name)
        rec = store.get_service_account(ns_rec.id, name)
        return Target(kind, facts.service_account_model(rec, ns), ns, ns_rec, rec, name)
    except st.NotFound:
        raise _missing(kind, name, ns_name) from None


def build_context(action: str, request: Message, target: Target, store: st.Store, gateway_id: str) -> Context | None:
    """The typed Cedar context an action declares, filled from the request and the store."""
    if action in ("ListMembers", "ListServiceAccounts", "ListSandboxes", "ListProviders", "ListAuditEvents"):
        return ListContext(all_namespaces=target.all_namespaces)
    if action in ("AddMember", "RemoveMember"):
        principal_id = str(getattr(request, "principal", ""))
        if not principal_id:
            raise validation.InvalidArgument("principal", "is required")
        ns_rec = target.namespace_record
        assert ns_rec is not None
        previous = ""
        for m in store.list_memberships(ns_rec.id):
            if m.principal_id == principal_id:
                previous = m.role
        if action == "AddMember":
            role = _role(str(getattr(request, "role", "")))
            kind = str(getattr(request, "member_kind", "")) or (
                "service_account" if principal_id.startswith("system:serviceaccount:") else "user"
            )
            if kind not in ("user", "service_account"):
                raise validation.InvalidArgument("member_kind", "must be 'user' or 'service_account'")
        else:
            # A non-member is authorized like removing a plain user; the handler then reports it
            # missing. Refusing here, before the decision, told outsiders who is a member.
            role, kind = NamespaceRole(previous or NamespaceRole.USER), "user"
        target.extra.update(principal=principal_id, role=str(role), previous_role=previous)
        return MemberContext(role=role, previous_role=previous, member_kind=kind)  # type: ignore[arg-type]
    if action == "UpdateNamespace":
        rec = target.namespace_record
        assert rec is not None
        changes_ceiling = request.HasField("ceiling") or (
            request.HasField("quota_mode") and request.quota_mode != rec.quota_mode
        )
        limits = rec.limits
        if request.HasField("quota"):
            q = request.quota
            limits = st.QuotaLimits(
                _non_negative(q.max_sandboxes, "quota.max_sandboxes"),
                _non_negative(q.max_gpus, "quota.max_gpus"),
                _non_negative(q.max_sandbox_lifetime_seconds, "quota.max_sandbox_lifetime_seconds"),
            )
        return UpdateNamespaceContext(
            changes_ceiling=changes_ceiling,
            changes_labels=request.HasField("labels"),
            limits=Quota(
                max_sandboxes=limits.max_sandboxes,
                max_gpus=limits.max_gpus,
                max_sandbox_lifetime_seconds=limits.max_sandbox_lifetime_seconds,
            ),
        )
    if action in ("AttachProvider", "DetachProvider"):
        # The schema gives both actions an AttachContext; DetachProvider has no provider_namespace field.
        prov_ns_name = validation.namespace_name(
            getattr(request, "provider_namespace", "") or target.namespace_name,
            field="provider_namespace",
            gateway_id=gateway_id,
        )
        prov_name = validation.object_name(request.provider, field="provider")
        try:
            prov_ns = store.get_namespace_by_name(prov_ns_name)
            prov = store.get_provider(prov_ns.id, prov_name)
        except st.NotFound:
            if prov_ns_name == target.namespace_name:
                raise _missing("provider", prov_name, prov_ns_name) from None
            # A provider of another namespace is decided, found or not: answering NOT_FOUND
            # only when it is missing would tell the caller which other providers exist.
            # The policies refuse every cross-namespace attach, so this one is refused too.
            absent = Namespace(id=f"absent:{prov_ns_name}", name=prov_ns_name)
            return AttachContext(provider=Provider(id=f"absent:{prov_ns_name}/{prov_name}", name=prov_name,
                                                   namespace=absent))  # fmt: skip
        target.extra["provider"] = prov
        return AttachContext(provider=facts.provider_model(prov, facts.namespace_model(prov_ns)))
    return None


def _role(value: str) -> NamespaceRole:
    try:
        return NamespaceRole(value)
    except ValueError:
        raise validation.InvalidArgument("role", "must be one of namespace_admin, user, auditor") from None


def _non_negative(value: int, field_name: str) -> int:
    return validation.stored_int(value, field_name)
