"""Turns domain objects into the Cedar entities one request needs, and nothing more.

A decision costs the same with 10 or 100,000 stored objects because only the
principal, the resource, their namespaces and what the context names are built.
Entity JSON fragments are cached per (frozen, hashable) domain object.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from openshell_authz.models import (
    Gateway,
    LocalPrincipal,
    Namespace,
    NamespaceRole,
    Provider,
    Sandbox,
    ServiceAccount,
    ServiceAccountPrincipal,
    SupervisorPrincipal,
    UserPrincipal,
)

__all__ = ["entities_json", "entity_uid", "related_objects"]

_ROLE_ATTR = {
    NamespaceRole.NAMESPACE_ADMIN: "admin_of",
    NamespaceRole.USER: "user_of",
    NamespaceRole.AUDITOR: "auditor_of",
}


def _ref(type_: str, id_: str) -> dict[str, Any]:
    return {"__entity": {"type": type_, "id": id_}}


def entity_uid(obj: Any) -> dict[str, str]:
    """The ``{"type", "id"}`` uid of a principal or resource (the fast form for requests)."""
    match obj:
        case UserPrincipal() | LocalPrincipal():
            return {"type": "User", "id": obj.id}
        case ServiceAccountPrincipal():
            return {"type": "ServiceAccount", "id": obj.id}
        case SupervisorPrincipal():
            return {"type": "Supervisor", "id": obj.sandbox.id}
        case Namespace():
            return {"type": "Namespace", "id": obj.id}
        case Sandbox():
            return {"type": "Sandbox", "id": obj.id}
        case Provider():
            return {"type": "Provider", "id": obj.id}
        case ServiceAccount():
            return {"type": "ServiceAccount", "id": obj.id}
        case Gateway():
            return {"type": "Gateway", "id": obj.id}
    raise TypeError(f"not an authorization object: {type(obj).__name__}")


def related_objects(obj: Any) -> Iterable[Any]:
    """The object itself and every object its entity refers to (namespace, sandbox...)."""
    yield obj
    match obj:
        case Sandbox() | Provider() | ServiceAccount():
            yield obj.namespace
        case SupervisorPrincipal():
            yield obj.sandbox
            yield obj.sandbox.namespace


_CACHE_SIZE = 65536
# Keyed by id(obj) and holding obj itself, so an id cannot be reused while its entry
# lives; hashing a nested pydantic model costs more than building the fragment.
_cache: OrderedDict[int, tuple[Any, tuple[str, str]]] = OrderedDict()
_cache_lock = threading.Lock()


def _fragment(obj: Any) -> tuple[str, str]:
    """(uid key, JSON text) of one entity; cached because domain objects are frozen."""
    hit = _cache.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    result = _build_fragment(obj)
    with _cache_lock:
        _cache[id(obj)] = (obj, result)
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return result


def _build_fragment(obj: Any) -> tuple[str, str]:
    uid = entity_uid(obj)
    attrs: dict[str, Any]
    parents: list[dict[str, str]] = []
    match obj:
        case UserPrincipal() | LocalPrincipal():
            attrs = {"issuer": obj.issuer, "admin_of": [], "user_of": [], "auditor_of": []}
            for m in obj.memberships:
                attrs[_ROLE_ATTR[m.role]].append(_ref("Namespace", m.namespace_id))
            parents = [{"type": "Role", "id": str(r)} for r in sorted(obj.global_roles)]
        case ServiceAccountPrincipal():
            attrs = {"name": obj.name, "namespace": _ref("Namespace", obj.namespace_id)}
            parents = [{"type": "Namespace", "id": obj.namespace_id}]
        case SupervisorPrincipal():
            attrs = {
                "sandbox": _ref("Sandbox", obj.sandbox.id),
                "namespace": _ref("Namespace", obj.sandbox.namespace.id),
            }
        case Namespace():
            attrs = {
                "name": obj.name,
                "phase": str(obj.phase),
                "quota_mode": str(obj.quota.quota_mode),
                "ceiling": {
                    "max_sandboxes": obj.ceiling.max_sandboxes,
                    "max_gpus": obj.ceiling.max_gpus,
                    "max_sandbox_lifetime_seconds": obj.ceiling.max_sandbox_lifetime_seconds,
                },
            }
        case Sandbox():
            attrs = {
                "name": obj.name,
                "namespace": _ref("Namespace", obj.namespace.id),
                "providers": [_ref("Provider", pid) for pid in sorted(obj.provider_ids)],
            }
            parents = [{"type": "Namespace", "id": obj.namespace.id}]
        case Provider() | ServiceAccount():
            attrs = {"name": obj.name, "namespace": _ref("Namespace", obj.namespace.id)}
            parents = [{"type": "Namespace", "id": obj.namespace.id}]
        case Gateway():
            attrs = {}
        case _:
            raise TypeError(f"not an authorization object: {type(obj).__name__}")
    text = json.dumps({"uid": uid, "attrs": attrs, "parents": parents}, separators=(",", ":"))
    return f'{uid["type"]}::{uid["id"]}', text


def entities_json(objects: Iterable[Any]) -> str:
    """The Cedar entities JSON for ``objects`` and what they refer to, each uid once.

    Two different objects with one uid (e.g. a stale and a fresh copy) is a caller
    bug: the first wins, and policies see a consistent single entity.
    """
    seen: dict[str, str] = {}
    for root in objects:
        for obj in related_objects(root):
            key, text = _fragment(obj)
            seen.setdefault(key, text)
    return "[" + ",".join(seen.values()) + "]"
