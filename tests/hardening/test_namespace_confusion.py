"""Namespace confusion: no cross-namespace read, write or existence leak, for every RPC naming an object.

The RPCs are found by walking the API's (openshell.v1.authz) annotations, so a new RPC
is swept without editing this file. For each one a caller of ``alpha`` names an object
of ``beta`` three ways — it exists, the object is missing, the namespace is missing —
and must get the same code and the same message (names aside) every time. Names with
path or SQL metacharacters, mixed case and unicode look-alikes are refused as invalid
without reaching the store, and the answer is the same whether the namespace exists.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from openshell_server.api import authz_pb2, method_authz, methods
from tests.gateway.conftest import backend_database
from tests.gateway.harness import api, call_status, start_gateway
from tests.hardening._world import World, build_world, snapshot

NF, PD, INV = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT

# (rpc, request class, annotation) for every RPC whose target is an existing namespace or object.
NAMED = [
    (m.name, getattr(api, m.input_type.name), method_authz(m))
    for m in methods().values()
    if method_authz(m).target != authz_pb2.TARGET_GATEWAY
]
BY_ID = [(rpc, cls, ann) for rpc, cls, ann in NAMED if ann.id_field]
BY_NAME = [(rpc, cls, ann) for rpc, cls, ann in NAMED if not ann.id_field]
EXISTING = {
    authz_pb2.TARGET_SANDBOX: "box",
    authz_pb2.TARGET_PROVIDER: "creds",
    authz_pb2.TARGET_SERVICE_ACCOUNT: "robot",
}
# What each RPC needs besides namespace and name to get as far as authorization.
EXTRA: dict[str, dict[str, Any]] = {
    "CreateServiceAccount": {"name": "new-sa"},
    "CreateSandbox": {"name": "new-box"},
    "CreateProvider": {"name": "new-prov"},
    "AddMember": {"principal": "https://idp.example#intruder", "role": "user"},
    "ExecSandbox": {"argv": ["true"]},
    "AttachProvider": {"provider": "spare"},
    "DetachProvider": {"provider": "creds"},
    "UpdateProvider": {"credentials": {"STOLEN": "x"}},
}
CALLERS = ("alpha-user", "alpha-admin", "alpha-sa")

BAD_OBJECT_NAMES = [
    "Box", "BOX", "b\u043ex", "\uff42\uff4f\uff58", "bo\u200dx", "box\u200b", "../beta/box", "box/../box", "box/",
    "box' OR '1'='1", "box%", "b_x", "*", "box;--", "box\x00", " box", "box ", "%62ox", "box\n",
]  # fmt: skip
BAD_NAMESPACES = [
    "Beta", "BETA", "bet\u0430", "\uff42\uff45\uff54\uff41", "be\u200dta", "beta/../alpha", "../beta",
    "alpha' OR 1=1--", "%", "*", "beta\x00", "beta;",
]  # fmt: skip


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with (
        backend_database(request.param) as url,
        start_gateway(tmp_path_factory.mktemp("confusion") / "data", database_url=url) as gw,
    ):
        yield build_world(gw)


def _request(rpc: str, cls: Any, ann: authz_pb2.Authz, ns: str, name: str) -> Any:
    fields: dict[str, Any] = dict(EXTRA.get(rpc, {}))
    fields[ann.namespace_field] = ns
    if ann.name_field:
        fields[ann.name_field] = name
    if rpc == "RemoveMember":
        fields["principal"] = name
    return cls(**fields)


def _shape(details: str, *words: str) -> str:
    """The message with the probed names replaced, so only its shape is compared."""
    for word in sorted(words, key=len, reverse=True):
        details = re.sub(rf"\b{re.escape(word)}\b", "<X>", details)
    return details


def _probe(world: World, caller: Any, rpc: str, request: Any) -> tuple[grpc.StatusCode, str]:
    code, details, _ = call_status(getattr(caller, rpc), request)
    return code, details


@pytest.mark.parametrize("who", CALLERS)
def test_other_namespace_objects_are_indistinguishable_from_missing(world: World, who: str) -> None:
    caller = world.caller(who)
    before = snapshot(world.admin)
    member = world.gw.principal_id("beta-user")
    checked = 0
    for rpc, cls, ann in BY_NAME:
        existing = member if rpc == "RemoveMember" else EXISTING.get(ann.target, "")
        ghost = "https://idp.example#ghost" if rpc == "RemoveMember" else "ghost"
        probes = {
            "exists": _request(rpc, cls, ann, "beta", existing),
            "missing object": _request(rpc, cls, ann, "beta", ghost),
            "missing namespace": _request(rpc, cls, ann, "gamma", existing),
        }
        answers = {k: _probe(world, caller, rpc, r) for k, r in probes.items()}
        for label, (code, details) in answers.items():
            assert code == NF, f"{who} {rpc} ({label}): {code.name} {details}"
            assert "\n" not in details and "beta-user" not in details
        shapes = {k: _shape(d, "beta", "gamma", existing, ghost) for k, (_, d) in answers.items()}
        assert len(set(shapes.values())) == 1, f"{who} {rpc} leaks existence: {shapes}"
        checked += 1
    assert checked == len(BY_NAME) >= 20
    assert snapshot(world.admin) == before


@pytest.mark.parametrize("who", CALLERS)
def test_attaching_another_namespaces_provider_reveals_nothing(world: World, who: str) -> None:
    caller = world.caller(who)
    before = snapshot(world.admin)
    answers = {}
    probes = (("exists", "beta", "creds"), ("missing", "beta", "ghost"), ("no ns", "gamma", "creds"))
    for label, prov_ns, prov in probes:
        request = api.AttachProviderRequest(namespace="alpha", sandbox="box", provider=prov, provider_namespace=prov_ns)
        code, details = _probe(world, caller, "AttachProvider", request)
        assert code in (NF, PD), f"{who} {label}: {code.name} {details}"
        answers[label] = (code, _shape(details, "beta", "gamma", "creds", "ghost"))
    assert len(set(answers.values())) == 1, f"{who}: {answers}"
    assert snapshot(world.admin) == before


@pytest.mark.parametrize("who", ("alpha-supervisor", "alpha-user", "beta-admin"))
def test_sandbox_ids_of_other_namespaces_are_indistinguishable_from_unknown_ids(world: World, who: str) -> None:
    caller = world.caller(who)
    before = snapshot(world.admin)
    other = world.sandbox_ids["beta"] if who != "beta-admin" else world.sandbox_ids["alpha"]
    for rpc, cls, ann in BY_ID:
        shapes = set()
        for probe in (other, str(uuid.uuid4()), "not-a-uuid", other.upper(), f"{other}' OR '1'='1"):
            code, details = _probe(world, caller, rpc, cls(**{ann.id_field: probe}))
            assert code == NF, f"{who} {rpc}({probe}): {code.name} {details}"
            assert not {'"box"', "beta", "alpha"} & set(re.findall(r'"box"|beta|alpha', details)), details
            shapes.add(_shape(details, probe[:64]))
        assert len(shapes) == 1, f"{who} {rpc}: {shapes}"
    assert snapshot(world.admin) == before


@pytest.mark.parametrize("who", ("root", "alpha-user"))
def test_metacharacter_and_lookalike_names_never_resolve(world: World, who: str) -> None:
    """Refused as invalid before any lookup: same answer in an existing and a missing namespace."""
    caller = world.caller(who)
    before = snapshot(world.admin)
    tried = 0
    for rpc, cls, ann in BY_NAME:
        if not ann.name_field:
            continue
        for bad in BAD_OBJECT_NAMES:
            answers = set()
            for ns in ("alpha", "beta", "gamma"):
                code, details = _probe(world, caller, rpc, _request(rpc, cls, ann, ns, bad))
                assert code == INV, f"{who} {rpc}({ns}/{bad!r}): {code.name} {details}"
                answers.add(details)
                tried += 1
            assert len(answers) == 1, f"{who} {rpc}({bad!r}): {answers}"
    for rpc, cls, ann in BY_NAME:
        for bad in BAD_NAMESPACES:
            code, details = _probe(world, caller, rpc, _request(rpc, cls, ann, bad, EXISTING.get(ann.target, "")))
            assert code == INV, f"{who} {rpc}({bad!r}): {code.name} {details}"
            tried += 1
    assert tried > 500
    assert snapshot(world.admin) == before


def test_check_access_reveals_nothing_about_other_namespaces(world: World) -> None:
    caller = world.caller("alpha-user")
    shapes = set()
    for kind, ns, name in (("sandbox", "beta", "box"), ("sandbox", "beta", "ghost"), ("sandbox", "gamma", "box"),
                           ("provider", "beta", "creds"), ("provider", "gamma", "creds")):  # fmt: skip
        request = api.CheckAccessRequest(action="GetSandbox", kind=kind, namespace=ns, name=name)
        code, details = _probe(world, caller, "CheckAccess", request)
        assert code == NF, (kind, ns, name, code, details)
        shapes.add(_shape(details, kind, ns, name))
    assert len(shapes) == 1, shapes
    # Invalid input is refused on its syntax alone, wherever it points.
    for ns in ("alpha", "beta", "gamma"):
        for kind, name in (("sandbox", "Box"), ("sandbox", "b\u043ex"), ("bogus", "box")):
            request = api.CheckAccessRequest(action="GetSandbox", kind=kind, namespace=ns, name=name)
            code, details = _probe(world, caller, "CheckAccess", request)
            assert code == INV, (kind, ns, name, code, details)


def test_own_namespace_still_works_for_the_same_callers(world: World) -> None:
    """The refusals above are about the other namespace, not a broken caller."""
    for who in CALLERS:
        caller = world.caller(who)
        got = caller.GetSandbox(api.GetSandboxRequest(namespace="alpha", name="box")).sandbox
        assert got.meta.namespace == "alpha" and got.meta.id == world.sandbox_ids["alpha"]
    sup = world.caller("alpha-supervisor")
    cfg = sup.GetSandboxConfig(api.GetSandboxConfigRequest(sandbox_id=world.sandbox_ids["alpha"]))
    assert cfg.name == "box"
