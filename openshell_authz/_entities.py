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

__all__ = ["cached_uid", "entities_json", "entity_slices", "entity_uid", "related_objects"]

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


def _referred(obj: Any) -> tuple[Any, ...]:
    """The objects ``obj``'s entity refers to directly."""
    match obj:
        case Sandbox() | Provider() | ServiceAccount():
            return (obj.namespace,)
        case SupervisorPrincipal():
            return (obj.sandbox,)
    return ()


def related_objects(obj: Any) -> Iterable[Any]:
    """The object itself and every object its entity refers to (namespace, sandbox...)."""
    yield obj
    match obj:
        case Sandbox() | Provider() | ServiceAccount():
            yield obj.namespace
        case SupervisorPrincipal():
            yield obj.sandbox
            yield obj.sandbox.namespace


# Bounded: a gateway builds fresh objects per call, so old entries only pin memory.
_CACHE_SIZE = 4096
# Keyed by id(obj) and holding obj itself, so an id cannot be reused while its entry
# lives; hashing a nested pydantic model costs more than building the fragment. The
# value is the object's uid and the fragments of its closure (itself first, then what
# its entity refers to), so a cache hit costs one dict read per root object.
_Closure = tuple[dict[str, str], tuple[tuple[str, str], ...]]
_cache: OrderedDict[int, tuple[Any, _Closure]] = OrderedDict()
_cache_lock = threading.Lock()


def _closure(obj: Any) -> _Closure:
    """(uid, ((uid key, JSON text), ...)) of ``obj`` and its related objects; cached (objects are frozen)."""
    hit = _cache.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    fragments = dict((_build_fragment(obj),))
    for related in _referred(obj):  # their closures are cached too: a new sandbox reuses its namespace's
        for key, text in _closure(related)[1]:
            fragments.setdefault(key, text)
    result = (entity_uid(obj), tuple(fragments.items()))
    with _cache_lock:
        _cache[id(obj)] = (obj, result)
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return result


def cached_uid(obj: Any) -> dict[str, str]:
    """:func:`entity_uid` from the closure cache (the returned dict is shared: do not mutate it)."""
    return _closure(obj)[0]


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
        for key, text in _closure(root)[1]:
            seen.setdefault(key, text)
    return "[" + ",".join(seen.values()) + "]"


def entity_slices(principal: Any, others: Iterable[Any]) -> tuple[str, str]:
    """``entities_json((principal, *others))`` cut in two: the principal's closure, and the rest.

    The engine parses the principal's slice once per principal and adds only the
    rest per request. Together they hold exactly the entities :func:`entities_json`
    would, with the same first-wins rule for a uid that occurs twice.
    """
    head = _closure(principal)[1]
    seen = {key for key, _ in head}
    rest: list[str] = []
    for root in others:
        for key, text in _closure(root)[1]:
            if key not in seen:
                seen.add(key)
                rest.append(text)
    return "[" + ",".join(text for _, text in head) + "]", "[" + ",".join(rest) + "]"
