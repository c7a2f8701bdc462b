"""The ``openshell`` CLI against a fake gateway on loopback: the exact requests it sends, its
table and JSON output, its one-line errors and exit codes, and the bearer token it presents."""

from __future__ import annotations

import io
import json
import socket
import sys

import grpc
import pytest
from google.protobuf.json_format import MessageToDict

from openshell_server.api import openshell_pb2 as pb
from openshell_server.api import resources_pb2 as res
from openshell_server.cli import main
from openshell_server.cli._context import exit_code_for

from .fake_gateway import Fail, FakeGateway


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def sandbox(name: str, namespace: str = "team-ml", **kw: object) -> res.Sandbox:
    return res.Sandbox(meta=res.ObjectMeta(name=name, namespace=namespace), phase="Running", **kw)


# --------------------------------------------------------------------------- requests and token


def test_sandbox_create_sends_exact_request_with_token(gateway: FakeGateway, capsys) -> None:
    gateway.reply("CreateSandbox", pb.CreateSandboxResponse(sandbox=sandbox("box", gpus=2, providers=["gh"])))
    code, out, err = run(
        capsys,
        "--token",
        "tok-123",
        "sandbox",
        "create",
        "box",
        "-n",
        "team-ml",
        "--gpus",
        "2",
        "--lifetime",
        "2h",
        "--provider",
        "gh",
        "--provider",
        "anthropic",
        "--label",
        "team=ml",
    )
    assert (code, err) == (0, "")
    call = gateway.only_call()
    assert call.method == "CreateSandbox"
    assert call.request == pb.CreateSandboxRequest(
        namespace="team-ml",
        name="box",
        gpus=2,
        lifetime_seconds=7200,
        providers=["gh", "anthropic"],
        labels={"team": "ml"},
    )
    assert call.metadata["authorization"] == "Bearer tok-123"
    assert out.splitlines() == [
        "NAMESPACE  NAME  PHASE    GPUS  PROVIDERS  EXPIRES",
        "team-ml    box   Running  2     gh         -",
    ]


def test_env_supplies_token_and_namespace_and_flags_override(
    gateway: FakeGateway, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("OPENSHELL_TOKEN", "env-token")
    monkeypatch.setenv("OPENSHELL_NAMESPACE", "from-env")
    reply = pb.GetSandboxResponse(sandbox=sandbox("a"))
    gateway.reply("GetSandbox", reply, reply)
    assert run(capsys, "sandbox", "get", "a")[0] == 0
    assert run(capsys, "-n", "flag-ns", "--token", "flag-token", "sandbox", "get", "a")[0] == 0
    first, second = gateway.calls
    assert first.request == pb.GetSandboxRequest(namespace="from-env", name="a")
    assert first.metadata["authorization"] == "Bearer env-token"
    assert second.request == pb.GetSandboxRequest(namespace="flag-ns", name="a")
    assert second.metadata["authorization"] == "Bearer flag-token"


def test_no_token_sends_no_authorization_and_empty_namespace(gateway: FakeGateway, capsys) -> None:
    gateway.reply("DeleteSandbox", pb.DeleteSandboxResponse())
    code, out, _ = run(capsys, "sandbox", "delete", "old")
    assert (code, out) == (0, 'sandbox "old" deleted\n')
    call = gateway.only_call()
    assert "authorization" not in call.metadata
    assert call.request == pb.DeleteSandboxRequest(namespace="", name="old")  # "" = default, server-side


def test_gateway_flag_overrides_env(gateway: FakeGateway, capsys, monkeypatch) -> None:
    monkeypatch.setenv("OPENSHELL_GATEWAY", "127.0.0.1:1")
    gateway.reply("WhoAmI", pb.WhoAmIResponse(principal_id="local", kind="local"))
    assert run(capsys, "--gateway", gateway.address, "whoami")[0] == 0


# --------------------------------------------------------------------------- lists, paging, output


def test_list_all_namespaces_follows_pages_and_prints_table(gateway: FakeGateway, capsys) -> None:
    gateway.reply(
        "ListSandboxes",
        pb.ListSandboxesResponse(sandboxes=[sandbox("a", "ns1")], next_page_token="p2"),
        pb.ListSandboxesResponse(sandboxes=[sandbox("b", "ns2")]),
    )
    code, out, _ = run(capsys, "sandbox", "list", "-A", "-l", "team=ml")
    assert code == 0
    assert [c.request for c in gateway.calls] == [
        pb.ListSandboxesRequest(all_namespaces=True, label_selector="team=ml"),
        pb.ListSandboxesRequest(all_namespaces=True, label_selector="team=ml", page_token="p2"),
    ]
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["NAMESPACE", "NAME"],
        ["ns1", "a"],
        ["ns2", "b"],
    ]


def test_list_json_output_is_the_merged_response(gateway: FakeGateway, capsys) -> None:
    first = res.Provider(
        meta=res.ObjectMeta(name="gh", namespace="default"), type="github", credential_keys=["GITHUB_TOKEN"]
    )
    second = res.Provider(meta=res.ObjectMeta(name="ant", namespace="default"), type="anthropic")
    gateway.reply(
        "ListProviders",
        pb.ListProvidersResponse(providers=[first], next_page_token="x"),
        pb.ListProvidersResponse(providers=[second]),
    )
    code, out, _ = run(capsys, "-o", "json", "provider", "list")
    assert code == 0
    data = json.loads(out)
    assert [p["meta"]["name"] for p in data["providers"]] == ["gh", "ant"]
    assert data["providers"][0]["credential_keys"] == ["GITHUB_TOKEN"]
    assert data == MessageToDict(
        pb.ListProvidersResponse(providers=[first, second]),
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )


def test_empty_list_says_so(gateway: FakeGateway, capsys) -> None:
    gateway.reply("ListMembers", pb.ListMembersResponse())
    code, out, _ = run(capsys, "member", "list", "-n", "team-ml")
    assert (code, out) == (0, "No resources found.\n")
    assert gateway.only_call().request == pb.ListMembersRequest(namespace="team-ml")


def test_provider_list_for_a_sandbox(gateway: FakeGateway, capsys) -> None:
    gateway.reply("ListSandboxProviders", pb.ListSandboxProvidersResponse())
    assert run(capsys, "provider", "list", "--sandbox", "box", "-n", "t")[0] == 0
    assert gateway.only_call().request == pb.ListSandboxProvidersRequest(namespace="t", sandbox="box")


def test_whoami_table(gateway: FakeGateway, capsys) -> None:
    gateway.reply(
        "WhoAmI",
        pb.WhoAmIResponse(
            principal_id="https://idp#alice",
            kind="user",
            issuer="https://idp",
            global_roles=["auditor"],
            memberships=[res.Membership(namespace="team-ml", role="namespace_admin")],
        ),
    )
    code, out, _ = run(capsys, "whoami")
    assert code == 0
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}
    assert rows == {
        "principal": "https://idp#alice",
        "kind": "user",
        "issuer": "https://idp",
        "global_roles": "auditor",
        "memberships": "team-ml=namespace_admin",
    }


# --------------------------------------------------------------------------- errors and exit codes


@pytest.mark.parametrize(
    ("status", "exit_code"),
    [
        (grpc.StatusCode.PERMISSION_DENIED, 17),
        (grpc.StatusCode.NOT_FOUND, 15),
        (grpc.StatusCode.UNAUTHENTICATED, 26),
        (grpc.StatusCode.FAILED_PRECONDITION, 19),
        (grpc.StatusCode.ABORTED, 20),
    ],
)
def test_failed_status_is_one_line_and_distinct_exit_code(
    gateway: FakeGateway, capsys, status, exit_code
) -> None:
    gateway.reply("GetNamespace", Fail(status, "you may not\n  do that"))
    code, out, err = run(capsys, "namespace", "get", "team-ml")
    assert (code, out) == (exit_code, "")
    assert err == f"error: {status.name}: you may not do that\n"


def test_exit_codes_are_distinct_and_clear_of_local_codes() -> None:
    codes = [exit_code_for(s) for s in grpc.StatusCode if s is not grpc.StatusCode.OK]
    assert len(set(codes)) == len(codes)
    assert not set(codes) & {0, 1, 2, 3, 130}
    assert all(c < 126 for c in codes)


def test_unreachable_gateway_is_unavailable(capsys, monkeypatch) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("OPENSHELL_TOKEN", raising=False)
    code, out, err = run(capsys, "--gateway", f"127.0.0.1:{port}", "whoami")
    assert out == ""
    assert code == exit_code_for(grpc.StatusCode.UNAVAILABLE) == 24
    assert err.startswith("error: UNAVAILABLE: ") and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["sandbox"],
        ["sandbox", "create"],
        ["sandbox", "create", "x", "--gpus", "-1"],
        ["sandbox", "list", "-o", "yaml"],
        ["member", "add", "bob"],
        ["sandbox", "list", "--", "x"],
        ["sandbox", "create", "x", "--lifetime", "soon"],
        ["sandbox", "exec", "box"],
    ],
)
def test_usage_errors_are_one_line_exit_2_and_send_nothing(gateway: FakeGateway, capsys, argv) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert gateway.calls == []


# --------------------------------------------------------------------------- exec


def test_exec_streams_output_and_exits_with_the_command_code(gateway: FakeGateway, capsys) -> None:
    gateway.reply(
        "ExecSandbox",
        [
            pb.ExecSandboxResponse(stdout=b"hello\n"),
            pb.ExecSandboxResponse(stderr=b"oops\n"),
            pb.ExecSandboxResponse(stdout=b"world\n"),
            pb.ExecSandboxResponse(exit_code=3),
        ],
    )
    code, out, err = run(
        capsys, "sandbox", "exec", "box", "-n", "t", "--timeout", "1m", "--", "sh", "-c", "x", "-n"
    )
    assert (code, out, err) == (3, "hello\nworld\n", "oops\n")
    request = gateway.only_call().request
    assert request == pb.ExecSandboxRequest(
        namespace="t", name="box", argv=["sh", "-c", "x", "-n"], timeout_seconds=60
    )
    assert not request.HasField("stdin")


def test_exec_sends_stdin_when_asked(gateway: FakeGateway, capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"input\x00bytes")))
    gateway.reply("ExecSandbox", [pb.ExecSandboxResponse(exit_code=0)])
    assert run(capsys, "sandbox", "exec", "-i", "box", "--", "cat")[0] == 0
    assert gateway.only_call().request.stdin == b"input\x00bytes"


def test_exec_killed_by_signal_exits_like_a_shell(gateway: FakeGateway, capsys) -> None:
    gateway.reply("ExecSandbox", [pb.ExecSandboxResponse(exit_code=-9)])
    assert run(capsys, "sandbox", "exec", "box", "--", "sleep", "9")[0] == 137


def test_exec_stream_without_exit_code_is_a_protocol_error(gateway: FakeGateway, capsys) -> None:
    gateway.reply("ExecSandbox", [pb.ExecSandboxResponse(stdout=b"partial")])
    code, out, err = run(capsys, "sandbox", "exec", "box", "--", "true")
    assert (code, out) == (3, "partial")
    assert err == "error: the gateway ended the exec stream without an exit code\n"


def test_exec_refused_is_the_status_exit_code(gateway: FakeGateway, capsys) -> None:
    gateway.reply("ExecSandbox", Fail(grpc.StatusCode.PERMISSION_DENIED, "denied"))
    assert run(capsys, "sandbox", "exec", "box", "--", "id") == (17, "", "error: PERMISSION_DENIED: denied\n")


# --------------------------------------------------------------------------- providers and credentials


def test_provider_create_request_takes_credentials_from_args_and_env(
    gateway: FakeGateway, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-from-env")
    gateway.reply(
        "CreateProvider", pb.CreateProviderResponse(provider=res.Provider(meta=res.ObjectMeta(name="gh")))
    )
    code, _, _ = run(
        capsys,
        "provider",
        "create",
        "gh",
        "--type",
        "github",
        "--credential",
        "API_KEY=s3cr=t",
        "--credential",
        "GITHUB_TOKEN",
        "--endpoint",
        "api.github.com:443",
        "--env",
        "GH_HOST=github.com",
    )
    assert code == 0
    assert gateway.only_call().request == pb.CreateProviderRequest(
        namespace="",
        name="gh",
        type="github",
        profile=res.ProviderProfile(endpoints=["api.github.com:443"], env={"GH_HOST": "github.com"}),
        credentials={"API_KEY": "s3cr=t", "GITHUB_TOKEN": "ghp-from-env"},
    )


def test_bad_credential_argument_is_refused_without_echoing_it(
    gateway: FakeGateway, capsys, monkeypatch
) -> None:
    monkeypatch.delenv("sk-live-secret", raising=False)
    code, _, err = run(capsys, "provider", "create", "p", "--type", "x", "--env", "NOEQUALS")
    assert code == 2 and "--env expects KEY=VALUE" in err
    code, _, err = run(capsys, "provider", "create", "p", "--type", "x", "--credential", "=value-only")
    assert code == 2 and "value-only" not in err
    assert gateway.calls == []


def test_provider_update_merges_profile_and_uses_read_version(gateway: FakeGateway, capsys) -> None:
    current = res.Provider(
        meta=res.ObjectMeta(name="gh", namespace="t", resource_version=4, labels={"a": "1"}),
        type="github",
        profile=res.ProviderProfile(endpoints=["a.example:443", "b.example:443"], env={"X": "1", "Y": "2"}),
    )
    gateway.reply("GetProvider", pb.GetProviderResponse(provider=current))
    gateway.reply("UpdateProvider", pb.UpdateProviderResponse(provider=current))
    code, _, _ = run(
        capsys,
        "provider",
        "update",
        "gh",
        "-n",
        "t",
        "--remove-endpoint",
        "a.example:443",
        "--endpoint",
        "c.example:443",
        "--env",
        "Y=3",
        "--remove-env",
        "X",
        "--credential",
        "TOKEN=new",
        "--remove-credential",
        "OLD",
    )
    assert code == 0
    assert [c.method for c in gateway.calls] == ["GetProvider", "UpdateProvider"]
    assert gateway.calls[1].request == pb.UpdateProviderRequest(
        namespace="t",
        name="gh",
        resource_version=4,
        profile=res.ProviderProfile(endpoints=["b.example:443", "c.example:443"], env={"Y": "3"}),
        credentials={"TOKEN": "new"},
        remove_credentials=["OLD"],
    )
    assert not gateway.calls[1].request.HasField("labels")


def test_provider_attach_and_detach(gateway: FakeGateway, capsys) -> None:
    gateway.reply("AttachProvider", pb.AttachProviderResponse(sandbox=sandbox("box", providers=["gh"])))
    gateway.reply("DetachProvider", pb.DetachProviderResponse(sandbox=sandbox("box")))
    assert (
        run(capsys, "provider", "attach", "gh", "--sandbox", "box", "-n", "t", "--provider-namespace", "o")[0]
        == 0
    )
    assert run(capsys, "provider", "detach", "gh", "--sandbox", "box", "-n", "t")[0] == 0
    assert [c.request for c in gateway.calls] == [
        pb.AttachProviderRequest(namespace="t", sandbox="box", provider="gh", provider_namespace="o"),
        pb.DetachProviderRequest(namespace="t", sandbox="box", provider="gh"),
    ]


# --------------------------------------------------------------------------- namespaces, members, accounts


def test_namespace_create_with_limits(gateway: FakeGateway, capsys) -> None:
    ns = res.Namespace(
        meta=res.ObjectMeta(name="team-ml"),
        phase="Active",
        quota_mode="soft",
        quota=res.Limits(max_sandboxes=5),
    )
    gateway.reply("CreateNamespace", pb.CreateNamespaceResponse(namespace=ns))
    code, out, _ = run(
        capsys,
        "namespace",
        "create",
        "team-ml",
        "--label",
        "openshell.dev/team=ml",
        "--quota-mode",
        "soft",
        "--max-sandboxes",
        "5",
        "--ceiling-max-gpus",
        "8",
        "--ceiling-max-lifetime",
        "1d",
    )
    assert code == 0
    assert gateway.only_call().request == pb.CreateNamespaceRequest(
        name="team-ml",
        labels={"openshell.dev/team": "ml"},
        quota=res.Limits(max_sandboxes=5),
        ceiling=res.Limits(max_gpus=8, max_sandbox_lifetime_seconds=86400),
        quota_mode="soft",
    )
    assert out.splitlines()[1].split() == ["team-ml", "Active", "soft", "5", "-", "-"]


def test_namespace_update_changes_only_what_flags_name(gateway: FakeGateway, capsys) -> None:
    current = res.Namespace(
        meta=res.ObjectMeta(name="t", resource_version=7, labels={"a": "1", "b": "2"}),
        quota=res.Limits(max_sandboxes=5, max_gpus=2),
        ceiling=res.Limits(max_gpus=9),
    )
    gateway.reply("GetNamespace", pb.GetNamespaceResponse(namespace=current))
    gateway.reply("UpdateNamespace", pb.UpdateNamespaceResponse(namespace=current))
    code, _, _ = run(
        capsys,
        "ns",
        "update",
        "t",
        "--label",
        "c=3",
        "--remove-label",
        "a",
        "--max-gpus",
        "4",
        "--resource-version",
        "6",
    )
    assert code == 0
    update = gateway.calls[1].request
    assert update == pb.UpdateNamespaceRequest(
        name="t",
        resource_version=6,
        labels=res.Labels(items={"b": "2", "c": "3"}),
        quota=res.Limits(max_sandboxes=5, max_gpus=4),
    )
    assert not update.HasField("ceiling") and not update.HasField("quota_mode")


def test_namespace_delete_blocked_shows_the_blockers(gateway: FakeGateway, capsys) -> None:
    gateway.reply(
        "DeleteNamespace",
        Fail(grpc.StatusCode.FAILED_PRECONDITION, "namespace team-ml still holds: sandbox/a, provider/gh"),
    )
    code, _, err = run(capsys, "namespace", "delete", "team-ml")
    assert code == 19
    assert err == "error: FAILED_PRECONDITION: namespace team-ml still holds: sandbox/a, provider/gh\n"
    assert gateway.only_call().request == pb.DeleteNamespaceRequest(name="team-ml")


def test_member_add_remove(gateway: FakeGateway, capsys) -> None:
    member = res.Member(namespace="t", principal="https://idp#bob", role="user", member_kind="user")
    gateway.reply("AddMember", pb.AddMemberResponse(member=member))
    gateway.reply("RemoveMember", pb.RemoveMemberResponse())
    code, out, _ = run(capsys, "member", "add", "https://idp#bob", "--role", "user", "-n", "t")
    assert code == 0 and out.splitlines()[1].split() == ["t", "https://idp#bob", "user", "user"]
    assert (
        run(capsys, "member", "remove", "https://idp#bob", "-n", "t")[1]
        == 'member "https://idp#bob" removed from namespace "t"\n'
    )
    assert [c.request for c in gateway.calls] == [
        pb.AddMemberRequest(namespace="t", principal="https://idp#bob", role="user"),
        pb.RemoveMemberRequest(namespace="t", principal="https://idp#bob"),
    ]


def test_serviceaccount_token_prints_bare_token(gateway: FakeGateway, capsys) -> None:
    gateway.reply("IssueServiceAccountToken", pb.IssueServiceAccountTokenResponse(token="eyJ.abc.def"))
    assert run(capsys, "sa", "token", "ci", "-n", "t", "--ttl", "1h") == (0, "eyJ.abc.def\n", "")
    assert gateway.only_call().request == pb.IssueServiceAccountTokenRequest(
        namespace="t", name="ci", ttl_seconds=3600
    )


def test_serviceaccount_create_list_delete(gateway: FakeGateway, capsys) -> None:
    account = res.ServiceAccount(
        meta=res.ObjectMeta(name="ci", namespace="t"), subject="system:serviceaccount:t:ci"
    )
    gateway.reply("CreateServiceAccount", pb.CreateServiceAccountResponse(service_account=account))
    gateway.reply("ListServiceAccounts", pb.ListServiceAccountsResponse(service_accounts=[account]))
    gateway.reply("DeleteServiceAccount", pb.DeleteServiceAccountResponse())
    assert run(capsys, "serviceaccount", "create", "ci", "-n", "t")[0] == 0
    assert "system:serviceaccount:t:ci" in run(capsys, "sa", "list", "-A")[1]
    assert run(capsys, "sa", "delete", "ci", "-n", "t")[1] == 'serviceaccount "ci" deleted\n'
    assert [c.request for c in gateway.calls] == [
        pb.CreateServiceAccountRequest(namespace="t", name="ci"),
        pb.ListServiceAccountsRequest(all_namespaces=True),
        pb.DeleteServiceAccountRequest(namespace="t", name="ci"),
    ]


# --------------------------------------------------------------------------- auth can-i


@pytest.mark.parametrize(("allowed", "answer", "exit_code"), [(True, "yes", 0), (False, "no", 1)])
def test_can_i(gateway: FakeGateway, capsys, allowed: bool, answer: str, exit_code: int) -> None:
    gateway.reply("CheckAccess", pb.CheckAccessResponse(allowed=allowed, reasons=["p1"], policy_set_hash="h"))
    assert run(capsys, "auth", "can-i", "DeleteServiceAccount", "sa/ci", "-n", "t") == (
        exit_code,
        f"{answer}\n",
        "",
    )
    assert gateway.only_call().request == pb.CheckAccessRequest(
        action="DeleteServiceAccount", kind="service_account", namespace="t", name="ci"
    )


def test_can_i_json_and_bare_action(gateway: FakeGateway, capsys) -> None:
    gateway.reply(
        "CheckAccess", pb.CheckAccessResponse(allowed=True, reasons=["platform.admin"], policy_set_hash="h")
    )
    code, out, _ = run(capsys, "-o", "json", "auth", "can-i", "ListSandboxes", "-A")
    assert code == 0
    assert json.loads(out) == {"allowed": True, "reasons": ["platform.admin"], "policy_set_hash": "h"}
    assert gateway.only_call().request == pb.CheckAccessRequest(action="ListSandboxes", all_namespaces=True)


def test_can_i_unknown_kind_is_a_usage_error(gateway: FakeGateway, capsys) -> None:
    code, _, err = run(capsys, "auth", "can-i", "GetSandbox", "pods/x")
    assert code == 2 and err.startswith("error: unknown resource kind 'pods'")
    assert gateway.calls == []
