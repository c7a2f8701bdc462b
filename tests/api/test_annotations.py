"""Every RPC of the OpenShell API carries a complete, consistent ``(openshell.v1.authz)`` annotation.

The interceptor authorizes purely from these annotations, so a missing or wrong one is
an authorization hole. Actions are checked against the Cedar schema in ``policies/``.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor, ServiceDescriptor

from openshell_server import api
from openshell_server._gen.openshell import v1 as gen_v1
from openshell_server.api import authz_pb2

SCHEMA = Path(__file__).resolve().parents[2] / "policies" / "schema.cedarschema"
# RPCs authorized as a different action than their own name, and why.
ACTION_ALIASES = {"ListSandboxProviders": "GetSandbox"}  # the attached providers are part of the sandbox
WRITE_PREFIXES = ("Create", "Update", "Delete", "Add", "Remove", "Attach", "Detach", "Issue", "Refresh")
OBJECT_TARGETS = {authz_pb2.TARGET_SANDBOX, authz_pb2.TARGET_PROVIDER, authz_pb2.TARGET_SERVICE_ACCOUNT}


def schema_actions(text: str) -> set[str]:
    """Names of the actions that apply to requests (``appliesTo``); action groups are excluded."""
    text = re.sub(r"//[^\n]*", "", text)
    actions: set[str] = set()
    for decl in re.finditer(
        r"\baction\s+([^;{}]+?)\s*(?:\bin\s*\[[^\]]*\]\s*)?\bappliesTo\b", text, re.DOTALL
    ):
        actions.update(name.strip().strip('"') for name in decl[1].split(","))
    return actions


def all_services() -> list[ServiceDescriptor]:
    """Every service declared in any generated ``*_pb2`` module (not only the ones api.py re-exports)."""
    services: dict[str, ServiceDescriptor] = {}
    for info in pkgutil.iter_modules(gen_v1.__path__):
        if info.name.endswith("_pb2"):
            module = importlib.import_module(f"{gen_v1.__name__}.{info.name}")
            services.update((s.full_name, s) for s in module.DESCRIPTOR.services_by_name.values())
    return list(services.values())


def _string_field(method: MethodDescriptor, field_name: str, role: str) -> list[str]:
    field = method.input_type.fields_by_name.get(field_name)
    if field is None:
        return [f"{role} {field_name!r} is not a field of {method.input_type.name}"]
    if field.type != FieldDescriptor.TYPE_STRING or field.is_repeated:
        return [f"{role} {field_name!r} of {method.input_type.name} is not a singular string"]
    return []


def annotation_problems(method: MethodDescriptor, actions: set[str]) -> list[str]:
    """Everything wrong with ``method``'s authz annotation (empty when it is complete and consistent)."""
    authz = api.method_authz(method)
    if authz is None:
        return ["no (openshell.v1.authz) option"]
    problems: list[str] = []
    if not authz.action:
        problems.append("empty action")
    elif authz.action not in actions:
        problems.append(f"action {authz.action!r} is not declared in the Cedar schema")
    elif authz.action != ACTION_ALIASES.get(method.name, method.name):
        problems.append(f"action {authz.action!r} does not match the RPC name")
    if authz.target not in authz_pb2.Target.values() or authz.target == authz_pb2.TARGET_UNSPECIFIED:
        problems.append("target is TARGET_UNSPECIFIED")
    for role in ("namespace_field", "name_field", "id_field"):
        if value := getattr(authz, role):
            problems += _string_field(method, value, role)
    if authz.target == authz_pb2.TARGET_GATEWAY and (
        authz.name_field or authz.id_field or authz.namespace_field
    ):
        problems.append("a gateway target names no namespace or object")
    if authz.target == authz_pb2.TARGET_NAMESPACE and (not authz.namespace_field or authz.name_field):
        problems.append("a namespace target needs namespace_field and no name_field")
    if authz.target in OBJECT_TARGETS and bool(authz.id_field) == bool(
        authz.namespace_field and authz.name_field
    ):
        problems.append("an object target is found by id_field, or by namespace_field + name_field, not both")
    request_fields = set(method.input_type.fields_by_name)
    if authz.list:
        missing = {"page_size", "page_token"} - request_fields
        if authz.target != authz_pb2.TARGET_GATEWAY:
            missing |= {"all_namespaces"} - request_fields
        if missing:
            problems.append(f"list RPC request lacks {sorted(missing)}")
    elif "all_namespaces" in request_fields and method.name != "CheckAccess":
        problems.append("request takes all_namespaces but the annotation is not list")
    if method.name.startswith(WRITE_PREFIXES) and not authz.mutating:
        problems.append("a write RPC must be mutating (audited on success)")
    return problems


ACTIONS = schema_actions(SCHEMA.read_text())
METHODS = [m for s in all_services() for m in s.methods]


def test_schema_parser_finds_actions_and_skips_groups() -> None:
    assert {"CreateSandbox", "GetSandboxLogs", "AddMember", "WhoAmI", "ListAuditEvents"} <= ACTIONS
    assert not {"Creates", "NamespaceLists", "SupervisorActions"} & ACTIONS


def test_api_reexports_every_generated_service() -> None:
    assert {s.full_name for s in api.SERVICES} == {s.full_name for s in all_services()}
    assert len(METHODS) == len(api.methods()) > 30


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_rpc_annotation_is_complete(method: MethodDescriptor) -> None:
    assert annotation_problems(method, ACTIONS) == []


def test_every_schema_action_has_an_rpc() -> None:
    annotated = {a.action for m in METHODS if (a := api.method_authz(m)) is not None}
    assert ACTIONS - annotated == set()


def _synthetic_service(**authz: object) -> MethodDescriptor:
    """A one-RPC service in a private pool, annotated with ``authz`` (None = no option at all)."""
    pool = descriptor_pool.DescriptorPool()
    for dep in (descriptor_pb2.DESCRIPTOR, authz_pb2.DESCRIPTOR):
        proto = descriptor_pb2.FileDescriptorProto()
        dep.CopyToProto(proto)
        pool.Add(proto)
    file = descriptor_pb2.FileDescriptorProto(
        name="bad/v1/bad.proto", package="bad.v1", syntax="proto3", dependency=["openshell/v1/authz.proto"]
    )
    request = file.message_type.add(name="GetSandboxRequest")
    request.field.add(name="namespace", number=1, type=FieldDescriptor.TYPE_STRING, json_name="namespace")
    request.field.add(name="name", number=2, type=FieldDescriptor.TYPE_STRING, json_name="name")
    file.message_type.add(name="GetSandboxResponse")
    method = file.service.add(name="Bad").method.add(
        name="GetSandbox", input_type=".bad.v1.GetSandboxRequest", output_type=".bad.v1.GetSandboxResponse"
    )
    if authz:
        method.options.Extensions[authz_pb2.authz].CopyFrom(authz_pb2.Authz(**authz))
    pool.Add(file)
    return pool.FindServiceByName("bad.v1.Bad").methods_by_name["GetSandbox"]


GOOD = {
    "action": "GetSandbox",
    "target": authz_pb2.TARGET_SANDBOX,
    "namespace_field": "namespace",
    "name_field": "name",
}


@pytest.mark.parametrize(
    ("authz", "complaint"),
    [
        ({}, "no (openshell.v1.authz) option"),
        ({**GOOD, "action": ""}, "empty action"),
        ({**GOOD, "action": "ReadSandbox"}, "not declared in the Cedar schema"),
        ({**GOOD, "action": "Creates"}, "not declared in the Cedar schema"),
        ({**GOOD, "action": "DeleteSandbox"}, "does not match the RPC name"),
        ({**GOOD, "target": authz_pb2.TARGET_UNSPECIFIED}, "TARGET_UNSPECIFIED"),
        ({**GOOD, "name_field": "sandbox"}, "'sandbox' is not a field"),
        ({**GOOD, "namespace_field": "ns"}, "'ns' is not a field"),
        ({**GOOD, "id_field": "sandbox_id"}, "'sandbox_id' is not a field"),
        ({**GOOD, "name_field": ""}, "an object target is found by id_field"),
        ({**GOOD, "list": True}, "list RPC request lacks"),
    ],
)
def test_checker_rejects_broken_annotations(authz: dict[str, object], complaint: str) -> None:
    problems = annotation_problems(_synthetic_service(**authz), ACTIONS)
    assert any(complaint in p for p in problems), problems


def test_checker_accepts_a_good_annotation() -> None:
    assert annotation_problems(_synthetic_service(**GOOD), ACTIONS) == []
