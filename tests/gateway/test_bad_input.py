"""Bad input over the wire: the right status, the field named, one line, and nothing written."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from openshell_server.api import resources_pb2 as pb
from tests.gateway.harness import GatewayUnderTest, Stub, api, call_status, sandbox_key, start_gateway

# Includes unicode look-alikes: roman numeral one and Cyrillic a.
BAD_NAMES = [
    "Upper",
    "a" * 64,
    "../x",
    "a;drop",
    "a b",
    "-lead",
    "trail-",
    "a_b",
    "\u2170nfra",
    "\u0430dmin",
    "a\x00b",
    "x/y",
]


@pytest.fixture(scope="module")
def gw_mod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayUnderTest]:
    with start_gateway(tmp_path_factory.mktemp("bad") / "data", gateway_id="gw1") as g:
        admin = g.as_user("bad-root", roles=("platform_admin",))
        admin.CreateNamespace(api.CreateNamespaceRequest(name="team"))
        admin.CreateSandbox(api.CreateSandboxRequest(namespace="team", name="box"))
        admin.CreateProvider(api.CreateProviderRequest(namespace="team", name="creds"))
        yield g


@pytest.fixture
def admin(gw_mod: GatewayUnderTest) -> Stub:
    return gw_mod.as_user("bad-root", roles=("platform_admin",))


def _snapshot(admin: Stub) -> tuple[Any, ...]:
    ns = admin.ListNamespaces(api.ListNamespacesRequest()).namespaces
    return (
        [str(n) for n in ns],
        [sandbox_key(s) for s in admin.ListSandboxes(api.ListSandboxesRequest(all_namespaces=True)).sandboxes],
        [str(p) for p in admin.ListProviders(api.ListProvidersRequest(all_namespaces=True)).providers],
        [str(m) for m in admin.ListMembers(api.ListMembersRequest(all_namespaces=True)).members],
        [
            str(s)
            for s in admin.ListServiceAccounts(api.ListServiceAccountsRequest(all_namespaces=True)).service_accounts
        ],
    )


def expect(method: Any, request: Any, code: grpc.StatusCode, field: str | None = None) -> str:
    got, details, _ = call_status(method, request)
    assert got == code, f"{request!r}: expected {code.name}, got {got.name}: {details}"
    assert "\n" not in details and "Traceback" not in details and len(details) <= 500
    if field is not None:
        assert re.match(rf"{re.escape(field)}[: ]", details), f"field {field!r} not named first: {details}"
    return details


def test_bad_names_are_invalid_argument_and_write_nothing(admin: Stub) -> None:
    before = _snapshot(admin)
    for bad in [*BAD_NAMES, ""]:
        if bad:  # an empty namespace name means "default" for lookups; for creation it is required
            expect(admin.GetNamespace, api.GetNamespaceRequest(name=bad), grpc.StatusCode.INVALID_ARGUMENT, "name")
            expect(admin.CreateSandbox, api.CreateSandboxRequest(namespace=bad, name="ok"),
                   grpc.StatusCode.INVALID_ARGUMENT, "namespace")  # fmt: skip
        expect(admin.CreateNamespace, api.CreateNamespaceRequest(name=bad), grpc.StatusCode.INVALID_ARGUMENT, "name")
        expect(admin.CreateSandbox, api.CreateSandboxRequest(namespace="team", name=bad),
               grpc.StatusCode.INVALID_ARGUMENT, "name")  # fmt: skip
        expect(admin.CreateProvider, api.CreateProviderRequest(namespace="team", name=bad),
               grpc.StatusCode.INVALID_ARGUMENT, "name")  # fmt: skip
        expect(admin.CreateServiceAccount, api.CreateServiceAccountRequest(namespace="team", name=bad),
               grpc.StatusCode.INVALID_ARGUMENT, "name")  # fmt: skip
        expect(admin.GetSandbox, api.GetSandboxRequest(namespace="team", name=bad),
               grpc.StatusCode.INVALID_ARGUMENT, "name")  # fmt: skip
        expect(admin.AttachProvider, api.AttachProviderRequest(namespace="team", sandbox="box", provider=bad),
               grpc.StatusCode.INVALID_ARGUMENT, "provider")  # fmt: skip
        expect(admin.CreateSandbox, api.CreateSandboxRequest(namespace="team", name="ok", providers=[bad]),
               grpc.StatusCode.INVALID_ARGUMENT, "providers[0]")  # fmt: skip
    assert _snapshot(admin) == before


def test_namespace_name_must_fit_the_kubernetes_namespace(admin: Stub) -> None:
    # gateway id "gw1": "openshell-gw1-" is 14 characters, so 49 fit in 63 and 50 do not.
    fits, too_long = "n" * 49, "n" * 50
    details = expect(admin.CreateNamespace, api.CreateNamespaceRequest(name=too_long), grpc.StatusCode.INVALID_ARGUMENT,
                     "name")  # fmt: skip
    assert "49" in details
    admin.CreateNamespace(api.CreateNamespaceRequest(name=fits))
    admin.DeleteNamespace(api.DeleteNamespaceRequest(name=fits))
    # Object names have the full 63 characters.
    admin.CreateSandbox(api.CreateSandboxRequest(namespace="team", name="s" * 63))
    admin.DeleteSandbox(api.DeleteSandboxRequest(namespace="team", name="s" * 63))


def test_bad_fields(admin: Stub) -> None:
    before = _snapshot(admin)
    inv = grpc.StatusCode.INVALID_ARGUMENT
    for selector in ("noequals", "=v", "a=b,,", "k=v with space", "a=b=c"):
        for method, request in (
            (admin.ListNamespaces, api.ListNamespacesRequest(label_selector=selector)),
            (admin.ListSandboxes, api.ListSandboxesRequest(namespace="team", label_selector=selector)),
            (admin.ListProviders, api.ListProvidersRequest(namespace="team", label_selector=selector)),
        ):
            expect(method, request, inv, "label_selector")
    neg = pb.Limits(max_sandboxes=-1)
    expect(admin.CreateNamespace, api.CreateNamespaceRequest(name="negq", quota=neg), inv, "quota.max_sandboxes")
    expect(admin.CreateNamespace, api.CreateNamespaceRequest(name="negq", ceiling=pb.Limits(max_gpus=-2)), inv,
           "ceiling.max_gpus")  # fmt: skip
    expect(admin.UpdateNamespace, api.UpdateNamespaceRequest(name="team", quota=neg), inv, "quota.max_sandboxes")
    expect(admin.CreateNamespace, api.CreateNamespaceRequest(name="badmode", quota_mode="lax"), inv, "quota_mode")
    expect(admin.CreateSandbox, api.CreateSandboxRequest(namespace="team", name="g", gpus=-1), inv, "gpus")
    for token in ("garbage", "-5", "999999", "1e3"):
        expect(admin.ListNamespaces, api.ListNamespacesRequest(page_token=token), inv, "page_token")
        expect(admin.ListMembers, api.ListMembersRequest(namespace="team", page_token=token), inv, "page_token")
        expect(admin.ListSandboxes, api.ListSandboxesRequest(namespace="team", page_token=token), inv, "page_token")
        expect(admin.ListProviders, api.ListProvidersRequest(namespace="team", page_token=token), inv, "page_token")
    expect(admin.ListSandboxes, api.ListSandboxesRequest(namespace="team", page_size=-1), inv, "page_size")
    for role in ("admin", "", "Namespace_Admin", "platform_admin"):
        expect(admin.AddMember, api.AddMemberRequest(namespace="team", principal="https://i#x", role=role), inv, "role")
    expect(admin.AddMember, api.AddMemberRequest(namespace="team", principal="", role="user"), inv, "principal")
    expect(admin.AddMember, api.AddMemberRequest(namespace="team", principal="a b", role="user"), inv, "principal")
    expect(admin.AddMember, api.AddMemberRequest(namespace="team", principal="https://i#x", role="user",
                                                 member_kind="robot"), inv, "member_kind")  # fmt: skip
    expect(admin.CreateSandbox, api.CreateSandboxRequest(namespace="team", name="lbl", labels={"bad key": "v"}), inv,
           "labels")  # fmt: skip
    expect(admin.ExecSandbox, api.ExecSandboxRequest(namespace="team", name="box"), inv, "argv")
    expect(admin.CreateProvider, api.CreateProviderRequest(namespace="team", name="p2", credentials={"1BAD": "x"}), inv,
           "credentials")  # fmt: skip
    expect(admin.CheckAccess, api.CheckAccessRequest(action="Fly"), inv, "action")
    expect(admin.IssueServiceAccountToken, api.IssueServiceAccountTokenRequest(namespace="team", name="x" * 64), inv,
           "name")  # fmt: skip
    assert _snapshot(admin) == before


def test_duplicates_and_stale_versions(admin: Stub) -> None:
    exists, aborted = grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.ABORTED
    expect(admin.CreateNamespace, api.CreateNamespaceRequest(name="team"), exists)
    expect(admin.CreateNamespace, api.CreateNamespaceRequest(name="default"), exists)
    expect(admin.CreateSandbox, api.CreateSandboxRequest(namespace="team", name="box"), exists)
    expect(admin.CreateProvider, api.CreateProviderRequest(namespace="team", name="creds"), exists)
    admin.CreateServiceAccount(api.CreateServiceAccountRequest(namespace="team", name="dup"))
    expect(admin.CreateServiceAccount, api.CreateServiceAccountRequest(namespace="team", name="dup"), exists)
    # Same name in another namespace is fine: uniqueness is per (kind, namespace, name).
    admin.CreateSandbox(api.CreateSandboxRequest(namespace="default", name="box"))
    admin.DeleteSandbox(api.DeleteSandboxRequest(namespace="default", name="box"))

    ns = admin.GetNamespace(api.GetNamespaceRequest(name="team")).namespace
    version = ns.meta.resource_version
    updated = admin.UpdateNamespace(api.UpdateNamespaceRequest(
        name="team", resource_version=version, labels=pb.Labels(items={"openshell.dev/team": "infra"})
    )).namespace  # fmt: skip
    assert updated.meta.resource_version > version
    expect(admin.UpdateNamespace, api.UpdateNamespaceRequest(
        name="team", resource_version=version, labels=pb.Labels(items={"x": "y"})), aborted)  # fmt: skip
    assert dict(admin.GetNamespace(api.GetNamespaceRequest(name="team")).namespace.meta.labels) == {
        "openshell.dev/team": "infra"
    }
    prov = admin.GetProvider(api.GetProviderRequest(namespace="team", name="creds")).provider
    admin.UpdateProvider(
        api.UpdateProviderRequest(
            namespace="team", name="creds", resource_version=prov.meta.resource_version, credentials={"K": "1"}
        )
    )
    expect(
        admin.UpdateProvider,
        api.UpdateProviderRequest(
            namespace="team", name="creds", resource_version=prov.meta.resource_version, credentials={"J": "2"}
        ),
        aborted,
    )
    keys = admin.GetProvider(api.GetProviderRequest(namespace="team", name="creds")).provider.credential_keys
    assert list(keys) == ["K"]


def test_member_cap_is_atomic(tmp_path: Path) -> None:
    with start_gateway(tmp_path / "data", max_members=5) as gw:
        admin = gw.as_user("cap-root", roles=("platform_admin",))
        admin.CreateNamespace(api.CreateNamespaceRequest(name="capped"))
        codes: list[grpc.StatusCode] = []
        lock = threading.Lock()
        start = threading.Barrier(20)

        def add(i: int) -> None:
            start.wait()
            code, details, _ = call_status(admin.AddMember, api.AddMemberRequest(
                namespace="capped", principal=gw.principal_id(f"member-{i}"), role="user"))  # fmt: skip
            assert "\n" not in details
            with lock:
                codes.append(code)

        threads = [threading.Thread(target=add, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert codes.count(grpc.StatusCode.OK) == 5
        assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 15
        assert len(admin.ListMembers(api.ListMembersRequest(namespace="capped")).members) == 5
        # Changing an existing member's role is not a new member: allowed at the cap.
        first = admin.ListMembers(api.ListMembersRequest(namespace="capped")).members[0].principal
        admin.AddMember(api.AddMemberRequest(namespace="capped", principal=first, role="auditor"))
        assert len(admin.ListMembers(api.ListMembersRequest(namespace="capped")).members) == 5
