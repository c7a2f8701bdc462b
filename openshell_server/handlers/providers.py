"""Providers: CRUD with write-only credentials, attach/detach to sandboxes, list per sandbox."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openshell_server import store as st
from openshell_server import validation
from openshell_server.api import openshell_pb2 as api
from openshell_server.api import resources_pb2 as pb
from openshell_server.handlers import convert
from openshell_server.handlers._common import list_scope, namespace_names, paginate
from openshell_server.handlers.sandboxes import sandbox_message
from openshell_server.interceptor import Call

__all__ = ["attach", "create", "delete", "detach", "get", "list_", "list_for_sandbox", "update"]

MAX_CREDENTIALS = 64
MAX_VALUE = 64 * 1024


def _env_key(key: str, field: str) -> str:
    if (
        not key
        or len(key) > 256
        or not (key[0].isalpha() or key[0] == "_")
        or not all(c.isalnum() or c == "_" for c in key)
    ):
        raise validation.InvalidArgument(field, f"{key[:64]!r} is not a valid environment variable name")
    return key


def _credentials(values: Mapping[str, str]) -> dict[str, str]:
    if len(values) > MAX_CREDENTIALS:
        raise validation.InvalidArgument("credentials", f"at most {MAX_CREDENTIALS} credentials per provider")
    out = {}
    for key, value in values.items():
        _env_key(key, "credentials")
        if len(value) > MAX_VALUE or "\x00" in value:
            raise validation.InvalidArgument("credentials", f"value of {key!r} is too long or contains NUL")
        out[key] = value
    return out


def _profile(msg: pb.ProviderProfile) -> dict[str, object]:
    endpoints = []
    for ep in msg.endpoints:
        if not ep or len(ep) > 253 or any(c.isspace() or c in "/@" for c in ep):
            raise validation.InvalidArgument("profile.endpoints", f"{ep[:64]!r} is not a host or host:port")
        endpoints.append(ep)
    env = {_env_key(k, "profile.env"): v for k, v in msg.env.items()}
    return {"endpoints": sorted(set(endpoints)), "env": env}


def _message(store: st.Store, rec: st.ProviderRecord, ns_name: str) -> pb.Provider:
    return convert.provider(rec, ns_name, list(store.get_provider_credentials(rec.id)))


def create(call: Call, req: api.CreateProviderRequest) -> api.CreateProviderResponse:
    store = call.gateway.store
    ns = call.target.namespace_record
    name = validation.object_name(req.name)
    call.target.name = name
    ptype = req.type or "generic"
    validation.object_name(ptype, field="type")
    rec = store.create_provider(
        ns.id, name, type=ptype, created_by=call.identity.principal_id, profile=_profile(req.profile),
        labels=validation.labels(req.labels), credentials=_credentials(req.credentials),
    )  # fmt: skip
    return api.CreateProviderResponse(provider=_message(store, rec, ns.name))


def get(call: Call, req: api.GetProviderRequest) -> api.GetProviderResponse:
    return api.GetProviderResponse(
        provider=_message(call.gateway.store, call.target.record, call.target.namespace_name)
    )


def list_(call: Call, req: api.ListProvidersRequest) -> api.ListProvidersResponse:
    store = call.gateway.store
    scope = list_scope(call, "ListProviders")
    if not scope.all and not scope.namespace_ids:
        return api.ListProvidersResponse()
    records = store.list_providers(
        None if scope.all else scope.namespace_ids, label_selector=validation.label_selector(req.label_selector)
    )
    names = namespace_names(store, {r.namespace_id for r in records})
    records.sort(key=lambda r: (names.get(r.namespace_id, ""), r.name))
    page, token = paginate(records, req.page_size, req.page_token)
    return api.ListProvidersResponse(
        providers=[_message(store, r, names.get(r.namespace_id, "")) for r in page], next_page_token=token
    )


def update(call: Call, req: api.UpdateProviderRequest) -> api.UpdateProviderResponse:
    store = call.gateway.store
    rec = call.target.record
    credentials = None
    if req.credentials or req.remove_credentials:
        credentials = store.get_provider_credentials(rec.id)
        credentials.update(_credentials(req.credentials))
        for key in req.remove_credentials:
            credentials.pop(key, None)
    updated = store.update_provider(
        rec.id,
        expected_resource_version=validation.stored_int(req.resource_version, "resource_version") or None,
        labels=validation.labels(req.labels.items) if req.HasField("labels") else None,
        profile=_profile(req.profile) if req.HasField("profile") else None,
        credentials=credentials,
    )
    return api.UpdateProviderResponse(provider=_message(store, updated, call.target.namespace_name))


def delete(call: Call, req: api.DeleteProviderRequest) -> api.DeleteProviderResponse:
    call.gateway.store.delete_provider(call.target.record.id)  # ProviderInUse while attached
    return api.DeleteProviderResponse()


def _resolved_provider(call: Call, name: str) -> Any:
    """The provider the interceptor resolved and authorized; a provider it could not find is NOT_FOUND."""
    prov = call.target.extra.get("provider")
    if prov is None:  # only reachable if a policy allowed a cross-namespace attach of a missing provider
        raise st.NotFound(f'provider "{name}" not found')
    return prov


def attach(call: Call, req: api.AttachProviderRequest) -> api.AttachProviderResponse:
    store = call.gateway.store
    prov = _resolved_provider(call, req.provider)
    rec = store.attach_provider(call.target.record.id, prov.id)
    return api.AttachProviderResponse(sandbox=sandbox_message(store, rec, call.target.namespace_name))


def detach(call: Call, req: api.DetachProviderRequest) -> api.DetachProviderResponse:
    store = call.gateway.store
    prov = _resolved_provider(call, req.provider)
    rec = store.detach_provider(call.target.record.id, prov.id)
    return api.DetachProviderResponse(sandbox=sandbox_message(store, rec, call.target.namespace_name))


def list_for_sandbox(call: Call, req: api.ListSandboxProvidersRequest) -> api.ListSandboxProvidersResponse:
    store = call.gateway.store
    ids = call.target.record.provider_ids
    records = sorted(store.list_providers(ids=ids), key=lambda r: r.name) if ids else []
    return api.ListSandboxProvidersResponse(providers=[_message(store, r, call.target.namespace_name) for r in records])
