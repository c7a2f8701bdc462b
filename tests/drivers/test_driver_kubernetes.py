"""The kubernetes driver through the official client's real REST layer against a fake API server.

The fake server (``_kube_fake_api``) replays recorded API behaviour: Status bodies for
201/409/404/403, chunked watch streams and websocket exec. Every test asserts the exact
requests the client sent.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest
from _kube_fake_api import Exec, FakeKubeAPI, Json, Watch, pod, status
from kubernetes import client as k8s

from openshell_server.drivers import (
    DriverError,
    DriverEvent,
    DriverUnavailable,
    ExecChunk,
    ExecResult,
    KubernetesDriver,
    NamespaceMissing,
    SandboxPhase,
    SandboxSpec,
    get_driver,
)

GW = "gw1"
MANAGED_NS = "openshell-gw1-team-a"
SELECTOR = "openshell.dev/managed-by=openshell-gateway,openshell.dev/gateway-id=gw1"
SPEC = SandboxSpec(
    id="5f0c2a",
    name="demo",
    namespace="team-a",
    namespace_id="ns-1",
    labels={"openshell.dev/team": "infra", "openshell.dev/namespace": "forged"},
    supervisor_token="sup-token-xyz",
    env={"PROVIDER_TOKEN": "tok-secret-123"},
)
LABELS = {
    "openshell.dev/team": "infra",
    "openshell.dev/managed-by": "openshell-gateway",
    "openshell.dev/gateway-id": GW,
    "openshell.dev/namespace": "team-a",
    "openshell.dev/sandbox-id": "5f0c2a",
    "openshell.dev/sandbox-name": "demo",
}


# GET /version/ as recorded from a kind v1.31 cluster.
VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0",
    "gitCommit": "9edcffcde5595e8a5b1a35f88c421764e575afce",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T07:28:49Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@pytest.fixture
def api() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI() as fake:
        yield fake


def _client(api: FakeKubeAPI) -> k8s.ApiClient:
    config = k8s.Configuration()
    config.host = api.url
    return k8s.ApiClient(config)


def _driver(api: FakeKubeAPI, mode: str = "managed") -> KubernetesDriver:
    return KubernetesDriver(_client(api), GW, mode)


def _created(req_body: dict) -> Json:
    """The API answers a create with 201 and the stored object."""
    return Json(201, {**req_body, "metadata": {**req_body["metadata"], "uid": "u", "resourceVersion": "7"}})


def _accept_creates(api: FakeKubeAPI, k8s_ns: str) -> None:
    for kind in ("secrets", "pods"):
        api.on("POST", f"/api/v1/namespaces/{k8s_ns}/{kind}", lambda req: _created(req.body))


# -- configuration --------------------------------------------------------------------


def test_unknown_mode_and_driver_names_are_rejected(api: FakeKubeAPI) -> None:
    with pytest.raises(ValueError, match="choose one of managed, operator"):
        KubernetesDriver(_client(api), GW, "clustered")
    with pytest.raises(ValueError, match="unknown compute driver 'docker': choose one of local, kubernetes"):
        get_driver("docker")
    driver = get_driver("kubernetes", api_client=_client(api), gateway_id=GW, mode="operator")
    assert isinstance(driver, KubernetesDriver) and driver.mode == "operator"


def test_managed_namespace_name_must_fit_63_characters(api: FakeKubeAPI) -> None:
    driver = _driver(api)
    assert driver.kubernetes_namespace("team-a") == MANAGED_NS
    with pytest.raises(ValueError, match="Kubernetes namespace"):
        driver.kubernetes_namespace("n" * 60)
    assert api.requests == []


def test_check_ready(api: FakeKubeAPI) -> None:
    api.on("GET", "/version/", Json(200, VERSION))
    _driver(api).check_ready()
    assert [(r.method, r.path) for r in api.requests] == [("GET", "/version/")]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = k8s.Configuration()
    config.host = f"http://127.0.0.1:{port}"
    config.retries = 0
    with pytest.raises(DriverUnavailable, match="Kubernetes API unreachable"):
        KubernetesDriver(k8s.ApiClient(config), GW).check_ready()


# -- create ---------------------------------------------------------------------------


@pytest.mark.parametrize("namespace_reply", [201, 409])
def test_managed_create_makes_namespace_secrets_and_pod(api: FakeKubeAPI, namespace_reply: int) -> None:
    if namespace_reply == 201:
        api.on("POST", "/api/v1/namespaces", lambda req: _created(req.body))
    else:
        api.on(
            "POST",
            "/api/v1/namespaces",
            Json(
                409,
                status(
                    409,
                    "AlreadyExists",
                    f'namespaces "{MANAGED_NS}" already exists',
                    name=MANAGED_NS,
                    kind="namespaces",
                ),
            ),
        )
    _accept_creates(api, MANAGED_NS)

    created = _driver(api).create(SPEC)

    assert created.phase is SandboxPhase.PROVISIONING and created.namespace == "team-a"
    assert created.labels == {"openshell.dev/team": "infra"}
    posts = api.calls("POST")
    assert [r.path for r in posts] == [
        "/api/v1/namespaces",
        f"/api/v1/namespaces/{MANAGED_NS}/secrets",
        f"/api/v1/namespaces/{MANAGED_NS}/secrets",
        f"/api/v1/namespaces/{MANAGED_NS}/pods",
    ]
    ns_body, env_secret, token_secret, pod_body = (r.body for r in posts)
    assert ns_body["metadata"] == {
        "name": MANAGED_NS,
        "labels": {
            "openshell.dev/managed-by": "openshell-gateway",
            "openshell.dev/gateway-id": GW,
            "openshell.dev/namespace": "team-a",
        },
    }
    # A label the caller supplied can never forge the reserved ones.
    for body in (env_secret, token_secret, pod_body):
        assert body["metadata"]["labels"] == LABELS
    assert env_secret["metadata"]["name"] == "sbx-5f0c2a-env"
    assert env_secret["stringData"] == {"PROVIDER_TOKEN": "tok-secret-123"}
    assert token_secret["stringData"] == {"token": "sup-token-xyz"}
    container = pod_body["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "sbx-5f0c2a-env"}}]
    assert "env" not in container
    pod_json = json.dumps(pod_body)
    assert "tok-secret-123" not in pod_json and "sup-token-xyz" not in pod_json
    assert pod_body["metadata"]["name"] == "sbx-5f0c2a"
    assert pod_body["spec"]["automountServiceAccountToken"] is False


def test_operator_create_uses_same_name_namespace_and_never_creates_one(api: FakeKubeAPI) -> None:
    _accept_creates(api, "team-a")
    _driver(api, "operator").create(SPEC)
    assert [r.path for r in api.requests] == [
        "/api/v1/namespaces/team-a/secrets",
        "/api/v1/namespaces/team-a/secrets",
        "/api/v1/namespaces/team-a/pods",
    ]


def test_operator_missing_namespace_surfaces_the_api_error(api: FakeKubeAPI) -> None:
    api.on(
        "POST",
        "/api/v1/namespaces/team-a/secrets",
        Json(404, status(404, "NotFound", 'namespaces "team-a" not found', name="team-a", kind="namespaces")),
    )
    with pytest.raises(NamespaceMissing) as err:
        _driver(api, "operator").create(SPEC)
    assert str(err.value) == 'namespaces "team-a" not found'
    # No pre-check: the first and only request is the create itself.
    assert [(r.method, r.path) for r in api.requests] == [("POST", "/api/v1/namespaces/team-a/secrets")]


def test_forbidden_is_a_driver_error_with_the_api_message(api: FakeKubeAPI) -> None:
    message = (
        'namespaces is forbidden: User "system:serviceaccount:openshell:gateway" cannot create '
        'resource "namespaces" in API group "" at the cluster scope'
    )
    api.on("POST", "/api/v1/namespaces", Json(403, status(403, "Forbidden", message, kind="namespaces")))
    with pytest.raises(DriverError) as err:
        _driver(api).create(SPEC)
    assert not isinstance(err.value, NamespaceMissing)
    assert str(err.value) == f"Kubernetes API refused creating namespace {MANAGED_NS} (403): {message}"
    assert len(api.requests) == 1


# -- delete, get, list ----------------------------------------------------------------


@pytest.mark.parametrize(("mode", "k8s_ns"), [("managed", MANAGED_NS), ("operator", "team-a")])
def test_delete_goes_by_label_selector_and_is_idempotent(api: FakeKubeAPI, mode: str, k8s_ns: str) -> None:
    api.on("DELETE", f"/api/v1/namespaces/{k8s_ns}/pods", Json(200, {"kind": "PodList", "items": []}))
    api.on(
        "DELETE",
        f"/api/v1/namespaces/{k8s_ns}/secrets",
        Json(404, status(404, "NotFound", f'namespaces "{k8s_ns}" not found')),
    )
    _driver(api, mode).delete(SPEC)
    assert [(r.method, r.path, r.query["labelSelector"]) for r in api.requests] == [
        ("DELETE", f"/api/v1/namespaces/{k8s_ns}/pods", [f"{SELECTOR},openshell.dev/sandbox-id=5f0c2a"]),
        ("DELETE", f"/api/v1/namespaces/{k8s_ns}/secrets", [f"{SELECTOR},openshell.dev/sandbox-id=5f0c2a"]),
    ]


def test_list_maps_phases_and_namespaces_from_labels(api: FakeKubeAPI) -> None:
    base = {"openshell.dev/managed-by": "openshell-gateway", "openshell.dev/gateway-id": GW}
    items = [
        pod(
            "sbx-a",
            MANAGED_NS,
            {
                **base,
                "openshell.dev/sandbox-id": "a",
                "openshell.dev/namespace": "team-a",
                "openshell.dev/sandbox-name": "alpha",
            },
        ),
        pod("sbx-b", "other", {**base, "openshell.dev/sandbox-id": "b"}, phase="Pending", ready=False),
        pod(
            "sbx-c",
            "x",
            {**base, "openshell.dev/sandbox-id": "c"},
            phase="Pending",
            ready=False,
            waiting="ImagePullBackOff",
        ),
        pod("sbx-d", "x", {**base, "openshell.dev/sandbox-id": "d"}, deleting=True),
        pod("sbx-e", "x", {**base, "openshell.dev/sandbox-id": "e"}, phase="Failed", ready=False),
    ]
    api.on("GET", "/api/v1/pods", Json(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}))
    found = {s.id: s for s in _driver(api).list()}
    assert {k: (s.namespace, s.phase) for k, s in found.items()} == {
        "a": ("team-a", SandboxPhase.READY),
        "b": ("default", SandboxPhase.PROVISIONING),
        "c": ("default", SandboxPhase.ERROR),
        "d": ("default", SandboxPhase.DELETING),
        "e": ("default", SandboxPhase.ERROR),
    }
    assert found["a"].name == "alpha" and "ImagePullBackOff" in found["c"].message
    assert [(r.path, r.query["labelSelector"]) for r in api.requests] == [("/api/v1/pods", [SELECTOR])]


def test_get_filters_by_sandbox_id(api: FakeKubeAPI) -> None:
    api.on_sequence(
        "GET",
        "/api/v1/pods",
        [
            Json(200, {"kind": "PodList", "items": [pod("sbx-5f0c2a", MANAGED_NS, LABELS)]}),
            Json(200, {"kind": "PodList", "items": []}),
        ],
    )
    driver = _driver(api)
    got = driver.get("5f0c2a")
    assert got is not None and (got.id, got.name, got.namespace) == ("5f0c2a", "demo", "team-a")
    assert driver.get("5f0c2a") is None
    assert api.requests[0].query["labelSelector"] == [f"{SELECTOR},openshell.dev/sandbox-id=5f0c2a"]


def test_delete_namespace_only_in_managed_mode(api: FakeKubeAPI) -> None:
    api.on_sequence(
        "DELETE",
        f"/api/v1/namespaces/{MANAGED_NS}",
        [
            Json(200, {"kind": "Namespace", "metadata": {"name": MANAGED_NS}, "status": {"phase": "Terminating"}}),
            Json(404, status(404, "NotFound", f'namespaces "{MANAGED_NS}" not found')),
        ],
    )
    _driver(api).delete_namespace("team-a")
    _driver(api).delete_namespace("team-a")  # already gone: fine
    assert [(r.method, r.path) for r in api.requests] == [("DELETE", f"/api/v1/namespaces/{MANAGED_NS}")] * 2
    _driver(api, "operator").delete_namespace("team-a")
    assert len(api.requests) == 2


# -- watch ----------------------------------------------------------------------------


def _event(kind: str, name: str, labels: dict[str, str], rv: str, **kw: object) -> dict:
    return {"type": kind, "object": pod(name, MANAGED_NS, labels, resource_version=rv, **kw)}


def test_one_cluster_wide_watch_maps_events_back_to_namespaces(api: FakeKubeAPI) -> None:
    unlabelled = {k: v for k, v in LABELS.items() if k != "openshell.dev/namespace"}
    api.on(
        "GET",
        "/api/v1/pods",
        Watch(
            [
                _event("ADDED", "sbx-5f0c2a", LABELS, "10", phase="Pending", ready=False),
                _event("MODIFIED", "sbx-5f0c2a", LABELS, "11"),
                _event("DELETED", "sbx-x", unlabelled, "12"),
            ]
        ),
    )
    stop = threading.Event()
    events: list[DriverEvent] = []
    for event in _driver(api).watch(stop):
        events.append(event)
        if len(events) == 3:
            stop.set()
    assert events == [
        DriverEvent("5f0c2a", "team-a", SandboxPhase.PROVISIONING, ""),
        DriverEvent("5f0c2a", "team-a", SandboxPhase.READY, ""),
        DriverEvent("5f0c2a", "default", SandboxPhase.DELETING, "", deleted=True),
    ]
    (req,) = api.requests
    assert (req.path, req.query["watch"], req.query["labelSelector"]) == ("/api/v1/pods", ["true"], [SELECTOR])


def test_watch_resumes_from_last_version_and_restarts_after_410(api: FakeKubeAPI) -> None:
    gone = {"type": "ERROR", "object": status(410, "Expired", "too old resource version: 10 (50)")}
    api.on_sequence(
        "GET",
        "/api/v1/pods",
        [
            Watch([_event("ADDED", "sbx-5f0c2a", LABELS, "10")]),
            Watch([gone]),
            Watch([_event("MODIFIED", "sbx-5f0c2a", LABELS, "51")]),
        ],
    )
    stop = threading.Event()
    seen = []
    for event in _driver(api).watch(stop):
        seen.append(event.phase)
        if len(seen) == 2:
            stop.set()
    assert seen == [SandboxPhase.READY, SandboxPhase.READY]
    assert [r.query.get("resourceVersion") for r in api.requests] == [None, ["10"], None]


def test_watch_forbidden_raises(api: FakeKubeAPI) -> None:
    api.on("GET", "/api/v1/pods", Json(403, status(403, "Forbidden", 'pods is forbidden: cannot watch "pods"')))
    with pytest.raises(DriverError, match="watching sandbox pods \\(403\\): pods is forbidden"):
        next(_driver(api).watch(threading.Event()))


# -- exec and logs --------------------------------------------------------------------


def _collect(items: Iterator[ExecChunk | ExecResult]) -> tuple[bytes, bytes, ExecResult]:
    out = err = b""
    result = None
    for item in items:
        if isinstance(item, ExecChunk):
            out, err = (out + item.data, err) if item.stream == "stdout" else (out, err + item.data)
        else:
            result = item
    assert result is not None
    return out, err, result


def test_exec_streams_output_and_exit_code(api: FakeKubeAPI) -> None:
    path = f"/api/v1/namespaces/{MANAGED_NS}/pods/sbx-5f0c2a/exec"
    api.on("GET", path, Exec(stdout=b"hi\n", stderr=b"warn\n", exit_code=3))
    out, err, result = _collect(_driver(api).exec(SPEC, ["sh", "-c", "echo hi"], env={"MODE": "x"}, timeout_s=10))
    assert (out, err, result) == (b"hi\n", b"warn\n", ExecResult(exit_code=3, timed_out=False))
    (req,) = api.requests
    assert req.query["command"] == ["env", "MODE=x", "sh", "-c", "echo hi"]
    assert (req.query["container"], req.query["stdout"], req.query["stderr"]) == (["sandbox"], ["true"], ["true"])
    assert "stdin" not in req.query or req.query["stdin"] == ["false"]


def test_exec_sends_stdin_and_reports_success(api: FakeKubeAPI) -> None:
    session = Exec(stdout=b"ok", read_stdin=True)
    api.on("GET", "/api/v1/namespaces/team-a/pods/sbx-5f0c2a/exec", session)
    out, _, result = _collect(_driver(api, "operator").exec(SPEC, ["cat"], env={}, timeout_s=10, stdin=b"payload"))
    assert (out, result) == (b"ok", ExecResult(0, False))
    assert session.stdin_seen == [b"payload"]
    assert api.requests[0].query["command"] == ["cat"] and api.requests[0].query["stdin"] == ["true"]


def test_logs_read_the_pod_log_with_tail(api: FakeKubeAPI) -> None:
    api.on("GET", f"/api/v1/namespaces/{MANAGED_NS}/pods/sbx-5f0c2a/log", "line one\nline two\n")
    assert _driver(api).logs(SPEC, tail=2) == ["line one", "line two"]
    assert api.requests[0].query["tailLines"] == ["2"]
