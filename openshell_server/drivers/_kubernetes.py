"""The Kubernetes compute driver, on the official ``kubernetes`` client.

A sandbox is a Pod plus two Secrets in the Kubernetes namespace its OpenShell
namespace maps to:

* managed mode: ``openshell-<gateway-id>-<namespace>``, created on first use
  (409 counts as success) and deleted by ``delete_namespace``;
* operator mode: the Kubernetes namespace of the same name, which must already
  exist; the driver never creates or deletes namespaces and surfaces the API's
  "not found" as NamespaceMissing without a pre-check.

Every object carries the ``openshell.dev/*`` labels below; lookups, deletes and
the single cluster-wide watch go by label selector, and the OpenShell namespace
is read back from the labels (falling back to ``default``).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream as k8s_stream

from openshell_server.drivers._contract import (
    DriverError,
    DriverEvent,
    DriverSandbox,
    DriverUnavailable,
    ExecChunk,
    ExecResult,
    NamespaceMissing,
    SandboxNotFound,
    SandboxPhase,
    SandboxSpec,
    validate_dns_label,
)
from openshell_server.drivers._reconcile import DEFAULT_NAMESPACE

__all__ = [
    "LABEL_GATEWAY_ID",
    "LABEL_MANAGED_BY",
    "LABEL_NAMESPACE",
    "LABEL_SANDBOX_ID",
    "LABEL_SANDBOX_NAME",
    "MANAGED_BY",
    "NAMESPACE_MODES",
    "KubernetesDriver",
    "managed_namespace_name",
]

LABEL_MANAGED_BY = "openshell.dev/managed-by"
LABEL_GATEWAY_ID = "openshell.dev/gateway-id"
LABEL_NAMESPACE = "openshell.dev/namespace"
LABEL_SANDBOX_ID = "openshell.dev/sandbox-id"
LABEL_SANDBOX_NAME = "openshell.dev/sandbox-name"
MANAGED_BY = "openshell-gateway"
NAMESPACE_MODES = ("managed", "operator")
_RESERVED = frozenset({LABEL_MANAGED_BY, LABEL_GATEWAY_ID, LABEL_NAMESPACE, LABEL_SANDBOX_ID, LABEL_SANDBOX_NAME})
_SUPERVISOR_TOKEN_DIR = "/var/run/openshell"
_KEEPALIVE = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 3600 & wait $!; done"]
_FAILED_WAITING = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CrashLoopBackOff", "CreateContainerConfigError"}
)
_TIMEOUT_EXIT = 137


def managed_namespace_name(gateway_id: str, namespace: str) -> str:
    """The Kubernetes namespace managed mode uses; ValueError if it exceeds 63 characters."""
    return validate_dns_label("Kubernetes namespace", f"openshell-{gateway_id}-{namespace}")


def _api_message(exc: ApiException) -> str:
    """The ``message`` of the Status object the API returned, else its HTTP reason."""
    try:
        body = json.loads(exc.body or "")
        return str(body.get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


def _api_error(exc: ApiException, doing: str) -> DriverError:
    if exc.status == 0:
        return DriverUnavailable(f"Kubernetes API unreachable while {doing}: {exc.reason}")
    return DriverError(f"Kubernetes API refused {doing} ({exc.status}): {_api_message(exc)}")


class KubernetesDriver:
    """Sandboxes as Pods; see the module docstring for the namespace modes."""

    name = "kubernetes"

    def __init__(
        self,
        api_client: k8s.ApiClient,
        gateway_id: str,
        mode: Literal["managed", "operator"] | str = "managed",
        *,
        default_image: str = "busybox:1.36",
        watch_timeout_s: int = 60,
    ) -> None:
        if mode not in NAMESPACE_MODES:
            raise ValueError(f"unknown Kubernetes namespace mode {mode!r}: choose one of {', '.join(NAMESPACE_MODES)}")
        validate_dns_label("gateway id", gateway_id)
        self._core = k8s.CoreV1Api(api_client)
        self._api_client = api_client
        self.gateway_id = gateway_id
        self.mode = mode
        self._default_image = default_image
        self._watch_timeout_s = watch_timeout_s
        self._selector = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_GATEWAY_ID}={gateway_id}"

    @classmethod
    def from_environment(cls, gateway_id: str, mode: str = "managed", **options: Any) -> KubernetesDriver:
        """Configure the client from the in-cluster service account, else KUBECONFIG."""
        from kubernetes import config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            try:
                config.load_kube_config()
            except (config.ConfigException, OSError) as exc:
                raise DriverUnavailable(
                    f"no Kubernetes configuration: run in a cluster or set KUBECONFIG ({exc})"
                ) from exc
        return cls(k8s.ApiClient(), gateway_id, mode, **options)

    # -- naming ----------------------------------------------------------------

    def kubernetes_namespace(self, namespace: str) -> str:
        """The Kubernetes namespace backing the OpenShell ``namespace``."""
        validate_dns_label("namespace", namespace)
        if self.mode == "operator":
            return namespace
        return managed_namespace_name(self.gateway_id, namespace)

    @staticmethod
    def _pod_name(spec: SandboxSpec) -> str:
        # The id, not the name: two gateways (or a recreated sandbox) sharing an operator
        # namespace must not collide on object names.
        return validate_dns_label("pod name", f"sbx-{spec.id.lower()}"[:63].rstrip("-"))

    def _labels(self, spec: SandboxSpec) -> dict[str, str]:
        user = {k: v for k, v in spec.labels.items() if k not in _RESERVED}
        return {
            **user,
            LABEL_MANAGED_BY: MANAGED_BY,
            LABEL_GATEWAY_ID: self.gateway_id,
            LABEL_NAMESPACE: spec.namespace,
            LABEL_SANDBOX_ID: spec.id,
            LABEL_SANDBOX_NAME: spec.name,
        }

    def _sandbox_selector(self, sandbox_id: str) -> str:
        return f"{self._selector},{LABEL_SANDBOX_ID}={sandbox_id}"

    # -- readiness -------------------------------------------------------------

    def check_ready(self) -> None:
        """Raise DriverUnavailable unless the API server answers."""
        try:
            k8s.VersionApi(self._api_client).get_code(_request_timeout=10)
        except ApiException as exc:
            raise _api_error(exc, "reading the server version") from exc
        except Exception as exc:  # urllib3 raises its own connection errors
            raise DriverUnavailable(f"Kubernetes API unreachable: {exc}") from exc

    # -- lifecycle -------------------------------------------------------------

    def _ensure_namespace(self, spec: SandboxSpec, k8s_ns: str) -> None:
        body = k8s.V1Namespace(
            metadata=k8s.V1ObjectMeta(
                name=k8s_ns,
                labels={
                    LABEL_MANAGED_BY: MANAGED_BY,
                    LABEL_GATEWAY_ID: self.gateway_id,
                    LABEL_NAMESPACE: spec.namespace,
                },
            )
        )
        try:
            self._core.create_namespace(body)
        except ApiException as exc:
            if exc.status != 409:  # already there: creation is idempotent
                raise _api_error(exc, f"creating namespace {k8s_ns}") from exc

    def _create(self, what: str, k8s_ns: str, create: Any, body: Any) -> None:
        try:
            create(k8s_ns, body)
        except ApiException as exc:
            if exc.status == 409:
                return  # a retried create of the same sandbox
            if exc.status == 404 and self.mode == "operator":
                raise NamespaceMissing(_api_message(exc)) from exc
            raise _api_error(exc, f"creating {what} in {k8s_ns}") from exc

    def create(self, spec: SandboxSpec) -> DriverSandbox:
        """Create (namespace,) Secrets and Pod; the sandbox is Provisioning until the Pod is ready."""
        k8s_ns = self.kubernetes_namespace(spec.namespace)
        validate_dns_label("sandbox name", spec.name)
        pod_name = self._pod_name(spec)
        labels = self._labels(spec)
        if self.mode == "managed":
            self._ensure_namespace(spec, k8s_ns)
        env_secret = f"{pod_name}-env"
        token_secret = f"{pod_name}-supervisor"
        self._create(
            "secret",
            k8s_ns,
            self._core.create_namespaced_secret,
            k8s.V1Secret(
                metadata=k8s.V1ObjectMeta(name=env_secret, labels=labels),
                type="Opaque",
                string_data=dict(spec.env),
            ),
        )
        self._create(
            "secret",
            k8s_ns,
            self._core.create_namespaced_secret,
            k8s.V1Secret(
                metadata=k8s.V1ObjectMeta(name=token_secret, labels=labels),
                type="Opaque",
                string_data={"token": spec.supervisor_token},
            ),
        )
        resources = None
        if spec.gpus:
            resources = k8s.V1ResourceRequirements(limits={"nvidia.com/gpu": str(spec.gpus)})
        container = k8s.V1Container(
            name="sandbox",
            image=spec.image or self._default_image,
            command=_KEEPALIVE,
            working_dir="/workspace",
            # Provider credentials reach the container only by reference, never in the pod spec.
            env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=env_secret))],
            resources=resources,
            volume_mounts=[
                k8s.V1VolumeMount(name="workspace", mount_path="/workspace"),
                k8s.V1VolumeMount(name="supervisor", mount_path=_SUPERVISOR_TOKEN_DIR, read_only=True),
            ],
            security_context=k8s.V1SecurityContext(
                allow_privilege_escalation=False, capabilities=k8s.V1Capabilities(drop=["ALL"])
            ),
        )
        pod = k8s.V1Pod(
            metadata=k8s.V1ObjectMeta(name=pod_name, labels=labels),
            spec=k8s.V1PodSpec(
                containers=[container],
                restart_policy="Always",
                automount_service_account_token=False,
                hostname=spec.name,
                volumes=[
                    k8s.V1Volume(name="workspace", empty_dir=k8s.V1EmptyDirVolumeSource()),
                    k8s.V1Volume(
                        name="supervisor",
                        secret=k8s.V1SecretVolumeSource(secret_name=token_secret, default_mode=0o400),
                    ),
                ],
            ),
        )
        self._create("pod", k8s_ns, self._core.create_namespaced_pod, pod)
        return DriverSandbox(
            id=spec.id,
            name=spec.name,
            namespace=spec.namespace,
            phase=SandboxPhase.PROVISIONING,
            labels={k: v for k, v in labels.items() if k not in _RESERVED},
        )

    def delete(self, spec: SandboxSpec) -> None:
        """Delete the sandbox's Pods and Secrets by label; absent objects are fine."""
        k8s_ns = self.kubernetes_namespace(spec.namespace)
        selector = self._sandbox_selector(spec.id)
        for what, delete in (
            ("pods", self._core.delete_collection_namespaced_pod),
            ("secrets", self._core.delete_collection_namespaced_secret),
        ):
            try:
                delete(k8s_ns, label_selector=selector)
            except ApiException as exc:
                if exc.status != 404:
                    raise _api_error(exc, f"deleting {what} of sandbox {spec.id}") from exc

    def _list_pods(self, selector: str) -> list[Any]:
        try:
            return list(self._core.list_pod_for_all_namespaces(label_selector=selector).items or [])
        except ApiException as exc:
            raise _api_error(exc, "listing sandbox pods") from exc

    def get(self, sandbox_id: str) -> DriverSandbox | None:
        pods = self._list_pods(self._sandbox_selector(sandbox_id))
        return _to_sandbox(pods[0]) if pods else None

    def list(self) -> list[DriverSandbox]:
        seen: dict[str, DriverSandbox] = {}
        for pod in self._list_pods(self._selector):
            sandbox = _to_sandbox(pod)
            seen.setdefault(sandbox.id, sandbox)
        return list(seen.values())

    def delete_namespace(self, namespace: str) -> None:
        """Managed mode: delete the backing Kubernetes namespace (404 is fine). Operator: nothing."""
        if self.mode != "managed":
            return
        k8s_ns = self.kubernetes_namespace(namespace)
        try:
            self._core.delete_namespace(k8s_ns)
        except ApiException as exc:
            if exc.status != 404:
                raise _api_error(exc, f"deleting namespace {k8s_ns}") from exc

    def logs(self, spec: SandboxSpec, tail: int | None = None) -> list[str]:
        k8s_ns = self.kubernetes_namespace(spec.namespace)
        try:
            text = self._core.read_namespaced_pod_log(self._pod_name(spec), k8s_ns, tail_lines=tail)
        except ApiException as exc:
            if exc.status == 404:
                raise SandboxNotFound(f"sandbox {spec.namespace}/{spec.name} does not exist") from exc
            raise _api_error(exc, f"reading logs of sandbox {spec.id}") from exc
        return text.splitlines()

    # -- watch -----------------------------------------------------------------

    def watch(self, stop: threading.Event) -> Iterator[DriverEvent]:
        """One cluster-wide pod watch filtered to this gateway's objects, resumed until ``stop``."""
        resource_version: str | None = None
        while not stop.is_set():
            w = k8s_watch.Watch()
            kwargs: dict[str, Any] = {
                "label_selector": self._selector,
                "timeout_seconds": self._watch_timeout_s,
            }
            if resource_version:
                kwargs["resource_version"] = resource_version
            try:
                for event in w.stream(self._core.list_pod_for_all_namespaces, **kwargs):
                    pod = event["object"]
                    resource_version = pod.metadata.resource_version or resource_version
                    if event["type"] == "BOOKMARK":
                        continue
                    sandbox = _to_sandbox(pod)
                    deleted = event["type"] == "DELETED"
                    yield DriverEvent(
                        sandbox_id=sandbox.id,
                        namespace=sandbox.namespace,
                        phase=SandboxPhase.DELETING if deleted else sandbox.phase,
                        message=sandbox.message,
                        deleted=deleted,
                    )
                    if stop.is_set():
                        break
            except ApiException as exc:
                if exc.status != 410:
                    raise _api_error(exc, "watching sandbox pods") from exc
                resource_version = None  # history expired: start again from now
            finally:
                w.stop()

    # -- exec ------------------------------------------------------------------

    def exec(
        self,
        spec: SandboxSpec,
        argv: list[str],
        *,
        env: Mapping[str, str],
        timeout_s: float,
        stdin: bytes | None = None,
    ) -> Iterator[ExecChunk | ExecResult]:
        """Run ``argv`` through the Kubernetes exec API.

        The provider environment is already in the container (Secret via envFrom).
        ``env`` here is per-call, non-secret environment: it travels in the exec
        request's command line, which API audit logs may record.
        """
        if not argv:
            raise ValueError("exec needs a command")
        if timeout_s <= 0:
            raise ValueError(f"exec timeout must be positive, got {timeout_s}")
        command = [*argv]
        if env:
            command = ["env", *(f"{k}={v}" for k, v in env.items()), *argv]
        k8s_ns = self.kubernetes_namespace(spec.namespace)
        try:
            ws = k8s_stream(
                self._core.connect_get_namespaced_pod_exec,
                self._pod_name(spec),
                k8s_ns,
                command=command,
                container="sandbox",
                stdin=stdin is not None,
                stdout=True,
                stderr=True,
                tty=False,
                _preload_content=False,
                binary=True,
            )
        except ApiException as exc:
            raise _api_error(exc, f"starting exec in sandbox {spec.id}") from exc
        return _pump(ws, stdin, timeout_s)


def _pump(ws: Any, stdin: bytes | None, timeout_s: float) -> Iterator[ExecChunk | ExecResult]:
    try:
        if stdin is not None:
            ws.write_stdin(stdin)
            ws.close_channel(0)  # v5 protocol: end of input
        deadline = time.monotonic() + timeout_s
        while ws.is_open():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                # Closing the stream is all the exec API offers: the remote process is not
                # killed by it (the container runtime reaps it when the pod goes).
                yield ExecResult(exit_code=_TIMEOUT_EXIT, timed_out=True)
                return
            ws.update(timeout=min(remaining, 1.0))
            for stream_name, read in (("stdout", ws.read_stdout), ("stderr", ws.read_stderr)):
                data = read(timeout=0)
                if data:
                    yield ExecChunk(stream_name, data)
        for stream_name, read in (("stdout", ws.read_stdout), ("stderr", ws.read_stderr)):
            data = read(timeout=0)
            if data:
                yield ExecChunk(stream_name, data)
        try:
            code = ws.returncode
        except (TypeError, KeyError, IndexError, ValueError, AttributeError):
            code = None
        if code is None:
            raise DriverError("exec stream ended without an exit status")
        yield ExecResult(exit_code=int(code))
    finally:
        with contextlib.suppress(Exception):
            ws.close()


def _phase(pod: Any) -> tuple[SandboxPhase, str]:
    if pod.metadata.deletion_timestamp is not None:
        return SandboxPhase.DELETING, ""
    status = pod.status
    if status is None:
        return SandboxPhase.PROVISIONING, ""
    for container in status.container_statuses or []:
        waiting = container.state.waiting if container.state else None
        if waiting is not None and waiting.reason in _FAILED_WAITING:
            return SandboxPhase.ERROR, f"{waiting.reason}: {waiting.message or ''}".strip(": ")
    if status.phase == "Running":
        ready = bool(status.container_statuses) and all(c.ready for c in status.container_statuses)
        return (SandboxPhase.READY, "") if ready else (SandboxPhase.PROVISIONING, "containers not ready")
    if status.phase == "Pending":
        return SandboxPhase.PROVISIONING, status.message or ""
    return SandboxPhase.ERROR, status.message or f"pod phase {status.phase}"


def _to_sandbox(pod: Any) -> DriverSandbox:
    labels: dict[str, str] = dict(pod.metadata.labels or {})
    phase, message = _phase(pod)
    return DriverSandbox(
        id=labels.get(LABEL_SANDBOX_ID, pod.metadata.name),
        name=labels.get(LABEL_SANDBOX_NAME, pod.metadata.name),
        namespace=labels.get(LABEL_NAMESPACE) or DEFAULT_NAMESPACE,
        phase=phase,
        message=message,
        labels={k: v for k, v in labels.items() if k not in _RESERVED},
    )
