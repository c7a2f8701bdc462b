"""The kubernetes driver against a real cluster; runs only when KUBECONFIG is set.

Needs RBAC from deploy/kubernetes/ for the kubeconfig's user and a pullable
``busybox:1.36`` image. Operator mode additionally needs OPENSHELL_K8S_LIVE_NAMESPACE
naming an existing namespace the user may create pods and secrets in.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from openshell_server.drivers import (
    DriverEvent,
    ExecChunk,
    ExecResult,
    KubernetesDriver,
    NamespaceMissing,
    SandboxPhase,
    SandboxSpec,
)

pytestmark = [
    pytest.mark.k8s_live,
    pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="KUBECONFIG is not set: no cluster to test against"),
]


def _wait_ready(driver: KubernetesDriver, sandbox_id: str, limit_s: float = 180) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        got = driver.get(sandbox_id)
        if got is not None and got.phase is SandboxPhase.READY:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"sandbox {sandbox_id} not Ready after {limit_s}s: {got}")
        time.sleep(1)


def _roundtrip(driver: KubernetesDriver, spec: SandboxSpec) -> None:
    events: list[DriverEvent] = []
    stop = threading.Event()
    watch: Iterator[DriverEvent] = driver.watch(stop)
    collector = threading.Thread(target=lambda: events.extend(watch), daemon=True)
    collector.start()
    try:
        driver.create(spec)
        _wait_ready(driver, spec.id)
        out = b""
        result = None
        script = "echo hi > /workspace/f && cat /workspace/f && echo $PROVIDER_TOKEN"
        for item in driver.exec(spec, ["sh", "-c", script], env={}, timeout_s=60):
            if isinstance(item, ExecChunk) and item.stream == "stdout":
                out += item.data
            elif isinstance(item, ExecResult):
                result = item
        assert (out, result) == (b"hi\ntok-live\n", ExecResult(0, False))
        assert any(e.sandbox_id == spec.id and e.namespace == spec.namespace for e in events)
    finally:
        driver.delete(spec)
        stop.set()


def test_managed_mode_roundtrip() -> None:
    driver = KubernetesDriver.from_environment(gateway_id=f"t{uuid.uuid4().hex[:6]}", mode="managed")
    driver.check_ready()
    spec = SandboxSpec(
        id=uuid.uuid4().hex[:12],
        name="live",
        namespace="default",
        namespace_id="default",
        env={"PROVIDER_TOKEN": "tok-live"},
    )
    try:
        _roundtrip(driver, spec)
    finally:
        driver.delete_namespace("default")


def test_operator_mode_missing_namespace() -> None:
    driver = KubernetesDriver.from_environment(gateway_id="live", mode="operator")
    spec = SandboxSpec(id="x1", name="x", namespace=f"absent-{uuid.uuid4().hex[:8]}", namespace_id="n")
    with pytest.raises(NamespaceMissing, match="not found"):
        driver.create(spec)


def test_operator_mode_roundtrip() -> None:
    namespace = os.environ.get("OPENSHELL_K8S_LIVE_NAMESPACE")
    if not namespace:
        pytest.skip("OPENSHELL_K8S_LIVE_NAMESPACE is not set: no pre-existing namespace to use")
    driver = KubernetesDriver.from_environment(gateway_id=f"t{uuid.uuid4().hex[:6]}", mode="operator")
    spec = SandboxSpec(
        id=uuid.uuid4().hex[:12],
        name="live",
        namespace=namespace,
        namespace_id=namespace,
        env={"PROVIDER_TOKEN": "tok-live"},
    )
    _roundtrip(driver, spec)
