"""The shipped RBAC grants what each namespace mode's driver calls need, and no more on namespaces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def _grants(docs: list[dict[str, Any]], role: str) -> set[tuple[str, str]]:
    (found,) = [d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == role]
    return {(res, verb) for rule in found["rules"] for res in rule["resources"] for verb in rule["verbs"]}


# What the driver calls (verified against the fake API's recorded requests in test_driver_kubernetes).
_SANDBOX_CALLS = {
    ("pods", "create"),
    ("pods", "deletecollection"),
    ("pods/exec", "create"),
    ("pods/exec", "get"),
    ("pods/log", "get"),
    ("secrets", "create"),
    ("secrets", "deletecollection"),
}
_WATCH_CALLS = {("pods", "list"), ("pods", "watch")}


def test_managed_role_covers_every_call_including_namespaces() -> None:
    grants = _grants(_docs("rbac-managed.yaml"), "openshell-gateway-managed")
    assert _SANDBOX_CALLS | _WATCH_CALLS | {("namespaces", "create"), ("namespaces", "delete")} <= grants


def test_operator_roles_never_touch_namespaces() -> None:
    docs = _docs("rbac-operator.yaml")
    watch, sandboxes = _grants(docs, "openshell-gateway-watch"), _grants(docs, "openshell-gateway-sandboxes")
    assert watch >= _WATCH_CALLS and sandboxes >= _SANDBOX_CALLS
    assert not any(res == "namespaces" for res, _ in watch | sandboxes)
    kinds = {(d["kind"], d["roleRef"]["name"]) for d in docs if "roleRef" in d}
    assert kinds == {("ClusterRoleBinding", "openshell-gateway-watch"), ("RoleBinding", "openshell-gateway-sandboxes")}


@pytest.mark.parametrize("name", ["rbac-managed.yaml", "rbac-operator.yaml"])
def test_bindings_name_the_gateway_service_account(name: str) -> None:
    for doc in _docs(name):
        if "subjects" in doc:
            assert doc["subjects"] == [
                {"kind": "ServiceAccount", "name": "openshell-gateway", "namespace": "openshell"}
            ]
