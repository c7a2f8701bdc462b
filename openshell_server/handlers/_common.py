"""Helpers shared by the use cases: scoped listing, pagination, namespace lookups."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from openshell_authz import NamespaceScope, member_namespace_ids
from openshell_server import facts
from openshell_server import store as st
from openshell_server.interceptor import Call
from openshell_server.validation import InvalidArgument

__all__ = ["list_scope", "namespace_names", "paginate"]

T = TypeVar("T")


def list_scope(call: Call, action: str) -> NamespaceScope:
    """The namespaces a list call may return: the target one, or (all_namespaces) the caller's scope."""
    target = call.target
    if not target.all_namespaces and target.namespace is not None:
        return NamespaceScope(all=False, namespace_ids=frozenset({target.namespace.id}))
    store = call.gateway.store
    ids = member_namespace_ids(call.principal)
    candidates = [facts.namespace_model(r) for r in store.list_namespaces(ids)] if ids else []
    return call.authorizer.scope(call.principal, action, candidates)


def namespace_names(store: st.Store, ids: set[str]) -> dict[str, str]:
    return {r.id: r.name for r in store.list_namespaces(ids)} if ids else {}


def paginate(items: Sequence[T], page_size: int, page_token: str) -> tuple[list[T], str]:
    """Offset pagination for small, in-memory result sets (namespaces, members)."""
    try:
        start = int(page_token) if page_token else 0
    except ValueError:
        raise InvalidArgument("page_token", "is not a token returned by a previous call") from None
    if start < 0 or start > len(items):
        raise InvalidArgument("page_token", "is not a token returned by a previous call")
    size = page_size if page_size > 0 else 100
    end = start + min(size, 1000)
    return list(items[start:end]), (str(end) if end < len(items) else "")
