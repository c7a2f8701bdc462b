"""``openshell``: the command-line client of the OpenShell gateway.

Global flags (accepted before or after the command):

  --gateway HOST:PORT   gateway address (env OPENSHELL_GATEWAY, default 127.0.0.1:50051;
                        ``unix:/path`` for a Unix socket)
  --token TOKEN         bearer token sent as ``authorization: Bearer ...`` (env OPENSHELL_TOKEN)
  -n, --namespace NS    namespace of the command (env OPENSHELL_NAMESPACE; empty = ``default``)
  -o, --output FORMAT   ``table`` (default) or ``json``
  --ca-file PATH        verify the gateway's TLS certificate against this CA bundle (enables TLS;
                        env OPENSHELL_CA_FILE); --cert-file/--key-file add a client certificate (mTLS)

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


def _global_flags(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: a flag given before the command is not reset by the command's own parser.
    group = parser.add_argument_group("global options")
    group.add_argument("--gateway", default=argparse.SUPPRESS, help="gateway address (env OPENSHELL_GATEWAY)")
    group.add_argument("--token", default=argparse.SUPPRESS, help="bearer token (env OPENSHELL_TOKEN)")
    group.add_argument(
        "-n", "--namespace", default=argparse.SUPPRESS, help="namespace (env OPENSHELL_NAMESPACE)"
    )
    group.add_argument("-o", "--output", choices=("table", "json"), default=argparse.SUPPRESS)
    group.add_argument(
        "--ca-file", default=argparse.SUPPRESS, help="CA bundle; enables TLS (env OPENSHELL_CA_FILE)"
    )
    group.add_argument("--cert-file", default=argparse.SUPPRESS, help="client certificate for mTLS")
    group.add_argument("--key-file", default=argparse.SUPPRESS, help="client key for mTLS")


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


def _setting(args: argparse.Namespace, flag: str, env: str, default: str = "") -> str:
    value = getattr(args, flag, None)
    return value if value is not None else os.environ.get(env, default)


def _read(path: str, flag: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {flag} {path}: {exc.strerror}") from exc


def _channel(args: argparse.Namespace) -> grpc.Channel:
    target = _setting(args, "gateway", "OPENSHELL_GATEWAY", DEFAULT_GATEWAY)
    ca_file = _setting(args, "ca_file", "OPENSHELL_CA_FILE")
    cert_file = _setting(args, "cert_file", "OPENSHELL_CLIENT_CERT")
    key_file = _setting(args, "key_file", "OPENSHELL_CLIENT_KEY")
    if bool(cert_file) != bool(key_file):
        raise CliError("--cert-file and --key-file go together")
    if not (ca_file or cert_file):
        return grpc.insecure_channel(target)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(ca_file, "--ca-file") if ca_file else None,
        private_key=_read(key_file, "--key-file") if key_file else None,
        certificate_chain=_read(cert_file, "--cert-file") if cert_file else None,
    )
    return grpc.secure_channel(target, credentials)


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
        token = _setting(args, "token", "OPENSHELL_TOKEN").strip()
        with _channel(args) as channel:
            ctx = Context(
                stub=openshell_pb2_grpc.OpenShellStub(channel),
                metadata=(("authorization", f"Bearer {token}"),) if token else (),
                namespace=_setting(args, "namespace", "OPENSHELL_NAMESPACE"),
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
