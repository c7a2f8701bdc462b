"""Property tests on random worlds: Cedar and the Polar twin agree; isolation holds; scope is sound.

Examples per property: ``OPENSHELL_DIFF_EXAMPLES`` if set, else 50,000 under
``OPENSHELL_DEEP=1`` (``tox -e deep``), else 2,000. Each example is one random
world asked several random requests.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openshell_authz import (
    DEFAULT_NAMESPACE,
    AttachContext,
    Authorizer,
    Gateway,
    GlobalRole,
    ListContext,
    LocalPrincipal,
    MemberContext,
    Membership,
    Namespace,
    NamespacePhase,
    NamespaceRole,
    Provider,
    Quota,
    Request,
    Sandbox,
    ServiceAccount,
    ServiceAccountPrincipal,
    SupervisorPrincipal,
    UpdateNamespaceContext,
    UserPrincipal,
    member_namespace_ids,
)
from openshell_authz.authorizer import LIST_ACTIONS
from openshell_authz.context import Context
from openshell_authz.models import Principal, Resource
from tests.authz.conftest import POLICIES
from tests.authz.polar_twin import POLAR_FILE, PolarTwin


def _examples() -> int:
    if os.environ.get("OPENSHELL_DIFF_EXAMPLES"):
        return int(os.environ["OPENSHELL_DIFF_EXAMPLES"])
    return 50_000 if os.environ.get("OPENSHELL_DEEP") == "1" else 2_000


EXAMPLES = _examples()
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
AUTHZ = Authorizer.from_directory(POLICIES)
TWIN = PolarTwin()
ACTIONS = sorted(AUTHZ.actions)
SELF_SERVICE = frozenset({"WhoAmI", "CheckAccess", "GetGatewayConfig"})
# Namespace-targeted reads and lists: what list RPCs ask Authorizer.scope about.
SCOPED_ACTIONS = sorted(LIST_ACTIONS | {"GetNamespace", "ListNamespaces"})

_TARGETS: dict[str, tuple[str, ...]] = {
    **{a: ("namespace",) for a in ("DeleteNamespace", "GetNamespace", "UpdateNamespace", "ListNamespaces",
                                   "AddMember", "RemoveMember", "CreateServiceAccount", "CreateSandbox",
                                   "CreateProvider")},
    **{a: ("namespace", "gateway") for a in LIST_ACTIONS},
    **{a: ("gateway",) for a in ("CreateNamespace", "GetGatewayConfig", "UpdateGatewayConfig", "WhoAmI",
                                 "CheckAccess")},
    **{a: ("service_account",) for a in ("DeleteServiceAccount", "IssueServiceAccountToken")},
    **{a: ("provider",) for a in ("UpdateProvider", "DeleteProvider", "GetProvider")},
    "GetSandboxProviderEnvironment": ("sandbox", "provider"),
}


def _target_kinds(action: str) -> tuple[str, ...]:
    return _TARGETS.get(action, ("sandbox",))


@dataclass(frozen=True)
class World:
    namespaces: tuple[Namespace, ...]
    providers: tuple[Provider, ...]
    sandboxes: tuple[Sandbox, ...]
    service_accounts: tuple[ServiceAccount, ...]
    principals: tuple[Principal, ...]


_T = TypeVar("_T")
_SMALL = (0, 1, 2, 5, 10, 100)
_NAMES = (DEFAULT_NAMESPACE, "team-a", "team-b", "ml", "ops")
# Strategies are built once: hypothesis validates each new strategy object, which
# would dominate the cost of an example if the composites below created their own.
_INDEX = tuple(st.integers(0, n - 1) for n in range(1, 64))
_BOOL = st.booleans()
_COUNT = {n: st.integers(0 if n < 0 else 1, abs(n)) for n in (1, 2, 3, 4, -3, -4)}


def _pick(draw: st.DrawFn, items: Sequence[_T]) -> _T:
    return items[draw(_INDEX[len(items) - 1])]


def _quota(draw: st.DrawFn) -> Quota:
    return Quota(max_sandboxes=_pick(draw, _SMALL), max_gpus=_pick(draw, _SMALL),
                 max_sandbox_lifetime_seconds=_pick(draw, _SMALL))


@st.composite
def worlds(draw: st.DrawFn) -> World:
    names = list(_NAMES)
    namespaces = []
    for i in range(draw(_COUNT[4])):
        name = names.pop(draw(_INDEX[len(names) - 1]))
        phase = NamespacePhase.TERMINATING if draw(_INDEX[2]) == 0 else NamespacePhase.ACTIVE
        namespaces.append(Namespace(id=f"ns-{i}", name=name, phase=phase, ceiling=_quota(draw)))
    # A membership may name a deleted namespace's id (its name may live on under a new id).
    member_ids = [ns.id for ns in namespaces] + ["ns-deleted"]
    providers = [Provider(id=f"prov-{i}", name=f"p{i}", namespace=_pick(draw, namespaces))
                 for i in range(draw(_COUNT[4]))]
    sandboxes = [
        Sandbox(id=f"sb-{i}", name=f"s{i}", namespace=_pick(draw, namespaces),
                # attachments may cross namespaces (stray data): policies must not trust them
                provider_ids=frozenset(_pick(draw, providers).id for _ in range(draw(_COUNT[-3]))))
        for i in range(draw(_COUNT[4]))
    ]
    service_accounts = [ServiceAccount(id=f"sa-{i}", name=f"robot{i}", namespace=_pick(draw, namespaces))
                        for i in range(draw(_COUNT[3]))]
    roles, global_roles = list(NamespaceRole), list(GlobalRole)
    users = [
        UserPrincipal(
            id=f"iss#u{i}",
            issuer="iss",
            global_roles=frozenset(_pick(draw, global_roles) for _ in range(draw(_COUNT[-3]) // 2)),
            memberships=tuple(Membership(namespace_id=_pick(draw, member_ids), role=_pick(draw, roles))
                              for _ in range(draw(_COUNT[-4]))),
        )
        for i in range(draw(_COUNT[4]))
    ]
    sa_principals = [
        ServiceAccountPrincipal(id=sa.id, name=sa.name, namespace_id=sa.namespace.id, namespace_name=sa.namespace.name)
        for sa in service_accounts
    ]
    supervisors = [SupervisorPrincipal(sandbox=sb) for sb in sandboxes]
    principals = (*users, *sa_principals, *supervisors, LocalPrincipal())
    return World(tuple(namespaces), tuple(providers), tuple(sandboxes), tuple(service_accounts), principals)


_MEMBER_ROLES = ("", *NamespaceRole)


@st.composite
def requests_in(draw: st.DrawFn, world: World) -> Request:
    action = _pick(draw, ACTIONS)
    kind = _pick(draw, _target_kinds(action))
    resource: Resource = {
        "namespace": lambda: _pick(draw, world.namespaces),
        "gateway": Gateway,
        "service_account": lambda: _pick(draw, world.service_accounts),
        "provider": lambda: _pick(draw, world.providers),
        "sandbox": lambda: _pick(draw, world.sandboxes),
    }[kind]()
    context: Context | None = None
    if action in LIST_ACTIONS:
        context = ListContext(all_namespaces=draw(_BOOL))
    elif action in ("AddMember", "RemoveMember"):
        context = MemberContext(
            role=_pick(draw, _MEMBER_ROLES[1:]),
            previous_role=_pick(draw, _MEMBER_ROLES),
            member_kind="service_account" if draw(_INDEX[3]) == 0 else "user",
        )
    elif action == "UpdateNamespace":
        context = UpdateNamespaceContext(changes_ceiling=draw(_BOOL), changes_labels=draw(_BOOL), limits=_quota(draw))
    elif action in ("AttachProvider", "DetachProvider"):
        context = AttachContext(provider=_pick(draw, world.providers))
    return Request(_pick(draw, world.principals), action, resource, context)


@st.composite
def world_and_requests(draw: st.DrawFn) -> tuple[World, list[Request]]:
    world = draw(worlds())
    return world, draw(st.lists(requests_in(world), min_size=1, max_size=5))


def _describe(request: Request) -> str:
    return f"{request.principal!r}\n  {request.action} {request.resource!r}\n  context={request.context!r}"


@PROPERTY
@given(world_and_requests())
def test_cedar_and_polar_agree(case: tuple[World, list[Request]]) -> None:
    _, requests = case
    for request, response in zip(requests, AUTHZ.check_batch(requests), strict=True):
        assert not response.errors, f"{response.errors}\n{_describe(request)}"
        assert response.allowed == TWIN.allowed(request), (
            f"Cedar {response.decision.value} ({', '.join(response.reasons)}) vs Polar\n{_describe(request)}"
        )


def _isolated(request: Request) -> bool:
    """Whether an allow of ``request`` stays inside what the principal holds (SPEC §4 "own")."""
    p, r = request.principal, request.resource
    if isinstance(p, UserPrincipal | LocalPrincipal) and p.global_roles:
        return True  # global roles reach everywhere by design
    if isinstance(r, Gateway):
        return request.action in SELF_SERVICE and not isinstance(p, SupervisorPrincipal)
    ns_id = r.id if isinstance(r, Namespace) else r.namespace.id
    match p:
        case UserPrincipal():
            return ns_id in member_namespace_ids(p)
        case ServiceAccountPrincipal():
            return ns_id == p.namespace_id
        case SupervisorPrincipal():
            own = p.sandbox
            if isinstance(r, Provider):
                return r.id in own.provider_ids and r.namespace.id == own.namespace.id
            return isinstance(r, Sandbox) and r.id == own.id
    return False


@PROPERTY
@given(world_and_requests())
def test_isolation_invariant(case: tuple[World, list[Request]]) -> None:
    _, requests = case
    for request, response in zip(requests, AUTHZ.check_batch(requests), strict=True):
        if response.allowed:
            assert _isolated(request), f"allowed outside its namespace ({response.reasons})\n{_describe(request)}"


@st.composite
def world_and_principal(draw: st.DrawFn) -> tuple[World, Principal]:
    world = draw(worlds())
    return world, _pick(draw, world.principals)


@PROPERTY
@given(world_and_principal(), st.sampled_from(SCOPED_ACTIONS))
def test_scope_agrees_with_point_decisions(case: tuple[World, Principal], action: str) -> None:
    world, principal = case
    mine = member_namespace_ids(principal)
    scope = AUTHZ.scope(principal, action, [ns for ns in world.namespaces if ns.id in mine])
    context = ListContext() if action in LIST_ACTIONS else None
    points = AUTHZ.check_batch([Request(principal, action, ns, context) for ns in world.namespaces])
    for ns, point in zip(world.namespaces, points, strict=True):
        assert scope.admits(ns.id) == point.allowed, f"scope {scope} vs {point}: {principal!r} {action} {ns!r}"


def test_a_planted_difference_is_found(tmp_path: Path) -> None:
    """The agreement property can fail: a twin missing one permit disagrees on the matrix requests."""
    from openshell_authz._matrix import ROLES, SCOPES, _request, matrix_actions

    text = POLAR_FILE.read_text()
    rule = 'permitted(actor: User, action, _r, _c) if global_role(actor, "auditor") and read_action(action);'
    assert rule in text
    mutant = tmp_path / "mutant.polar"
    mutant.write_text(text.replace(rule, ""))
    twin = PolarTwin(mutant)
    requests = [_request(r, a, s) for a in matrix_actions(AUTHZ) for r in ROLES for s in SCOPES]
    differ = [r for r in requests if AUTHZ.check(r).allowed != twin.allowed(r)]
    assert differ and {r.principal.global_roles for r in differ} == {frozenset({GlobalRole.AUDITOR})}


@pytest.mark.parametrize("principal", [LocalPrincipal()])
def test_local_principal_is_platform_admin_in_both(principal: LocalPrincipal) -> None:
    ns = Namespace(id="ns-x", name="x")
    for action in ("DeleteNamespace", "CreateSandbox", "GetSandboxProviderEnvironment"):
        target: Resource = ns if action != "GetSandboxProviderEnvironment" else Sandbox(id="s", name="s", namespace=ns)
        request = Request(principal, action, target)
        assert AUTHZ.check(request).allowed == TWIN.allowed(request) == (action != "GetSandboxProviderEnvironment")
