"""Workstation mode with real local accounts: each account is ``unix:<name>`` from the kernel's peer
credentials, gets ``user-<name>`` on first contact, sees only its own sandboxes, and cannot become
another account by anything it sends."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from openshell_server.authn import AuthenticationError, Authenticator, SigningKeys, TokenMinter
from openshell_server.server import build_server
from openshell_server.settings import Settings
from openshell_server.transport import TransportError, personal_namespace

from .conftest import Account, Workstation


def _names(listing: dict) -> list[tuple[str, str]]:
    return sorted((s["meta"]["namespace"], s["meta"]["name"]) for s in listing["sandboxes"])


def test_socket_directory_and_sockets_are_reachable_by_every_account(workstation: Workstation) -> None:
    assert stat.S_IMODE(workstation.socket.parent.stat().st_mode) == 0o755
    for path in (workstation.socket, Path(f"{workstation.socket}.auth")):
        info = path.lstat()
        assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o666


def test_each_account_is_its_own_principal_with_its_own_namespace_and_sandboxes(
    workstation: Workstation, accounts: tuple[Account, Account]
) -> None:
    alice, bob = accounts
    for me in (alice, bob):
        who = workstation.json(me, "whoami")
        assert (who["principal_id"], who["kind"], who["global_roles"]) == (me.principal, "user", [])
        assert [(m["namespace"], m["role"]) for m in who["memberships"]] == [(me.namespace, "namespace_admin")]
        created = workstation.run(me, "sandbox", "create", f"box-{me.name}")  # no --namespace: my own
        assert created.returncode == 0, created.stderr

    for me, other in ((alice, bob), (bob, alice)):
        mine = [(me.namespace, f"box-{me.name}")]
        assert _names(workstation.json(me, "sandbox", "list")) == mine
        across = workstation.run(me, "sandbox", "list", "-A")  # the policies keep -A to global roles
        assert across.returncode == 17 and across.stderr.startswith("error: PERMISSION_DENIED"), across.stderr
        for verb in ("get", "delete"):
            result = workstation.run(me, "-n", other.namespace, "sandbox", verb, f"box-{other.name}")
            assert result.returncode == 15, result.stderr  # NOT_FOUND: the other namespace is invisible
            assert result.stderr.startswith("error: NOT_FOUND")
    # Nothing of either was touched by the other.
    assert _names(workstation.json(alice, "sandbox", "list")) == [(alice.namespace, f"box-{alice.name}")]
    assert _names(workstation.json(bob, "sandbox", "list")) == [(bob.namespace, f"box-{bob.name}")]


def test_root_is_platform_admin_and_sees_every_account(workstation: Workstation, accounts) -> None:
    alice, bob = accounts
    for me in accounts:
        workstation.run(me, "sandbox", "create", f"seen-{me.name}")
    who = workstation.json(None, "whoami")
    assert (who["principal_id"], who["global_roles"]) == ("unix:root", ["platform_admin"])
    everything = _names(workstation.json(None, "sandbox", "list", "-A"))
    assert {(alice.namespace, f"seen-{alice.name}"), (bob.namespace, f"seen-{bob.name}")} <= set(everything)


_FORGER = r"""
import base64, json, socket, sys
import grpc, jwt
from cryptography.hazmat.primitives.asymmetric import ec
from openshell_server.api import openshell_pb2 as api, openshell_pb2_grpc
from openshell_server.cli._broker import fetch_broker_token

sock, victim = sys.argv[3], sys.argv[4]
out = {}

def ask_broker(payload):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock + ".auth")
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        return json.loads(s.makefile().read())

out["broker_when_asked_for_victim"] = [
    ask_broker(p)["principal"] for p in (victim.encode() + b"\n", json.dumps({"user": victim, "uid": 0}).encode())
]
mine = fetch_broker_token(sock).token

def whoami(token, extra=()):
    md = list(extra) + ([("authorization", "Bearer " + token)] if token else [])
    with grpc.insecure_channel("unix:" + sock) as ch:
        try:
            stub = openshell_pb2_grpc.OpenShellStub(ch)
            return stub.WhoAmI(api.WhoAmIRequest(), metadata=md, timeout=10).principal_id
        except grpc.RpcError as e:
            return e.code().name

claims = ("x-openshell-user", victim), ("x-remote-user", "unix:" + victim), ("x-forwarded-user", victim)
out["no_token_claiming_victim"] = whoami("", claims)
out["own_token_claiming_victim"] = whoami(mine, claims)
header = jwt.get_unverified_header(mine)
payload = jwt.decode(mine, options={"verify_signature": False})
payload.update(sub="unix:" + victim, osns="user-" + victim)
own_key = ec.generate_private_key(ec.SECP256R1())
out["resigned_with_own_key"] = whoami(jwt.encode(payload, own_key, algorithm="ES256", headers={"kid": header["kid"]}))
out["alg_none"] = whoami(jwt.encode(payload, None, algorithm="none", headers={"kid": header["kid"]}))
h, _, sig = mine.split(".")
body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
out["payload_swapped_signature_kept"] = whoami(".".join((h, body, sig)))
print(json.dumps(out))
"""


def test_an_account_cannot_become_another_by_anything_it_sends(
    workstation: Workstation, accounts: tuple[Account, Account]
) -> None:
    alice, bob = accounts
    result = workstation.run(bob, "--code", _FORGER, str(workstation.socket), alice.name)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out == {
        "broker_when_asked_for_victim": [bob.principal, bob.principal],  # the broker reads nothing bob sends
        "no_token_claiming_victim": "UNAUTHENTICATED",  # and a token-less caller is nobody, never admin
        "own_token_claiming_victim": bob.principal,
        "resigned_with_own_key": "UNAUTHENTICATED",
        "alg_none": "UNAUTHENTICATED",
        "payload_swapped_signature_kept": "UNAUTHENTICATED",
    }
    # The root-owned data directory (signing keys) is out of bob's reach.
    keys = workstation.gateway.data_dir / "keys"
    probe = workstation.run(bob, "--code", f"open({str(next(keys.glob('*.pem')))!r}).read()")
    assert probe.returncode != 0 and "PermissionError" in probe.stderr


def test_token_less_loopback_tcp_is_not_the_local_admin_on_a_workstation(workstation: Workstation) -> None:
    result = workstation.run(None, "--gateway", f"127.0.0.1:{workstation.gateway.port}", "whoami")
    assert result.returncode == 26, result.stderr  # UNAUTHENTICATED
    assert result.stderr.startswith("error: UNAUTHENTICATED: no bearer token presented")


def test_a_namespace_name_collision_is_refused_not_merged(workstation: Workstation, make_account) -> None:
    carol: Account = make_account()
    made = workstation.run(None, "namespace", "create", carol.namespace)  # root takes the name first
    assert made.returncode == 0, made.stderr
    result = workstation.run(carol, "whoami")
    assert result.returncode == 26
    assert result.stderr == (
        f"error: identity broker: namespace {carol.namespace} already exists and was not created for "
        f"{carol.principal}; ask an administrator to rename your account or that namespace\n"
    )
    store = workstation.gateway.gateway.store
    ns = store.get_namespace_by_name(carol.namespace)
    assert [m.principal_id for m in store.list_memberships(ns.id)] == []


def test_a_second_gateway_on_the_same_socket_refuses_to_start(workstation: Workstation, tmp_path: Path) -> None:
    settings = Settings(listen="", data_dir=tmp_path / "d2", unix_socket=str(workstation.socket),
                        policy_reload_interval=0)  # fmt: skip
    with pytest.raises(SystemExit, match="another process is already listening on"):
        build_server(settings)
    assert workstation.socket.is_socket()  # the running gateway's socket is untouched


@pytest.mark.parametrize(
    ("user", "namespace"),
    [("alice", "user-alice"), ("Ann.B_c", "user-ann-b-c"), ("x" * 80, "user-" + "x" * 42), ("_a_", "user-a")],
)
def test_personal_namespace_is_a_dns1123_label(user: str, namespace: str) -> None:
    assert personal_namespace(user, "local") == namespace


def test_personal_namespace_needs_a_letter_or_digit() -> None:
    with pytest.raises(TransportError, match="no letters or digits"):
        personal_namespace("___", "local")


def test_user_tokens_carry_roles_as_facts_and_are_verified(tmp_path: Path) -> None:
    minter = TokenMinter(SigningKeys(tmp_path), "local")
    auth = Authenticator(None, minter)
    token, _ = minter.mint_user("root", "user-root", 60, global_roles=frozenset({"platform_admin"}))
    ident = auth.authenticate(token)
    assert (ident.kind, ident.principal_id, ident.global_roles) == ("user", "unix:root", frozenset({"platform_admin"}))
    other = TokenMinter(SigningKeys(tmp_path / "elsewhere"), "local")
    with pytest.raises(AuthenticationError):
        auth.authenticate(other.mint_user("root", "user-root", 60)[0])
    with pytest.raises(ValueError, match="unknown global roles"):
        minter.mint_user("x", "user-x", 60, global_roles=frozenset({"superuser"}))
    assert os.stat(tmp_path / "keys").st_mode & 0o077 == 0
