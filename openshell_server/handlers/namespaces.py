"""Namespaces: create, get, list, update and two-phase delete (SPEC §5)."""

from __future__ import annotations

from openshell_authz import member_namespace_ids
from openshell_server import facts, validation
from openshell_server import store as st
from openshell_server.api import openshell_pb2 as api
from openshell_server.handlers import convert
from openshell_server.handlers._common import paginate
from openshell_server.interceptor import Call

__all__ = ["create", "delete", "get", "list_", "update"]


def _limits(msg: object, field: str) -> st.QuotaLimits:
    values = {}
    for name in ("max_sandboxes", "max_gpus", "max_sandbox_lifetime_seconds"):
        values[name] = validation.stored_int(int(getattr(msg, name)), f"{field}.{name}")
    return st.QuotaLimits(**values)


def _quota_mode(value: str) -> str:
    if value not in ("", "hard", "soft"):
        raise validation.InvalidArgument("quota_mode", "must be 'hard' or 'soft'")
    return value or "hard"


def create(call: Call, req: api.CreateNamespaceRequest) -> api.CreateNamespaceResponse:
    gw = call.gateway
    name = validation.namespace_name(req.name, field="name", gateway_id=gw.settings.gateway_id)
    if not req.name:
        raise validation.InvalidArgument("name", "is required")
    # From here the call is about the namespace it creates: its audit event names it as the target.
    call.target.kind, call.target.name = "namespace", name
    rec = gw.store.create_namespace(
        name,
        created_by=call.identity.principal_id,
        labels=validation.labels(req.labels),
        limits=_limits(req.quota, "quota"),
        ceiling=_limits(req.ceiling, "ceiling"),
        quota_mode=_quota_mode(req.quota_mode),
    )
    return api.CreateNamespaceResponse(namespace=convert.namespace(rec))


def get(call: Call, req: api.GetNamespaceRequest) -> api.GetNamespaceResponse:
    return api.GetNamespaceResponse(namespace=convert.namespace(call.target.namespace_record))


def list_(call: Call, req: api.ListNamespacesRequest) -> api.ListNamespacesResponse:
    store = call.gateway.store
    selector = validation.label_selector(req.label_selector)
    ids = member_namespace_ids(call.principal)
    candidates = [facts.namespace_model(r) for r in store.list_namespaces(ids)] if ids else []
    scope = call.authorizer.scope(call.principal, "ListNamespaces", candidates)
    if scope.all:
        records = store.list_namespaces(label_selector=selector)
    elif scope.namespace_ids:
        records = store.list_namespaces(scope.namespace_ids, label_selector=selector)
    else:
        records = []
    records.sort(key=lambda r: r.name)
    page, token = paginate(records, req.page_size, req.page_token)
    return api.ListNamespacesResponse(namespaces=[convert.namespace(r) for r in page], next_page_token=token)


def update(call: Call, req: api.UpdateNamespaceRequest) -> api.UpdateNamespaceResponse:
    rec = call.target.namespace_record
    updated = call.gateway.store.update_namespace(
        rec.id,
        expected_resource_version=validation.stored_int(req.resource_version, "resource_version") or None,
        labels=validation.labels(req.labels.items) if req.HasField("labels") else None,
        limits=_limits(req.quota, "quota") if req.HasField("quota") else None,
        ceiling=_limits(req.ceiling, "ceiling") if req.HasField("ceiling") else None,
        quota_mode=_quota_mode(req.quota_mode) if req.HasField("quota_mode") else None,
    )
    return api.UpdateNamespaceResponse(namespace=convert.namespace(updated))


def delete(call: Call, req: api.DeleteNamespaceRequest) -> api.DeleteNamespaceResponse:
    """Mark Terminating (irreversible), then finish only if nothing is left in it."""
    gw = call.gateway
    rec = call.target.namespace_record
    gw.store.begin_delete_namespace(rec.id)
    deleted = gw.store.finish_delete_namespace(rec.id)  # NamespaceNotEmpty names the blockers
    facts.forget_memberships(gw.store)  # its memberships went with it, whoever held them
    gw.driver.delete_namespace(rec.name)
    return api.DeleteNamespaceResponse(namespace=convert.namespace(deleted))
