"""No accidental exposure: the gateway's listener checks and the CLI's refusal to send tokens in clear.

The gateway runs as a real ``openshell-gateway`` process. A wildcard address is only ever
*bound*; every request goes to 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from openshell_server.api import openshell_pb2 as api
from openshell_server.api import openshell_pb2_grpc
from openshell_server.cli import main
from openshell_server.transport import is_local_address

_GATEWAY = [sys.executable, "-m", "openshell_server.main"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENSHELL_")}
    env.update(OPENSHELL_DATA_DIR=str(tmp_path / "data"), OPENSHELL_POLICY_RELOAD_INTERVAL="0", **extra)
    return env


def _log_lines(path: Path) -> list[dict[str, str]]:
    lines = []
    for line in path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def test_local_mode_gateway_refuses_a_non_loopback_address_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        _GATEWAY, env=_env(tmp_path, OPENSHELL_LISTEN="0.0.0.0:0"), capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("openshell-gateway: refusing to listen on 0.0.0.0:0")
    assert "OPENSHELL_ALLOW_INSECURE_LOCAL=1" in lines[0]
    assert result.stdout == ""


def test_insecure_override_warns_at_start_and_every_thousandth_request(tmp_path: Path) -> None:
    stderr_path = tmp_path / "gateway.log"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            _GATEWAY,
            env=_env(tmp_path, OPENSHELL_LISTEN="0.0.0.0:0", OPENSHELL_ALLOW_INSECURE_LOCAL="1"),
            stdout=subprocess.PIPE, stderr=stderr, text=True,
        )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("openshell-gateway listening on 0.0.0.0:"), first
        port = int(first.rsplit(":", 1)[1])

        def warnings() -> int:
            return sum(
                1 for e in _log_lines(stderr_path) if e["level"] == "warning" and "INSECURE" in e["message"]
            )

        assert warnings() == 1  # at start
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = openshell_pb2_grpc.OpenShellStub(channel)
            for _ in range(999):
                stub.WhoAmI(api.WhoAmIRequest(), timeout=10)
            assert warnings() == 1
            stub.WhoAmI(api.WhoAmIRequest(), timeout=10)  # the 1000th
        deadline = time.monotonic() + 10
        while warnings() < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # the log line is written by the gateway process; wait for it, not a fixed time
        assert warnings() == 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_nothing_to_listen_on_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(_GATEWAY, env=_env(tmp_path, OPENSHELL_LISTEN=""), capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "openshell-gateway: OPENSHELL_LISTEN is empty and OPENSHELL_UNIX_SOCKET is not set: nothing to listen on"
    )


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("127.0.0.1:50051", True), ("localhost:1", True), ("[::1]:1", True), ("dns:///127.0.0.2:1", True),
        ("unix:/run/openshell/gateway.sock", True), ("0.0.0.0:50051", False), ("[::]:1", False),
        ("10.0.0.1:1", False), ("gateway.example.com:443", False), ("127.0.0.1", False), ("", False),
    ],
)  # fmt: skip
def test_local_addresses(address: str, local: bool) -> None:
    assert is_local_address(address) is local


@pytest.mark.parametrize("via", ["flag", "env"])
def test_cli_refuses_to_send_a_token_in_clear_to_a_remote_address(via: str, monkeypatch, capsys) -> None:
    # 192.0.2.1 is TEST-NET-1: the refusal happens before any connection, so nothing is sent anywhere.
    for name in ("OPENSHELL_TOKEN", "OPENSHELL_TLS_CA", "OPENSHELL_CA_FILE", "OPENSHELL_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    argv = ["--gateway", "192.0.2.1:50051", "whoami"]
    if via == "flag":
        argv = ["--token", "secret-token", *argv]
    else:
        monkeypatch.setenv("OPENSHELL_TOKEN", "secret-token")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        "error: refusing to send a token in clear to 192.0.2.1:50051: use --tls-ca (TLS), or --insecure if you must\n"
    )
