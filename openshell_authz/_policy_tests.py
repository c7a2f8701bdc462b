"""Policy test cases: a YAML world of facts, cases against it, and the runner.

A policy directory carries its own tests in ``DIR/tests/*.yaml``. ``world.yaml``
(optional) declares the shared world; every other file may extend it with its own
``world:`` and declares ``cases:`` (one request each) and ``grids:`` (one action
list asked of many principals, on an ``own`` and an ``other`` resource). Names in
a world become references: ``user:<key>``, ``service_account:<key>``,
``supervisor:<sandbox key>`` for principals; ``gateway``, ``namespace:<key>``,
``sandbox:<key>``, ``provider:<key>``, ``service_account:<key>`` for resources.

The gateway calls :func:`run_policy_tests` before swapping in a reloaded policy
set, so a set whose own tests fail is never served.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from openshell_authz.authorizer import LIST_ACTIONS, Authorizer, Request, Response
from openshell_authz.context import AttachContext, Context, ListContext, MemberContext, UpdateNamespaceContext
from openshell_authz.errors import AuthzError, PolicyTestFailure
from openshell_authz.models import (
    DEFAULT_NAMESPACE,
    Gateway,
    GlobalRole,
    Membership,
    Namespace,
    NamespacePhase,
    NamespaceRole,
    Principal,
    Provider,
    Quota,
    Resource,
    Sandbox,
    ServiceAccount,
    ServiceAccountPrincipal,
    SupervisorPrincipal,
    UserPrincipal,
)

__all__ = [
    "CaseFailure",
    "CaseFileError",
    "TestReport",
    "World",
    "build_context",
    "load_world",
    "run_policy_tests",
]

WORLD_FILE = "world.yaml"
_M = TypeVar("_M", bound=BaseModel)
MEMBER_ACTIONS = frozenset({"AddMember", "RemoveMember"})
ATTACH_ACTIONS = frozenset({"AttachProvider", "DetachProvider"})


class CaseFileError(AuthzError):
    """A test file (or a reference in it) is malformed; the message is one line."""


# --------------------------------------------------------------------------- the YAML shapes


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _NamespaceSpec(_Spec):
    id: str = ""
    phase: NamespacePhase = NamespacePhase.ACTIVE
    ceiling: Quota = Quota()
    quota: Quota = Quota()


class _UserSpec(_Spec):
    id: str = ""
    issuer: str = "https://issuer.test"
    global_roles: list[GlobalRole] = Field(default_factory=list, alias="global")
    admin_of: list[str] = Field(default_factory=list)
    user_of: list[str] = Field(default_factory=list)
    auditor_of: list[str] = Field(default_factory=list)


class _InNamespace(_Spec):
    namespace: str = DEFAULT_NAMESPACE


class _SandboxSpec(_InNamespace):
    providers: list[str] = Field(default_factory=list)


class _WorldSpec(_Spec):
    namespaces: dict[str, _NamespaceSpec] = Field(default_factory=dict)
    users: dict[str, _UserSpec] = Field(default_factory=dict)
    service_accounts: dict[str, _InNamespace] = Field(default_factory=dict)
    providers: dict[str, _InNamespace] = Field(default_factory=dict)
    sandboxes: dict[str, _SandboxSpec] = Field(default_factory=dict)


Verdict = Literal["allow", "deny"]


class _CaseSpec(_Spec):
    name: str
    principal: str
    action: str
    resource: str
    context: dict[str, Any] | None = None
    raw_context: dict[str, Any] | None = None  # handed to Cedar as-is (fail-closed cases)
    expect: Verdict
    reason: str | list[str] | None = None  # policy @id(s) that must be among the reasons
    errors: bool | None = None  # True: the decision must report evaluation errors


class _GridSpec(_Spec):
    name: str = ""
    actions: list[str]
    own: str
    other: str
    context: dict[str, Any] | None = None
    other_context: dict[str, Any] | None = None  # default: same as context
    expect: dict[str, Verdict | tuple[Verdict, Verdict]]  # principal -> both, or (own, other)


class _FileSpec(_Spec):
    world: _WorldSpec = _WorldSpec()
    cases: list[_CaseSpec] = Field(default_factory=list)
    grids: list[_GridSpec] = Field(default_factory=list)


# --------------------------------------------------------------------------- the world


@dataclass
class World:
    """Domain objects declared by a test world, addressable by reference strings."""

    namespaces: dict[str, Namespace] = field(default_factory=dict)
    users: dict[str, UserPrincipal] = field(default_factory=dict)
    service_accounts: dict[str, ServiceAccount] = field(default_factory=dict)
    providers: dict[str, Provider] = field(default_factory=dict)
    sandboxes: dict[str, Sandbox] = field(default_factory=dict)

    def principal(self, ref: str) -> Principal:
        kind, _, key = ref.partition(":")
        if kind == "user" and key in self.users:
            return self.users[key]
        if kind == "service_account" and key in self.service_accounts:
            sa = self.service_accounts[key]
            return ServiceAccountPrincipal(
                id=sa.id, name=sa.name, namespace_id=sa.namespace.id, namespace_name=sa.namespace.name
            )
        if kind == "supervisor" and key in self.sandboxes:
            return SupervisorPrincipal(sandbox=self.sandboxes[key])
        raise CaseFileError(f"unknown principal {ref!r} (use user:<key>, service_account:<key>, supervisor:<sandbox>)")

    def providers_ref(self, key: str) -> Provider:
        if key not in self.providers:
            raise CaseFileError(f"unknown provider {key!r}")
        return self.providers[key]

    def resource(self, ref: str) -> Resource:
        if ref == "gateway":
            return Gateway()
        kind, _, key = ref.partition(":")
        table: Mapping[str, Mapping[str, Any]] = {
            "namespace": self.namespaces,
            "sandbox": self.sandboxes,
            "provider": self.providers,
            "service_account": self.service_accounts,
        }
        if kind in table and key in table[kind]:
            return table[kind][key]
        raise CaseFileError(
            f"unknown resource {ref!r} (use gateway, namespace:, sandbox:, provider: or service_account:<key>)"
        )


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for section, entries in extra.items():
        out[section] = {**out.get(section, {}), **(entries or {})}
    return out


def load_world(spec: Mapping[str, Any]) -> World:
    """Build a :class:`World` from its YAML mapping; raises :class:`CaseFileError`."""
    ws = _validate(_WorldSpec, spec, "world")
    world = World()
    for key, ns in {DEFAULT_NAMESPACE: _NamespaceSpec(), **ws.namespaces}.items():
        world.namespaces[key] = Namespace(
            id=ns.id or f"ns-{key}", name=key, phase=ns.phase, ceiling=ns.ceiling, quota=ns.quota
        )

    def ns(key: str, where: str) -> Namespace:
        if key not in world.namespaces:
            raise CaseFileError(f"{where}: unknown namespace {key!r}")
        return world.namespaces[key]

    def ns_id(key: str, where: str) -> str:
        # "id:<raw>" names a namespace id no declared namespace has (e.g. a deleted one).
        return key[3:] if key.startswith("id:") else ns(key, where).id

    for key, p in ws.providers.items():
        world.providers[key] = Provider(id=f"prov-{key}", name=key, namespace=ns(p.namespace, f"provider {key}"))
    for key, s in ws.service_accounts.items():
        world.service_accounts[key] = ServiceAccount(
            id=f"sa-{key}", name=key, namespace=ns(s.namespace, f"service account {key}")
        )
    for key, sb in ws.sandboxes.items():
        missing = [p for p in sb.providers if p not in world.providers]
        if missing:
            raise CaseFileError(f"sandbox {key}: unknown provider {missing[0]!r}")
        world.sandboxes[key] = Sandbox(
            id=f"sb-{key}",
            name=key,
            namespace=ns(sb.namespace, f"sandbox {key}"),
            provider_ids=frozenset(world.providers[p].id for p in sb.providers),
        )
    for key, u in ws.users.items():
        memberships = [
            Membership(namespace_id=ns_id(n, f"user {key}"), role=role)
            for role, names in (
                (NamespaceRole.NAMESPACE_ADMIN, u.admin_of),
                (NamespaceRole.USER, u.user_of),
                (NamespaceRole.AUDITOR, u.auditor_of),
            )
            for n in names
        ]
        world.users[key] = UserPrincipal(
            id=u.id or f"{u.issuer}#{key}",
            issuer=u.issuer,
            subject=key,
            global_roles=frozenset(u.global_roles),
            memberships=tuple(memberships),
        )
    return world


def build_context(world: World, action: str, data: Mapping[str, Any] | None) -> Context | None:
    """The typed context ``action`` declares, from the compact YAML/CLI form."""
    data = dict(data or {})
    try:
        if action in LIST_ACTIONS:
            return ListContext(**data)
        if action in MEMBER_ACTIONS:
            return MemberContext(**{"role": "user", **data})
        if action == "UpdateNamespace":
            return UpdateNamespaceContext(**data)
        if action in ATTACH_ACTIONS:
            if set(data) != {"provider"}:
                raise CaseFileError(f"{action} needs context {{provider: <provider key>}}")
            return AttachContext(provider=world.providers_ref(str(data["provider"])))
    except ValidationError as exc:
        raise CaseFileError(f"bad context for {action}: {_first_error(exc)}") from exc
    if data:
        raise CaseFileError(f"{action} takes no context (use raw_context to hand Cedar a record anyway)")
    return None


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class CaseFailure:
    file: str
    name: str
    expected: str
    got: str
    reasons: tuple[str, ...]
    errors: tuple[str, ...]
    problem: str  # what exactly did not match

    def describe(self) -> str:
        why = ", ".join(self.reasons) or "no policy applied"
        errs = f"; errors: {' | '.join(self.errors)}" if self.errors else ""
        return f"FAIL {self.file}: {self.name}: expected {self.expected}, got {self.got} ({why}){errs}: {self.problem}"


@dataclass(frozen=True)
class TestReport:
    """Outcome of a policy directory's own tests. ``ok`` is False on any failure or bad file."""

    __test__ = False  # not a pytest class

    passed: int
    failures: tuple[CaseFailure, ...] = ()
    file_errors: tuple[str, ...] = ()  # "file: message" for files that could not be run

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def total(self) -> int:
        return self.passed + self.failed

    @property
    def ok(self) -> bool:
        return not self.failures and not self.file_errors

    def raise_if_failed(self) -> None:
        """Raise :class:`PolicyTestFailure` (one line, naming the first problem) unless ``ok``."""
        if self.ok:
            return
        first = self.file_errors[0] if self.file_errors else self.failures[0].describe()
        raise PolicyTestFailure(
            f"{self.failed} policy test(s) failed, {len(self.file_errors)} bad test file(s); first: {first}"
        )


@dataclass(frozen=True)
class _Case:
    name: str
    request: Request
    expect: str
    reasons: tuple[str, ...]
    errors: bool | None


def run_policy_tests(directory: Path | str, authorizer: Authorizer | None = None) -> TestReport:
    """Run ``directory/tests/*.yaml`` against ``authorizer`` (default: loaded from ``directory``).

    Raises :class:`~openshell_authz.errors.PolicyLoadError` only when no authorizer is
    given and the directory does not load; malformed test files are reported in
    ``TestReport.file_errors`` (and make ``ok`` False).
    """
    root = Path(directory)
    authz = authorizer if authorizer is not None else Authorizer.from_directory(root)
    tests_dir = root / "tests"
    base: dict[str, Any] = {}
    file_errors: list[str] = []
    world_path = tests_dir / WORLD_FILE
    if world_path.is_file():
        try:
            base = _read_yaml(world_path).get("world") or {}
        except CaseFileError as exc:
            file_errors.append(f"{world_path}: {exc}")
    passed = 0
    failures: list[CaseFailure] = []
    for path in sorted(tests_dir.glob("*.yaml")) if tests_dir.is_dir() else []:
        if path.name == WORLD_FILE:
            continue
        try:
            cases = _load_cases(path, base)
        except CaseFileError as exc:
            file_errors.append(f"{path}: {exc}")
            continue
        responses = authz.check_batch([c.request for c in cases])
        for case, response in zip(cases, responses, strict=True):
            problem = _mismatch(case, response)
            if not problem:
                passed += 1
                continue
            failures.append(
                CaseFailure(
                    str(path), case.name, case.expect, response.decision.value,
                    response.reasons, response.errors, problem,
                )
            )
    return TestReport(passed, tuple(failures), tuple(file_errors))


def _mismatch(case: _Case, response: Response) -> str:
    if response.decision.value != case.expect:
        return "decision differs"
    missing = [r for r in case.reasons if r not in response.reasons]
    if missing:
        return f"expected reason {', '.join(missing)} not among the determining policies"
    if case.errors is True and not response.errors:
        return "expected evaluation errors, got none"
    if case.errors is False and response.errors:
        return "expected no evaluation errors"
    return ""


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseFileError(f"cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise CaseFileError(f"{where}not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CaseFileError("top level must be a mapping with world/cases/grids")
    return data


def _load_cases(path: Path, base_world: Mapping[str, Any]) -> list[_Case]:
    raw = _read_yaml(path)
    spec = _validate(_FileSpec, raw, "file")
    world = load_world(_merge(dict(base_world), raw.get("world") or {}))
    cases: list[_Case] = []
    for c in spec.cases:
        cases.append(_make_case(world, c.name, c.principal, c.action, c.resource, c.context, c.raw_context,
                                c.expect, c.reason, c.errors))
    for g in spec.grids:
        for action in g.actions:
            for principal, verdicts in g.expect.items():
                pair = (verdicts, verdicts) if isinstance(verdicts, str) else verdicts
                other_context = g.context if g.other_context is None else g.other_context
                for scope, target, ctx, verdict in (
                    ("own", g.own, g.context, pair[0]),
                    ("other", g.other, other_context, pair[1]),
                ):
                    label = f"{g.name + ': ' if g.name else ''}{principal} {action} {scope} ({target})"
                    cases.append(_make_case(world, label, principal, action, target, ctx, None, verdict, None, None))
    if not cases:
        raise CaseFileError("no cases or grids")
    return cases


def _make_case(
    world: World,
    name: str,
    principal: str,
    action: str,
    resource: str,
    context: Mapping[str, Any] | None,
    raw_context: Mapping[str, Any] | None,
    expect: str,
    reason: str | Sequence[str] | None,
    errors: bool | None,
) -> _Case:
    try:
        ctx: Context | Mapping[str, Any] | None
        ctx = dict(raw_context) if raw_context is not None else build_context(world, action, context)
        request = Request(world.principal(principal), action, world.resource(resource), ctx)
    except CaseFileError as exc:
        raise CaseFileError(f"case {name!r}: {exc}") from exc
    reasons = (reason,) if isinstance(reason, str) else tuple(reason or ())
    return _Case(name, request, expect, reasons, errors)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']}" if loc else str(err["msg"])


def _validate(model: type[_M], data: Any, what: str) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise CaseFileError(f"bad {what}: {_first_error(exc)}") from exc
