"""The one narrow door: ``Authorizer.check(request)`` returns a typed ``Response``.

Fail closed: anything that is not an explicit allow with no evaluation error is a
denial. Cedar skips a policy whose evaluation errors, so an erroring ``forbid``
would stop forbidding; here any error in a decision denies it, and is reported.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from openshell_authz import _engine
from openshell_authz._entities import cached_uid, entities_json, entity_slices, entity_uid
from openshell_authz.context import AttachContext, Context, ListContext, MemberContext, UpdateNamespaceContext
from openshell_authz.errors import NotFound, PermissionDenied
from openshell_authz.models import (
    LocalPrincipal,
    Namespace,
    Principal,
    Resource,
    ServiceAccountPrincipal,
    UserPrincipal,
)

__all__ = ["Authorizer", "Decision", "NamespaceScope", "Request", "Response", "request_from_dict", "request_to_dict"]

#: Actions whose context is a ListContext (they honour ``all_namespaces``).
LIST_ACTIONS = frozenset({"ListMembers", "ListServiceAccounts", "ListSandboxes", "ListProviders", "ListAuditEvents"})
#: Per-namespace read actions :meth:`Authorizer.scope` can answer for.
SCOPE_ACTIONS = LIST_ACTIONS | {"GetNamespace", "ListNamespaces"}
_PROBE_NAMESPACE_ID = "\x00probe"  # a namespace id no store ever issues


class Decision(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class Request:
    """Who (principal) wants to do what (action, a Cedar action name) to which resource."""

    principal: Principal
    action: str
    resource: Resource
    context: Context | Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Response:
    decision: Decision
    reasons: tuple[str, ...] = ()  # @id of every policy that determined the decision
    errors: tuple[str, ...] = ()
    policy_hash: str = ""

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOW


@dataclass(frozen=True, slots=True)
class NamespaceScope:
    """Where a principal may perform a (list) action: everywhere, or in these namespace ids."""

    all: bool
    namespace_ids: frozenset[str] = field(default_factory=frozenset)

    def admits(self, namespace_id: str) -> bool:
        return self.all or namespace_id in self.namespace_ids


class Authorizer:
    """Decisions from one validated, immutable policy set.

    Build with :meth:`from_directory`; to change policies build a new Authorizer
    and swap the reference (a decision never sees a half-loaded set).
    """

    def __init__(self, compiled: _engine.CompiledPolicies) -> None:
        self._compiled = compiled
        self._lock = threading.Lock()

    @classmethod
    def from_directory(cls, directory: Path | str) -> Authorizer:
        return cls(_engine.compile_directory(directory))

    # ------------------------------------------------------------------ facts about the set
    @property
    def policy_hash(self) -> str:
        return self._compiled.hash

    @property
    def actions(self) -> frozenset[str]:
        return self._compiled.actions

    @property
    def policies(self) -> Mapping[str, Mapping[str, Any]]:
        """``@id`` -> {effect, file, line, annotations}."""
        return self._compiled.policies

    def annotation(self, policy_id: str, key: str) -> str | None:
        info = self._compiled.policies.get(policy_id)
        return None if info is None else info["annotations"].get(key)

    # ------------------------------------------------------------------ decisions
    def check(self, request: Request) -> Response:
        h = self._compiled.hash
        if request.action not in self._compiled.actions:
            return Response(Decision.DENY, errors=(f"unknown action {request.action!r}",), policy_hash=h)
        try:
            context, context_objects = _context(request.context)
            cedar_request = {
                "principal": cached_uid(request.principal),
                "action": _action_uid(request.action),
                "resource": cached_uid(request.resource),
                "context": context,
            }
            ents = entity_slices(request.principal, (request.resource, *context_objects))
        except (TypeError, ValueError) as exc:
            return Response(Decision.DENY, errors=(f"bad request: {exc}",), policy_hash=h)
        raw = _engine.evaluate_one(self._compiled, cedar_request, ents)
        return Response(Decision.ALLOW if raw.allowed else Decision.DENY, raw.reasons, raw.errors, h)

    def check_batch(self, requests: Sequence[Request]) -> list[Response]:
        """Decide many requests with one engine call (list RPCs, matrices)."""
        if not requests:
            return []
        h = self._compiled.hash
        out: list[Response | None] = [None] * len(requests)
        cedar_requests: list[dict[str, Any]] = []
        objects: list[Any] = []
        positions: list[int] = []
        for i, req in enumerate(requests):
            if req.action not in self._compiled.actions:
                out[i] = Response(Decision.DENY, errors=(f"unknown action {req.action!r}",), policy_hash=h)
                continue
            try:
                context, context_objects = _context(req.context)
                cedar_requests.append(
                    {
                        "principal": entity_uid(req.principal),
                        "action": {"type": "Action", "id": req.action},
                        "resource": entity_uid(req.resource),
                        "context": context,
                    }
                )
            except (TypeError, ValueError) as exc:
                out[i] = Response(Decision.DENY, errors=(f"bad request: {exc}",), policy_hash=h)
                continue
            objects.extend((req.principal, req.resource, *context_objects))
            positions.append(i)
        if cedar_requests:
            try:
                ents = entities_json(objects)
            except (TypeError, ValueError) as exc:
                raws = [_engine.RawDecision(False, (), (f"bad entities: {exc}",))] * len(cedar_requests)
            else:
                raws = _engine.evaluate(self._compiled, cedar_requests, ents)
            for pos, raw in zip(positions, raws, strict=True):
                out[pos] = Response(
                    Decision.ALLOW if raw.allowed else Decision.DENY, raw.reasons, raw.errors, h
                )
        return [r for r in out if r is not None]

    def authorize(self, request: Request, *, read_action: str | None = None) -> Response:
        """Return the allowing response, or raise.

        Raises :class:`PermissionDenied` when the caller may ``read_action`` the
        resource but not do ``request.action``; :class:`NotFound` when it may not
        even read it (or no ``read_action`` is given and the action is denied),
        so a refusal never tells whether the target exists.
        """
        response = self.check(request)
        if response.allowed:
            return response
        if read_action and read_action != request.action:
            peek = self.check(Request(request.principal, read_action, request.resource, _read_context(read_action)))
            if peek.allowed:
                raise PermissionDenied(response)
        raise NotFound(response)

    def scope(self, principal: Principal, action: str, candidates: Iterable[Namespace]) -> NamespaceScope:
        """Which namespaces ``principal`` may perform the per-namespace ``action`` in.

        Lets list RPCs filter in the store instead of deciding item by item. If the
        action is allowed on a namespace the principal holds no membership in, it is
        allowed everywhere (a global role); otherwise only ``candidates`` (the
        namespaces of the principal's memberships) are decided, in one batch. The
        property tests compare this with point decisions on random worlds.
        """
        if action not in SCOPE_ACTIONS:
            # The probe below is exact only for reads and lists: their policies do not
            # depend on the namespace's own attributes (phase, name), which forbids on
            # writes do (a Terminating namespace, the default namespace).
            raise ValueError(f"scope() answers only for {sorted(SCOPE_ACTIONS)}, not {action!r}")
        context = _read_context(action)
        probe = Namespace(id=_PROBE_NAMESPACE_ID, name="probe")
        if self.check(Request(principal, action, probe, context)).allowed:
            return NamespaceScope(all=True)
        ns_list = list({ns.id: ns for ns in candidates}.values())
        answers = self.check_batch([Request(principal, action, ns, context) for ns in ns_list])
        return NamespaceScope(
            all=False, namespace_ids=frozenset(ns.id for ns, r in zip(ns_list, answers, strict=True) if r.allowed)
        )


_ACTION_UIDS: dict[str, dict[str, str]] = {}


def _action_uid(action: str) -> dict[str, str]:
    """The shared ``{"type": "Action", "id": action}`` (callers only pass known actions)."""
    uid = _ACTION_UIDS.get(action)
    if uid is None:
        uid = _ACTION_UIDS.setdefault(action, {"type": "Action", "id": action})
    return uid


def member_namespace_ids(principal: Principal) -> frozenset[str]:
    """Namespace ids a principal has any standing in (memberships, or its own for a service account)."""
    match principal:
        case UserPrincipal() | LocalPrincipal():
            return frozenset(m.namespace_id for m in principal.memberships)
        case ServiceAccountPrincipal():
            return frozenset({principal.namespace_id})
    return frozenset()


def _read_context(action: str) -> ListContext | None:
    return ListContext(all_namespaces=False) if action in LIST_ACTIONS else None


def _context(context: Context | Mapping[str, Any] | None) -> tuple[dict[str, Any], tuple[Any, ...]]:
    if context is None:
        return {}, ()
    if isinstance(context, Mapping):
        return dict(context), ()
    return context.cedar(), context.entities()


_PRINCIPAL = TypeAdapter(Principal)
_RESOURCE = TypeAdapter(Resource)
_CONTEXTS: dict[str, type[Any]] = {
    "list": ListContext,
    "member": MemberContext,
    "update_namespace": UpdateNamespaceContext,
    "attach": AttachContext,
}


def request_to_dict(request: Request) -> dict[str, Any]:
    """A JSON-safe form of a request (recorded in audit events, replayed by ``diff``)."""
    ctx: dict[str, Any] | None
    if request.context is None:
        ctx = None
    elif isinstance(request.context, Mapping):
        ctx = {"raw": dict(request.context)}
    else:
        kind = next(k for k, v in _CONTEXTS.items() if isinstance(request.context, v))
        ctx = {kind: request.context.model_dump(mode="json")}
    return {
        "principal": _PRINCIPAL.dump_python(request.principal, mode="json"),
        "action": request.action,
        "resource": _RESOURCE.dump_python(request.resource, mode="json"),
        "context": ctx,
    }


def request_from_dict(data: Mapping[str, Any]) -> Request:
    """Inverse of :func:`request_to_dict`; raises ``ValueError`` on malformed input."""
    try:
        ctx_data = data.get("context")
        context: Context | Mapping[str, Any] | None = None
        if ctx_data:
            (kind, body), = ctx_data.items()
            context = dict(body) if kind == "raw" else _CONTEXTS[kind].model_validate(body)
        return Request(
            principal=_PRINCIPAL.validate_python(data["principal"]),
            action=str(data["action"]),
            resource=_RESOURCE.validate_python(data["resource"]),
            context=context,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a recorded authorization request: {exc}") from exc
