"""Gateway-wide calls: config, audit events, WhoAmI and CheckAccess."""

from __future__ import annotations

from typing import Any

from google.protobuf.json_format import MessageToDict

from openshell_authz import Gateway as GatewayResource
from openshell_authz import ListContext, Request
from openshell_server import facts, validation
from openshell_server import store as st
from openshell_server.api import openshell_pb2 as api
from openshell_server.api import resources_pb2 as pb
from openshell_server.handlers._common import list_scope
from openshell_server.interceptor import Call
from openshell_server.status import Denied

__all__ = ["check_access", "get_config", "list_audit_events", "update_config", "who_am_i"]

import grpc


def _config_message(cfg: st.GatewayConfig, max_ttl: int) -> pb.GatewayConfig:
    doc = cfg.doc.get("default_sandbox_policy", {})
    return pb.GatewayConfig(
        default_sandbox_policy=pb.SandboxPolicy(
            allow_endpoints=doc.get("allow_endpoints", []), deny_endpoints=doc.get("deny_endpoints", []),
            env=doc.get("env", {}),
        ),
        max_token_ttl_seconds=max_ttl, resource_version=cfg.resource_version,
    )  # fmt: skip


def get_config(call: Call, req: api.GetGatewayConfigRequest) -> api.GetGatewayConfigResponse:
    gw = call.gateway
    return api.GetGatewayConfigResponse(
        config=_config_message(gw.store.get_gateway_config(), gw.settings.sa_token_max_ttl_seconds)
    )


def update_config(call: Call, req: api.UpdateGatewayConfigRequest) -> api.UpdateGatewayConfigResponse:
    gw = call.gateway
    policy: dict[str, Any] = MessageToDict(req.config.default_sandbox_policy, preserving_proto_field_name=True)
    policy.pop("providers", None)
    cfg = gw.store.update_gateway_config(
        {"default_sandbox_policy": policy},
        updated_by=call.identity.principal_id,
        expected_resource_version=validation.stored_int(req.resource_version, "resource_version") or None,
    )
    return api.UpdateGatewayConfigResponse(config=_config_message(cfg, gw.settings.sa_token_max_ttl_seconds))


def list_audit_events(call: Call, req: api.ListAuditEventsRequest) -> api.ListAuditEventsResponse:
    gw = call.gateway
    scope = list_scope(call, "ListAuditEvents")
    names: set[str] | None = None
    if not scope.all:
        names = {r.name for r in gw.store.list_namespaces(scope.namespace_ids)} if scope.namespace_ids else set()
    try:
        events, token = gw.query_audit(
            namespaces=names,
            principal=req.principal or None,
            operation=req.operation or None,
            outcome=req.outcome or None,
            since=req.since.ToDatetime() if req.HasField("since") else None,
            until=req.until.ToDatetime() if req.HasField("until") else None,
            page_size=validation.page_size(req.page_size),
            page_token=req.page_token,
        )
    except ValueError as exc:
        raise validation.InvalidArgument("page_token", str(exc)) from None
    return api.ListAuditEventsResponse(events=events, next_page_token=token)


def who_am_i(call: Call, req: api.WhoAmIRequest) -> api.WhoAmIResponse:
    store = call.gateway.store
    ident = call.identity
    memberships = []
    for ns_id, role in store.memberships_of(ident.principal_id):
        try:
            ns_name = store.get_namespace_by_id(ns_id).name
            memberships.append(pb.Membership(namespace=ns_name, namespace_id=ns_id, role=role))
        except st.NotFound:
            continue
    return api.WhoAmIResponse(
        principal_id=ident.principal_id, kind=ident.kind, issuer=ident.issuer,
        global_roles=sorted(ident.global_roles), memberships=memberships,
    )  # fmt: skip


def check_access(call: Call, req: api.CheckAccessRequest) -> api.CheckAccessResponse:
    """Decide a request about the caller itself; never reveals objects the caller cannot see."""
    store = call.gateway.store
    authorizer = call.authorizer
    if req.action not in authorizer.actions:
        raise validation.InvalidArgument("action", f"unknown action {req.action[:64]!r}")
    kind = req.kind or "namespace"
    context = None
    if req.action.startswith("List") and req.action != "ListNamespaces":
        context = ListContext(all_namespaces=req.all_namespaces)
    if kind == "gateway" or (req.all_namespaces and context is not None):
        resource: Any = GatewayResource()
    else:
        ns_name = validation.namespace_name(req.namespace, gateway_id=call.gateway.settings.gateway_id)
        # Syntax first: an invalid kind or name gets the same answer whether the namespace exists.
        if kind not in ("namespace", "sandbox", "provider", "service_account"):
            raise validation.InvalidArgument("kind", "must be gateway, namespace, sandbox, provider or service_account")
        name = "" if kind == "namespace" else validation.object_name(req.name)
        try:
            ns_rec = store.get_namespace_by_name(ns_name)
            ns = facts.namespace_model(ns_rec)
            if kind == "namespace":
                resource = ns
            elif kind == "sandbox":
                resource = facts.sandbox_model(store.get_sandbox(ns_rec.id, name), ns)
            elif kind == "provider":
                resource = facts.provider_model(store.get_provider(ns_rec.id, name), ns)
            else:
                resource = facts.service_account_model(store.get_service_account(ns_rec.id, name), ns)
        except st.NotFound:
            raise Denied(grpc.StatusCode.NOT_FOUND, f"{kind} not found") from None
        ns_visible = authorizer.check(Request(call.principal, "GetNamespace", ns)).allowed
        if not ns_visible:
            raise Denied(grpc.StatusCode.NOT_FOUND, f"{kind} not found")
    decision = authorizer.check(Request(call.principal, req.action, resource, context))
    return api.CheckAccessResponse(
        allowed=decision.allowed, reasons=list(decision.reasons), policy_set_hash=decision.policy_hash
    )
