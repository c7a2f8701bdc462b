"""``openshell-authz``: the policy author's toolkit (SPEC §10).

validate, test, explain, matrix, diff and ``audit verify``. Exit status: 0 ok,
1 a test, validation or verification failed, 2 usage error. Every error is one
line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

from openshell_authz._diff import matrix_changes, replay
from openshell_authz._matrix import compute_matrix, format_matrix, matrix_json
from openshell_authz._policy_tests import WORLD_FILE, CaseFileError, build_context, load_world, run_policy_tests
from openshell_authz.authorizer import Authorizer, Request, Response, request_from_dict
from openshell_authz.errors import AuthzError, PolicyLoadError

__all__ = ["main"]

PROG = "openshell-authz"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _UsageError(Exception):
    """Bad command-line input (exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + message
        raise _UsageError(f"{message} (see {self.prog} --help)")


def _describe(request: Request) -> str:
    p = request.principal
    who = f"supervisor of sandbox {p.sandbox.id}" if p.kind == "supervisor" else f"{p.kind} {p.id}"
    res = request.resource
    ns = getattr(res, "namespace", None)
    where = f" in namespace {ns.name}" if ns is not None else ""
    return f"{who} {request.action} {res.kind} {res.id}{where}"


def _print_response(authz: Authorizer, response: Response) -> None:
    print(f"decision: {response.decision.value}")
    if not response.reasons:
        print("determined by: no policy (nothing permits it)" if not response.allowed else "determined by: -")
    for pid in response.reasons:
        info = authz.policies.get(pid)
        where = f" ({info['file']}:{info['line']}, {info['effect']})" if info else ""
        print(f"determined by: {pid}{where}")
    for err in response.errors:
        print(f"error: {err}")
    print(f"policy set: {response.policy_hash}")


# --------------------------------------------------------------------------- commands


def _cmd_validate(args: argparse.Namespace) -> int:
    authz = Authorizer.from_directory(args.dir)
    print(f"ok: {len(authz.policies)} policies, {len(authz.actions)} actions, policy set {authz.policy_hash}")
    return EXIT_OK


def _cmd_test(args: argparse.Namespace) -> int:
    report = run_policy_tests(args.dir)
    for err in report.file_errors:
        print(f"ERROR {err}")
    for failure in report.failures:
        print(failure.describe())
    print(f"{report.passed} passed, {report.failed} failed" + (
        f", {len(report.file_errors)} bad test files" if report.file_errors else ""))
    if report.total == 0 and not report.file_errors:
        print(f"{PROG}: error: no test cases in {Path(args.dir) / 'tests'}/*.yaml", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if report.ok else EXIT_FAILED


def _cmd_explain(args: argparse.Namespace) -> int:
    authz = Authorizer.from_directory(args.dir)
    if args.request:
        if args.principal or args.action or args.resource or args.context:
            raise _UsageError("--request replaces --principal/--action/--resource/--context; give one form")
        try:
            data = json.loads(Path(args.request).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise _UsageError(f"cannot read request {args.request}: {exc}") from exc
        try:
            request = request_from_dict(data)
        except ValueError as exc:
            raise _UsageError(f"{args.request}: {exc}") from exc
    else:
        if not (args.principal and args.action and args.resource):
            raise _UsageError("give --principal, --action and --resource (or --request FILE.json)")
        world_path = Path(args.world) if args.world else Path(args.dir) / "tests" / WORLD_FILE
        try:
            spec = yaml.safe_load(world_path.read_text(encoding="utf-8")) or {}
            context = json.loads(args.context) if args.context else None
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise _UsageError(f"cannot read {'--context' if args.context else world_path}: {exc}") from exc
        try:
            world = load_world(spec.get("world") or {})
            request = Request(
                world.principal(args.principal),
                args.action,
                world.resource(args.resource),
                build_context(world, args.action, context),
            )
        except CaseFileError as exc:
            raise _UsageError(str(exc)) from exc
    print(f"request: {_describe(request)}")
    _print_response(authz, authz.check(request))
    return EXIT_OK


def _cmd_matrix(args: argparse.Namespace) -> int:
    cells = compute_matrix(Authorizer.from_directory(args.dir))
    print(matrix_json(cells) if args.json else format_matrix(cells))
    return EXIT_OK


def _cmd_diff(args: argparse.Namespace) -> int:
    old, new = Authorizer.from_directory(args.old), Authorizer.from_directory(args.new)
    cells = matrix_changes(old, new)
    print(f"matrix: {len(cells)} cells change")
    for c in cells:
        print(f"  {c.role} {c.action} {c.scope}: {_verdict(c.old)} -> {_verdict(c.new)}")
    changed = bool(cells)
    if args.requests:
        events = _read_events(Path(args.requests))
        report = replay(old, new, events)
        print(f"requests: {report.replayed} replayed, {report.skipped} events without a recorded request, "
              f"{len(report.changes)} decisions change")
        for ch in report.changes:
            why = ", ".join(ch.new_reasons) or "no policy permits it"
            print(f"  event {ch.index}: {_describe(ch.request)}: {_verdict(ch.old)} -> {_verdict(ch.new)} ({why})")
        changed = changed or bool(report.changes)
    return EXIT_FAILED if args.exit_code and changed else EXIT_OK


def _read_events(path: Path) -> list[dict[str, Any]]:
    from openshell_authz._audit_chain import chain_files, iter_events

    files = chain_files(path) or [path]
    try:
        return list(iter_events(files))
    except OSError as exc:
        raise _UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise _UsageError(f"{path}: not an audit log (a line is not JSON: {exc})") from exc


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    from openshell_authz._audit_chain import chain_files, verify_chain

    path = Path(args.file)
    files = chain_files(path)
    if not files:
        raise _UsageError(f"no audit file at {path}")
    report = verify_chain(files)
    if report.ok:
        print(f"ok: {report.lines_checked} lines in {len(files)} files, chain intact (last hash {report.last_hash})")
        return EXIT_OK
    where = f"{report.first_bad_file}:{report.first_bad_line}" if report.first_bad_line else f"{report.first_bad_file}"
    print(f"{where}: {report.reason} ({report.lines_checked} lines verified before it)", file=sys.stderr)
    return EXIT_FAILED


def _verdict(allowed: bool) -> str:
    return "allow" if allowed else "deny"


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Check, test and compare OpenShell Cedar policy directories.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("validate", help="parse and validate every policy against the schema")
    p.add_argument("dir")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("test", help="run DIR/tests/*.yaml")
    p.add_argument("dir")
    p.set_defaults(func=_cmd_test)

    p = sub.add_parser("explain", help="decide one request and name the policies that determined it")
    p.add_argument("dir")
    p.add_argument("--principal", help="user:<key>, service_account:<key> or supervisor:<sandbox> of the world")
    p.add_argument("--action", help="Cedar action name, e.g. GetSandbox")
    p.add_argument("--resource", help="gateway, namespace:<key>, sandbox:<key>, provider:<key>, ...")
    p.add_argument("--context", help='context as JSON, e.g. \'{"all_namespaces": true}\'')
    p.add_argument("--world", help=f"world YAML (default DIR/tests/{WORLD_FILE})")
    p.add_argument("--request", help="a recorded request (request_to_dict JSON) instead of the flags above")
    p.set_defaults(func=_cmd_explain)

    p = sub.add_parser("matrix", help="role x action x (own/other) access matrix of the policies")
    p.add_argument("dir")
    p.add_argument("--json", action="store_true", help='JSON list of {"role","action","scope","allowed"}')
    p.set_defaults(func=_cmd_matrix)

    p = sub.add_parser("diff", help="decisions that change between two policy directories")
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--requests", help="audit log (JSON lines) whose recorded requests are replayed")
    p.add_argument("--exit-code", action="store_true", help="exit 1 when any decision changes")
    p.set_defaults(func=_cmd_diff)

    p = sub.add_parser("audit", help="audit log tools")
    audit = p.add_subparsers(dest="audit_command", required=True, parser_class=_Parser)
    v = audit.add_parser("verify", help="check the hash chain (rotated files included); exit 1 on a broken line")
    v.add_argument("file")
    v.set_defaults(func=_cmd_audit_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except _UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PolicyLoadError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_FAILED
    except AuthzError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
