"""``openshell``: the command-line client of the OpenShell gateway.

Global flags (accepted before or after the command):

  --gateway HOST:PORT   gateway address (env OPENSHELL_GATEWAY; ``unix:/path`` for a Unix socket).
                        Default: the workstation socket (env OPENSHELL_UNIX_SOCKET, else
                        /run/openshell/gateway.sock) when it exists, else 127.0.0.1:50051
  --token TOKEN         bearer token sent as ``authorization: Bearer ...`` (env OPENSHELL_TOKEN).
                        On a workstation socket with no token, one is fetched from the identity
                        broker (``<socket>.auth``), which knows your account from the kernel
  -n, --namespace NS    namespace of the command (env OPENSHELL_NAMESPACE; empty = your
                        workstation namespace ``user-<you>``, else ``default``)
  -o, --output FORMAT   ``table`` (default) or ``json``
  --tls-ca PATH         verify the gateway's TLS certificate against this CA bundle (enables TLS;
                        env OPENSHELL_TLS_CA; old name --ca-file / OPENSHELL_CA_FILE)
  --tls-cert/--tls-key  client certificate and key for mTLS (env OPENSHELL_TLS_CERT/OPENSHELL_TLS_KEY;
                        old names --cert-file/--key-file, OPENSHELL_CLIENT_CERT/OPENSHELL_CLIENT_KEY)
  --insecure            allow sending a token in clear to a non-loopback address (refused otherwise)

Errors are one line on stderr, ``error: <GRPC_CODE>: <detail>`` for a refused call, and
the process exits with a code naming what went wrong:

  ====  ==========================================================
  0     success
  1     ``auth can-i`` answered "no"
  2     usage error (bad flags or arguments); nothing was sent
  3     protocol error (e.g. an exec stream ended without an exit code)
  10+N  the gateway answered with gRPC status code N:
        11 CANCELLED, 12 UNKNOWN, 13 INVALID_ARGUMENT, 14 DEADLINE_EXCEEDED,
        15 NOT_FOUND, 16 ALREADY_EXISTS, 17 PERMISSION_DENIED, 18 RESOURCE_EXHAUSTED,
        19 FAILED_PRECONDITION, 20 ABORTED, 21 OUT_OF_RANGE, 22 UNIMPLEMENTED,
        23 INTERNAL, 24 UNAVAILABLE, 25 DATA_LOSS, 26 UNAUTHENTICATED
  130   interrupted (Ctrl-C)
  ====  ==========================================================

``sandbox exec`` exits with the remote command's exit code instead (a negative code,
i.e. killed by signal S, becomes 128+S as in a shell); a failure of the call itself
still uses the codes above.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, cast

import grpc

from openshell_server.api import openshell_pb2_grpc
from openshell_server.cli._broker import (
    BROKER_SUFFIX,
    DEFAULT_UNIX_SOCKET,
    TransportError,
    fetch_broker_token,
    is_local_address,
)
from openshell_server.cli._commands import register_commands
from openshell_server.cli._context import (
    EXIT_NO,
    EXIT_OK,
    EXIT_PROTOCOL,
    EXIT_USAGE,
    CliError,
    Context,
    exit_code_for,
)

__all__ = [
    "DEFAULT_GATEWAY",
    "DEFAULT_UNIX_SOCKET",
    "EXIT_NO",
    "EXIT_OK",
    "EXIT_PROTOCOL",
    "EXIT_USAGE",
    "CliError",
    "Context",
    "build_parser",
    "exit_code_for",
    "main",
]

DEFAULT_GATEWAY = "127.0.0.1:50051"
_EXIT_INTERRUPTED = 130
# (flag, old flag, env, help); the old environment names are still read after the new ones.
_TLS_FLAGS = (
    ("--tls-ca", "--ca-file", "OPENSHELL_TLS_CA", "CA bundle the gateway's certificate must chain to; enables TLS"),
    ("--tls-cert", "--cert-file", "OPENSHELL_TLS_CERT", "client certificate for mTLS"),
    ("--tls-key", "--key-file", "OPENSHELL_TLS_KEY", "client private key for mTLS"),
)
_OLD_ENV = {"--tls-ca": "OPENSHELL_CA_FILE", "--tls-cert": "OPENSHELL_CLIENT_CERT", "--tls-key": "OPENSHELL_CLIENT_KEY"}


def _global_flags(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: a flag given before the command is not reset by the command's own parser.
    group = parser.add_argument_group("global options")
    group.add_argument("--gateway", default=argparse.SUPPRESS, help="gateway address (env OPENSHELL_GATEWAY)")
    group.add_argument("--token", default=argparse.SUPPRESS, help="bearer token (env OPENSHELL_TOKEN)")
    group.add_argument(
        "-n", "--namespace", default=argparse.SUPPRESS, help="namespace (env OPENSHELL_NAMESPACE)"
    )
    group.add_argument("-o", "--output", choices=("table", "json"), default=argparse.SUPPRESS)
    # The old names keep their own dest so that an error names the flag the user typed.
    for new, old, env, what in _TLS_FLAGS:
        group.add_argument(new, default=argparse.SUPPRESS, help=f"{what} (env {env})")
        group.add_argument(old, default=argparse.SUPPRESS, help=f"old name of {new}")
    group.add_argument(
        "--insecure", action="store_true", default=argparse.SUPPRESS,
        help="allow sending a token without TLS to a non-loopback address",
    )  # fmt: skip


class _Parser(argparse.ArgumentParser):
    # argparse prints the usage plus a message; the CLI's contract is a single error line.
    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    """The whole ``openshell`` argument parser (subparsers inherit :class:`_Parser`)."""
    common = _Parser(add_help=False)
    _global_flags(common)
    parser = _Parser(prog="openshell", description="Drive an OpenShell gateway.", parents=[common])
    register_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), common)
    return parser


def _setting(args: argparse.Namespace, flag: str, *envs: str, default: str = "") -> str:
    """The flag's value, else the first environment variable set, else ``default``."""
    value = getattr(args, flag, None)
    if value is not None:
        return str(value)
    for env in envs:
        if os.environ.get(env):
            return os.environ[env]
    return default


def _read(path: str, flag: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {flag} {path}: {exc.strerror}") from exc


def _target(args: argparse.Namespace) -> str:
    """``--gateway``, else the workstation socket if it exists, else the loopback default."""
    target = _setting(args, "gateway", "OPENSHELL_GATEWAY")
    if target:
        return target
    sock = os.environ.get("OPENSHELL_UNIX_SOCKET") or DEFAULT_UNIX_SOCKET
    return f"unix:{sock}" if Path(sock).is_socket() else DEFAULT_GATEWAY


def _tls_file(args: argparse.Namespace, index: int) -> tuple[str, str]:
    """``(path, the flag or variable it came from)`` of one TLS file; ``("", "")`` when not given."""
    new, old, env, _ = _TLS_FLAGS[index]
    for flag in (new, old):
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if value:
            return str(value), flag
    for name in (env, _OLD_ENV[new]):
        if os.environ.get(name):
            return os.environ[name], name
    return "", ""


def _channel(args: argparse.Namespace, target: str) -> tuple[grpc.Channel, bool]:
    """The channel to ``target`` and whether it is TLS."""
    (ca_file, ca_from), (cert_file, cert_from), (key_file, key_from) = (_tls_file(args, i) for i in range(3))
    if bool(cert_file) != bool(key_file):
        given = cert_from or key_from
        pair = "--cert-file and --key-file" if given.endswith("-file") else "--tls-cert and --tls-key"
        raise CliError(f"{pair} go together")
    if not (ca_file or cert_file):
        return grpc.insecure_channel(target), False
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(ca_file, ca_from) if ca_file else None,
        private_key=_read(key_file, key_from) if key_file else None,
        certificate_chain=_read(cert_file, cert_from) if cert_file else None,
    )
    return grpc.secure_channel(target, credentials), True


def _credentials(args: argparse.Namespace, target: str) -> tuple[str, str]:
    """``(token, default namespace)``: the given token, else the identity broker's on a workstation socket."""
    token = _setting(args, "token", "OPENSHELL_TOKEN").strip()
    if token or not target.startswith("unix:"):
        return token, ""
    sock = target.removeprefix("unix:").removeprefix("//")
    if not Path(f"{sock}{BROKER_SUFFIX}").exists():
        return "", ""  # a plain local socket: single-player mode, no broker
    try:
        grant = fetch_broker_token(sock)
    except TransportError as exc:
        raise CliError(str(exc), exit_code_for(grpc.StatusCode.UNAUTHENTICATED)) from None
    return grant.token, grant.namespace


def _parse(argv: list[str]) -> argparse.Namespace:
    # Split at the first "--" ourselves: argparse would otherwise read the flags of the
    # command run by `sandbox exec` (e.g. `-- ls -n`) as its own.
    split = argv.index("--") if "--" in argv else len(argv)
    args = build_parser().parse_args(argv[:split])
    args.after_dashes = argv[split + 1 :]
    if args.after_dashes and not getattr(args, "takes_dashes", False):
        raise CliError(f"unexpected arguments after '--': {' '.join(args.after_dashes)}")
    return args


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``openshell`` command; returns the process exit code (see the module docstring)."""
    out, err = sys.stdout, sys.stderr
    try:
        args = _parse(list(sys.argv[1:] if argv is None else argv))
        target = _target(args)
        token, own_namespace = _credentials(args, target)
        channel, tls = _channel(args, target)
        if token and not tls and not is_local_address(target) and not getattr(args, "insecure", False):
            channel.close()
            raise CliError(
                f"refusing to send a token in clear to {target}: use --tls-ca (TLS), or --insecure if you must"
            )
        with channel:
            ctx = Context(
                stub=openshell_pb2_grpc.OpenShellStub(channel),
                metadata=(("authorization", f"Bearer {token}"),) if token else (),
                namespace=_setting(args, "namespace", "OPENSHELL_NAMESPACE", default=own_namespace),
                output=getattr(args, "output", "table"),
                out=out,
                err=err,
            )
            return int(args.handler(ctx, args))
    except CliError as exc:
        print(f"error: {_one_line(str(exc))}", file=err)
        return exc.exit_code
    except grpc.RpcError as exc:
        call = cast(grpc.Call, exc)  # every RpcError a stub raises is also a Call, which has the status
        code = call.code()
        detail = _one_line(call.details() or "")
        print(f"error: {code.name}: {detail}" if detail else f"error: {code.name}", file=err)
        return exit_code_for(code)
    except SystemExit as exc:  # --help / --version from argparse
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except KeyboardInterrupt:
        print("error: interrupted", file=err)
        return _EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
