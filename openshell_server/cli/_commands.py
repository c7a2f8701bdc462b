"""The ``openshell`` commands: their arguments, the request each sends and how its answer is shown.

Every handler takes the :class:`Context` and the parsed arguments and returns an exit
code. Updates read the current object first so that flags change only what they name
(the API replaces a whole label set, profile or limit block) and so that the update
carries the resource version it was based on (compare-and-swap).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, BinaryIO, TextIO

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from openshell_server.api import openshell_pb2 as pb
from openshell_server.api import resources_pb2 as res
from openshell_server.cli._context import EXIT_NO, EXIT_OK, EXIT_PROTOCOL, CliError, Context
from openshell_server.cli._render import AUDIT_HEADER, audit_row, print_items, print_json, print_table

__all__ = ["parse_duration", "parse_key_values", "parse_time", "register_commands"]

Handler = Callable[[Context, argparse.Namespace], int]

_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_MAX_PAGE_SIZE = 1000  # the gateway caps page_size here
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_KINDS = {
    "gateway": "gateway",
    "namespace": "namespace",
    "namespaces": "namespace",
    "ns": "namespace",
    "sandbox": "sandbox",
    "sandboxes": "sandbox",
    "provider": "provider",
    "providers": "provider",
    "serviceaccount": "service_account",
    "serviceaccounts": "service_account",
    "sa": "service_account",
    "service_account": "service_account",
}


# --------------------------------------------------------------------------- argument parsing


def parse_duration(text: str) -> int:
    """Seconds from ``90``, ``90s``, ``15m``, ``2h`` or ``7d``."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (use e.g. 3600, 90s, 15m, 2h, 7d)")
    return int(match[1]) * _UNIT_SECONDS[match[2]]


def parse_key_values(items: Iterable[str] | None, flag: str, *, secret: bool = False) -> dict[str, str]:
    """``KEY=VALUE`` arguments as a dict. For a secret, a bare ``KEY`` takes the value of env var ``KEY``.

    Error messages never echo a secret argument (it may be the value itself).
    """
    result: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep and secret:
            if key not in os.environ:
                raise CliError(f"{flag} {key}: no '=VALUE' and no environment variable {key}")
            value = os.environ[key]
        elif not sep:
            raise CliError(f"{flag} expects KEY=VALUE, got {item!r}")
        if not key:
            raise CliError(f"{flag} expects KEY=VALUE with a non-empty KEY")
        result[key] = value
    return result


def parse_time(text: str) -> Timestamp:
    """An ISO 8601 date or date-time (``2024-05-01``, ``2024-05-01T12:00:00Z``, ``...+02:00``);
    without an offset it is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r} (use ISO 8601, e.g. 2024-05-01 or 2024-05-01T12:00:00Z)"
        ) from None
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _at_least_one(text: str) -> int:
    value = _positive_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


# --------------------------------------------------------------------------- output helpers


def _show(ctx: Context, response: Message, kind: type[Message], items: Iterable[Message]) -> int:
    if ctx.json:
        print_json(response, ctx.out)
    else:
        print_items(kind, list(items), ctx.out)
    return EXIT_OK


def _done(ctx: Context, response: Message, text: str) -> int:
    if ctx.json:
        print_json(response, ctx.out)
    else:
        print(text, file=ctx.out)
    return EXIT_OK


def _pairs(ctx: Context, response: Message, rows: list[tuple[str, str]]) -> int:
    if ctx.json:
        print_json(response, ctx.out)
    else:
        print_table(("FIELD", "VALUE"), rows, ctx.out)
    return EXIT_OK


def _all_pages(ctx: Context, rpc: str, request: Any, field: str, limit: int = 0) -> Any:
    """Follow next_page_token to the end (or until ``limit`` items, if set); one response holding them."""
    response = ctx.call(rpc, request)
    items = list(getattr(response, field))
    seen: set[str] = set()
    while response.next_page_token and not (limit and len(items) >= limit):
        if response.next_page_token in seen:
            raise CliError(f"{rpc}: the gateway repeated page token", exit_code=EXIT_PROTOCOL)
        seen.add(response.next_page_token)
        request.page_token = response.next_page_token
        response = ctx.call(rpc, request)
        items.extend(getattr(response, field))
    merged = type(response)()
    getattr(merged, field).extend(items[:limit] if limit else items)
    return merged


def _ns_display(ctx: Context) -> str:
    return ctx.namespace or "default"


# --------------------------------------------------------------------------- namespaces


def _limits(args: argparse.Namespace, prefix: str, base: res.Limits | None = None) -> res.Limits | None:
    """Limits from ``--{prefix}max-*`` flags over ``base``; None when no such flag was given."""
    given = {
        field: getattr(args, f"{prefix}{field}")
        for field in ("max_sandboxes", "max_gpus", "max_sandbox_lifetime_seconds")
        if getattr(args, f"{prefix}{field}") is not None
    }
    if not given:
        return None
    limits = res.Limits()
    if base is not None:
        limits.CopyFrom(base)
    for field, value in given.items():
        setattr(limits, field, value)
    return limits


def _namespace_create(ctx: Context, args: argparse.Namespace) -> int:
    request = pb.CreateNamespaceRequest(name=args.name, labels=parse_key_values(args.label, "--label"))
    if (quota := _limits(args, "")) is not None:
        request.quota.CopyFrom(quota)
    if (ceiling := _limits(args, "ceiling_")) is not None:
        request.ceiling.CopyFrom(ceiling)
    request.quota_mode = args.quota_mode or ""
    response = ctx.call("CreateNamespace", request)
    return _show(ctx, response, res.Namespace, [response.namespace])


def _namespace_get(ctx: Context, args: argparse.Namespace) -> int:
    response = ctx.call("GetNamespace", pb.GetNamespaceRequest(name=args.name))
    return _show(ctx, response, res.Namespace, [response.namespace])


def _namespace_list(ctx: Context, args: argparse.Namespace) -> int:
    request = pb.ListNamespacesRequest(label_selector=args.selector or "")
    response = _all_pages(ctx, "ListNamespaces", request, "namespaces")
    return _show(ctx, response, res.Namespace, response.namespaces)


def _namespace_delete(ctx: Context, args: argparse.Namespace) -> int:
    response = ctx.call("DeleteNamespace", pb.DeleteNamespaceRequest(name=args.name))
    return _done(ctx, response, f'namespace "{args.name}" deleted')


def _merged_labels(current: Any, args: argparse.Namespace) -> res.Labels | None:
    if not (args.label or args.remove_label):
        return None
    labels = dict(current)
    labels.update(parse_key_values(args.label, "--label"))
    for key in args.remove_label or ():
        labels.pop(key, None)
    return res.Labels(items=labels)


def _namespace_update(ctx: Context, args: argparse.Namespace) -> int:
    current = ctx.call("GetNamespace", pb.GetNamespaceRequest(name=args.name)).namespace
    request = pb.UpdateNamespaceRequest(
        name=args.name,
        resource_version=args.resource_version
        if args.resource_version is not None
        else current.meta.resource_version,
    )
    if (labels := _merged_labels(current.meta.labels, args)) is not None:
        request.labels.CopyFrom(labels)
    if (quota := _limits(args, "", current.quota)) is not None:
        request.quota.CopyFrom(quota)
    if (ceiling := _limits(args, "ceiling_", current.ceiling)) is not None:
        request.ceiling.CopyFrom(ceiling)
    if args.quota_mode:
        request.quota_mode = args.quota_mode
    response = ctx.call("UpdateNamespace", request)
    return _show(ctx, response, res.Namespace, [response.namespace])


# --------------------------------------------------------------------------- members


def _member_add(ctx: Context, args: argparse.Namespace) -> int:
    request = pb.AddMemberRequest(
        namespace=ctx.namespace, principal=args.principal, role=args.role, member_kind=args.kind or ""
    )
    response = ctx.call("AddMember", request)
    return _show(ctx, response, res.Member, [response.member])


def _member_remove(ctx: Context, args: argparse.Namespace) -> int:
    response = ctx.call(
        "RemoveMember", pb.RemoveMemberRequest(namespace=ctx.namespace, principal=args.principal)
    )
    return _done(ctx, response, f'member "{args.principal}" removed from namespace "{_ns_display(ctx)}"')


def _member_list(ctx: Context, args: argparse.Namespace) -> int:
    request = pb.ListMembersRequest(namespace=ctx.namespace, all_namespaces=args.all_namespaces)
    response = _all_pages(ctx, "ListMembers", request, "members")
    return _show(ctx, response, res.Member, response.members)


# --------------------------------------------------------------------------- service accounts


def _sa_create(ctx: Context, args: argparse.Namespace) -> int:
    request = pb.CreateServiceAccountRequest(
        namespace=ctx.namespace, name=args.name, labels=parse_key_values(args.label, "--label")
    )
    response = ctx.call("CreateServiceAccount", request)
    return _show(ctx, response, res.ServiceAccount, [response.service_account])


def _sa_delete(ctx: Context, args: argparse.Namespace) -> int:
    response = ctx.call(
        "DeleteServiceAccount", pb.DeleteServiceAccountRequest(namespace=ctx.namespace, name=args.name)
    )
    return _done(ctx, response, f'serviceaccount "{args.name}" deleted')


def _sa_list(ctx: Context, args: argparse.Namespace) -> int:
    request = pb.ListServiceAccountsRequest(
        namespace=ctx.namespace, all_namespaces=args.all_namespaces, label_selector=args.selector or ""
    )
    response = _all_pages(ctx, "ListServiceAccounts", request, "service_accounts")
    return _show(ctx, response, res.ServiceAccount, response.service_accounts)


def _sa_token(ctx: Context, args: argparse.Namespace) -> int:
    request = pb.IssueServiceAccountTokenRequest(
        namespace=ctx.namespace, name=args.name, ttl_seconds=args.ttl or 0
    )
    response = ctx.call("IssueServiceAccountToken", request)
    # The bare token, so that `OPENSHELL_TOKEN=$(openshell serviceaccount token NAME)` works.
    return _done(ctx, response, response.token)


# --------------------------------------------------------------------------- sandboxes


def _sandbox_create(ctx: Context, args: argparse.Namespace) -> int:
    request = pb.CreateSandboxRequest(
        namespace=ctx.namespace,
        name=args.name,
        labels=parse_key_values(args.label, "--label"),
        gpus=args.gpus,
        lifetime_seconds=args.lifetime or 0,
        providers=args.provider or [],
    )
    response = ctx.call("CreateSandbox", request)
    return _show(ctx, response, res.Sandbox, [response.sandbox])


def _sandbox_get(ctx: Context, args: argparse.Namespace) -> int:
    response = ctx.call("GetSandbox", pb.GetSandboxRequest(namespace=ctx.namespace, name=args.name))
    return _show(ctx, response, res.Sandbox, [response.sandbox])


def _sandbox_list(ctx: Context, args: argparse.Namespace) -> int:
    request = pb.ListSandboxesRequest(
        namespace=ctx.namespace, all_namespaces=args.all_namespaces, label_selector=args.selector or ""
    )
    response = _all_pages(ctx, "ListSandboxes", request, "sandboxes")
    return _show(ctx, response, res.Sandbox, response.sandboxes)


def _sandbox_delete(ctx: Context, args: argparse.Namespace) -> int:
    response = ctx.call("DeleteSandbox", pb.DeleteSandboxRequest(namespace=ctx.namespace, name=args.name))
    return _done(ctx, response, f'sandbox "{args.name}" deleted')


def _binary(stream: TextIO) -> BinaryIO | None:
    return getattr(stream, "buffer", None)


def _write(stream: TextIO, data: bytes) -> None:
    if (raw := _binary(stream)) is not None:
        stream.flush()
        raw.write(data)
        raw.flush()
    else:
        stream.write(data.decode(errors="replace"))
        stream.flush()


def _shell_exit_code(code: int) -> int:
    # A process killed by signal S is reported as -S; shells report 128+S.
    if 0 <= code <= 255:
        return code
    return 128 - code if -127 <= code < 0 else 255


def _sandbox_exec(ctx: Context, args: argparse.Namespace) -> int:
    command = [*args.argv, *args.after_dashes]
    if not command:
        raise CliError("sandbox exec needs a command: openshell sandbox exec NAME -- CMD [ARGS...]")
    request = pb.ExecSandboxRequest(
        namespace=ctx.namespace, name=args.name, argv=command, timeout_seconds=args.timeout or 0
    )
    if args.stdin:
        request.stdin = sys.stdin.buffer.read()
    for chunk in ctx.call("ExecSandbox", request):
        which = chunk.WhichOneof("output")
        if which == "stdout":
            _write(ctx.out, chunk.stdout)
        elif which == "stderr":
            _write(ctx.err, chunk.stderr)
        elif which == "exit_code":
            return _shell_exit_code(chunk.exit_code)
    raise CliError("the gateway ended the exec stream without an exit code", exit_code=EXIT_PROTOCOL)


def _sandbox_logs(ctx: Context, args: argparse.Namespace) -> int:
    request = pb.GetSandboxLogsRequest(namespace=ctx.namespace, name=args.name, tail_lines=args.tail or 0)
    response = ctx.call("GetSandboxLogs", request)
    if ctx.json:
        print_json(response, ctx.out)
    else:
        for line in response.lines:
            print(line.text, file=ctx.out)
    return EXIT_OK


def _sandbox_policy(ctx: Context, args: argparse.Namespace) -> int:
    response = ctx.call(
        "GetSandboxPolicy", pb.GetSandboxPolicyRequest(namespace=ctx.namespace, name=args.name)
    )
    policy = response.policy
    return _pairs(
        ctx,
        response,
        [
            ("allow_endpoints", ",".join(policy.allow_endpoints) or "-"),
            ("deny_endpoints", ",".join(policy.deny_endpoints) or "-"),
            ("env", ",".join(sorted(policy.env)) or "-"),
            ("providers", ",".join(policy.providers) or "-"),
        ],
    )


# --------------------------------------------------------------------------- providers


def _provider_create(ctx: Context, args: argparse.Namespace) -> int:
    request = pb.CreateProviderRequest(
        namespace=ctx.namespace,
        name=args.name,
        type=args.type,
        profile=res.ProviderProfile(endpoints=args.endpoint or [], env=parse_key_values(args.env, "--env")),
        credentials=parse_key_values(args.credential, "--credential", secret=True),
        labels=parse_key_values(args.label, "--label"),
    )
    response = ctx.call("CreateProvider", request)
    return _show(ctx, response, res.Provider, [response.provider])


def _provider_get(ctx: Context, args: argparse.Namespace) -> int:
    response = ctx.call("GetProvider", pb.GetProviderRequest(namespace=ctx.namespace, name=args.name))
    return _show(ctx, response, res.Provider, [response.provider])


def _provider_list(ctx: Context, args: argparse.Namespace) -> int:
    if args.sandbox:
        if args.all_namespaces or args.selector:
            raise CliError("--sandbox lists one sandbox's providers: it takes no -A or -l")
        response = ctx.call(
            "ListSandboxProviders",
            pb.ListSandboxProvidersRequest(namespace=ctx.namespace, sandbox=args.sandbox),
        )
        return _show(ctx, response, res.Provider, response.providers)
    request = pb.ListProvidersRequest(
        namespace=ctx.namespace, all_namespaces=args.all_namespaces, label_selector=args.selector or ""
    )
    response = _all_pages(ctx, "ListProviders", request, "providers")
    return _show(ctx, response, res.Provider, response.providers)


def _provider_update(ctx: Context, args: argparse.Namespace) -> int:
    current = ctx.call("GetProvider", pb.GetProviderRequest(namespace=ctx.namespace, name=args.name)).provider
    request = pb.UpdateProviderRequest(
        namespace=ctx.namespace,
        name=args.name,
        resource_version=args.resource_version
        if args.resource_version is not None
        else current.meta.resource_version,
        credentials=parse_key_values(args.credential, "--credential", secret=True),
        remove_credentials=args.remove_credential or [],
    )
    if args.endpoint or args.remove_endpoint or args.env or args.remove_env:
        endpoints = [e for e in current.profile.endpoints if e not in (args.remove_endpoint or ())]
        endpoints += [e for e in args.endpoint or () if e not in endpoints]
        env = {k: v for k, v in current.profile.env.items() if k not in (args.remove_env or ())}
        env.update(parse_key_values(args.env, "--env"))
        request.profile.CopyFrom(res.ProviderProfile(endpoints=endpoints, env=env))
    if (labels := _merged_labels(current.meta.labels, args)) is not None:
        request.labels.CopyFrom(labels)
    response = ctx.call("UpdateProvider", request)
    return _show(ctx, response, res.Provider, [response.provider])


def _provider_delete(ctx: Context, args: argparse.Namespace) -> int:
    response = ctx.call("DeleteProvider", pb.DeleteProviderRequest(namespace=ctx.namespace, name=args.name))
    return _done(ctx, response, f'provider "{args.name}" deleted')


def _provider_attach(ctx: Context, args: argparse.Namespace) -> int:
    request = pb.AttachProviderRequest(
        namespace=ctx.namespace,
        sandbox=args.sandbox,
        provider=args.name,
        provider_namespace=args.provider_namespace or "",
    )
    response = ctx.call("AttachProvider", request)
    return _show(ctx, response, res.Sandbox, [response.sandbox])


def _provider_detach(ctx: Context, args: argparse.Namespace) -> int:
    request = pb.DetachProviderRequest(namespace=ctx.namespace, sandbox=args.sandbox, provider=args.name)
    response = ctx.call("DetachProvider", request)
    return _show(ctx, response, res.Sandbox, [response.sandbox])


# --------------------------------------------------------------------------- identity


def _whoami(ctx: Context, args: argparse.Namespace) -> int:
    response = ctx.call("WhoAmI", pb.WhoAmIRequest())
    memberships = ",".join(f"{m.namespace}={m.role}" for m in response.memberships)
    return _pairs(
        ctx,
        response,
        [
            ("principal", response.principal_id),
            ("kind", response.kind),
            ("issuer", response.issuer or "-"),
            ("global_roles", ",".join(response.global_roles) or "-"),
            ("memberships", memberships or "-"),
        ],
    )


def _can_i(ctx: Context, args: argparse.Namespace) -> int:
    kind_text, _, name = (args.resource or "").partition("/")
    kind = _KINDS.get(kind_text.lower()) if kind_text else ""
    if kind is None:
        raise CliError(
            f"unknown resource kind {kind_text!r} (use one of: {', '.join(sorted(set(_KINDS.values())))})"
        )
    request = pb.CheckAccessRequest(
        action=args.action, kind=kind, namespace=ctx.namespace, name=name, all_namespaces=args.all_namespaces
    )
    response = ctx.call("CheckAccess", request)
    if ctx.json:
        print_json(response, ctx.out)
    else:
        print("yes" if response.allowed else "no", file=ctx.out)
    return EXIT_OK if response.allowed else EXIT_NO


# --------------------------------------------------------------------------- audit


def _audit_list(ctx: Context, args: argparse.Namespace) -> int:
    since, until = args.since, args.until
    if since is not None and until is not None and since.ToDatetime() >= until.ToDatetime():
        raise CliError("--since must be earlier than --until")
    request = pb.ListAuditEventsRequest(
        namespace=ctx.namespace,
        all_namespaces=args.all_namespaces,
        principal=args.principal or "",
        operation=args.operation or "",
        outcome=args.outcome or "",
        since=since,
        until=until,
        page_size=min(args.limit, _MAX_PAGE_SIZE) if args.limit else 0,
    )
    response = _all_pages(ctx, "ListAuditEvents", request, "events", limit=args.limit or 0)
    try:
        events = [json.loads(text) for text in response.events]
    except json.JSONDecodeError as exc:
        raise CliError(f"the gateway sent an audit event that is not JSON: {exc}", EXIT_PROTOCOL) from None
    if not all(isinstance(event, dict) for event in events):
        raise CliError("the gateway sent an audit event that is not a JSON object", EXIT_PROTOCOL)
    if ctx.json:
        print(json.dumps(events, indent=2), file=ctx.out)
    else:
        print_table(AUDIT_HEADER, [audit_row(event) for event in events], ctx.out)
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def _group(subparsers: Any, name: str, help_text: str, aliases: list[str] | None = None) -> Any:
    parser = subparsers.add_parser(name, help=help_text, aliases=aliases or [])
    return parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")


def _leaf(group: Any, name: str, handler: Handler, common: argparse.ArgumentParser, help_text: str) -> Any:
    parser = group.add_parser(name, help=help_text, parents=[common])
    parser.set_defaults(handler=handler)
    return parser


def _list_flags(parser: argparse.ArgumentParser, all_namespaces: bool = True, selector: bool = True) -> None:
    if all_namespaces:
        parser.add_argument("-A", "--all-namespaces", action="store_true", help="list across every namespace")
    if selector:
        parser.add_argument("-l", "--selector", help="label selector, e.g. team=ml,tier=gpu")


def _label_flags(parser: argparse.ArgumentParser, removable: bool = False) -> None:
    parser.add_argument("--label", action="append", metavar="KEY=VALUE", help="label (repeatable)")
    if removable:
        parser.add_argument(
            "--remove-label", action="append", metavar="KEY", help="remove a label (repeatable)"
        )


def _limit_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quota-mode", choices=("hard", "soft"))
    for prefix, who in (("", "the namespace's limit"), ("ceiling-", "the ceiling (platform admin)")):
        dest = prefix.replace("-", "_")
        parser.add_argument(
            f"--{prefix}max-sandboxes",
            dest=f"{dest}max_sandboxes",
            type=_positive_int,
            help=f"{who}: concurrent sandboxes (0 = none)",
        )
        parser.add_argument(
            f"--{prefix}max-gpus", dest=f"{dest}max_gpus", type=_positive_int, help=f"{who}: GPUs (0 = none)"
        )
        parser.add_argument(
            f"--{prefix}max-lifetime",
            dest=f"{dest}max_sandbox_lifetime_seconds",
            type=parse_duration,
            help=f"{who}: sandbox lifetime, e.g. 8h (0 = none)",
        )


def _version_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--resource-version",
        type=int,
        help="update only if the object is still at this version (default: the one just read)",
    )


def register_commands(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add every ``openshell`` command to ``subparsers``; ``common`` carries the global flags."""
    ns = _group(subparsers, "namespace", "manage namespaces", ["ns"])
    p = _leaf(ns, "create", _namespace_create, common, "create a namespace")
    p.add_argument("name")
    _label_flags(p)
    _limit_flags(p)
    _leaf(ns, "get", _namespace_get, common, "show a namespace").add_argument("name")
    _list_flags(_leaf(ns, "list", _namespace_list, common, "list namespaces"), all_namespaces=False)
    _leaf(ns, "delete", _namespace_delete, common, "delete an (empty) namespace").add_argument("name")
    p = _leaf(ns, "update", _namespace_update, common, "change labels or quota")
    p.add_argument("name")
    _label_flags(p, removable=True)
    _limit_flags(p)
    _version_flag(p)

    members = _group(subparsers, "member", "manage namespace members")
    p = _leaf(members, "add", _member_add, common, "grant a principal a role in the namespace")
    p.add_argument("principal", help="principal id, e.g. https://issuer#alice")
    p.add_argument("--role", required=True, choices=("namespace_admin", "user", "auditor"))
    p.add_argument("--kind", choices=("user", "service_account"), help="member kind (default: user)")
    p = _leaf(members, "remove", _member_remove, common, "remove a principal's membership")
    p.add_argument("principal")
    _list_flags(_leaf(members, "list", _member_list, common, "list members"), selector=False)

    sa = _group(subparsers, "serviceaccount", "manage service accounts", ["sa"])
    p = _leaf(sa, "create", _sa_create, common, "create a service account")
    p.add_argument("name")
    _label_flags(p)
    _leaf(
        sa, "delete", _sa_delete, common, "delete a service account (its tokens stop working)"
    ).add_argument("name")
    _list_flags(_leaf(sa, "list", _sa_list, common, "list service accounts"))
    p = _leaf(sa, "token", _sa_token, common, "issue a token for a service account")
    p.add_argument("name")
    p.add_argument("--ttl", type=parse_duration, help="token lifetime, e.g. 1h (default: the gateway's)")

    sb = _group(subparsers, "sandbox", "manage sandboxes")
    p = _leaf(sb, "create", _sandbox_create, common, "create a sandbox")
    p.add_argument("name")
    p.add_argument("--gpus", type=_positive_int, default=0)
    p.add_argument("--lifetime", type=parse_duration, help="e.g. 2h (default: the namespace's maximum)")
    p.add_argument("--provider", action="append", metavar="NAME", help="attach a provider (repeatable)")
    _label_flags(p)
    _leaf(sb, "get", _sandbox_get, common, "show a sandbox").add_argument("name")
    _list_flags(_leaf(sb, "list", _sandbox_list, common, "list sandboxes"))
    _leaf(sb, "delete", _sandbox_delete, common, "delete a sandbox").add_argument("name")
    p = _leaf(sb, "exec", _sandbox_exec, common, "run a command: sandbox exec NAME -- CMD [ARGS...]")
    p.add_argument("--timeout", type=parse_duration, help="kill the command after this long")
    p.add_argument("-i", "--stdin", action="store_true", help="send this process's stdin to the command")
    p.add_argument("name")
    # main() splits the command line at the first "--": everything after it is the command.
    p.add_argument("argv", nargs="*", metavar="-- CMD [ARGS...]")
    p.set_defaults(takes_dashes=True)
    p = _leaf(sb, "logs", _sandbox_logs, common, "show a sandbox's logs")
    p.add_argument("name")
    p.add_argument("--tail", type=_positive_int, help="only the last N lines")
    _leaf(sb, "policy", _sandbox_policy, common, "show a sandbox's effective policy").add_argument("name")

    pv = _group(subparsers, "provider", "manage providers and their use by sandboxes")
    p = _leaf(pv, "create", _provider_create, common, "create a provider")
    p.add_argument("name")
    p.add_argument("--type", required=True)
    p.add_argument(
        "--credential",
        action="append",
        metavar="KEY[=VALUE]",
        help="write-only credential (repeatable); a bare KEY takes $KEY from the environment",
    )
    p.add_argument("--endpoint", action="append", metavar="HOST[:PORT]", help="network endpoint (repeatable)")
    p.add_argument("--env", action="append", metavar="KEY=VALUE", help="non-secret environment (repeatable)")
    _label_flags(p)
    _leaf(pv, "get", _provider_get, common, "show a provider (never its credentials)").add_argument("name")
    p = _leaf(pv, "list", _provider_list, common, "list providers (of a namespace, or of one sandbox)")
    _list_flags(p)
    p.add_argument("--sandbox", help="list the providers attached to this sandbox")
    p = _leaf(pv, "update", _provider_update, common, "change credentials, profile or labels")
    p.add_argument("name")
    p.add_argument(
        "--credential", action="append", metavar="KEY[=VALUE]", help="set a credential (repeatable)"
    )
    p.add_argument("--remove-credential", action="append", metavar="KEY")
    p.add_argument("--endpoint", action="append", metavar="HOST[:PORT]", help="add an endpoint (repeatable)")
    p.add_argument("--remove-endpoint", action="append", metavar="HOST[:PORT]")
    p.add_argument("--env", action="append", metavar="KEY=VALUE", help="set an environment variable")
    p.add_argument("--remove-env", action="append", metavar="KEY")
    _label_flags(p, removable=True)
    _version_flag(p)
    _leaf(pv, "delete", _provider_delete, common, "delete a provider").add_argument("name")
    p = _leaf(pv, "attach", _provider_attach, common, "attach a provider to a sandbox")
    p.add_argument("name", help="provider name")
    p.add_argument("--sandbox", required=True)
    p.add_argument("--provider-namespace", help="the provider's namespace (default: the sandbox's)")
    p = _leaf(pv, "detach", _provider_detach, common, "detach a provider from a sandbox")
    p.add_argument("name", help="provider name")
    p.add_argument("--sandbox", required=True)

    _leaf(subparsers, "whoami", _whoami, common, "show who the gateway thinks you are")
    auth = _group(subparsers, "auth", "inspect your access")
    p = _leaf(auth, "can-i", _can_i, common, "ask whether you may do ACTION (exit 0 = yes, 1 = no)")
    p.add_argument("action", help="Cedar action, e.g. CreateSandbox")
    p.add_argument("resource", nargs="?", help="KIND[/NAME], e.g. sandbox/train-1 or namespace/team-ml")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="ask about listing across namespaces")

    audit = _group(subparsers, "audit", "read the audit log")
    p = _leaf(audit, "list", _audit_list, common, "list audit events (newest first), filtered")
    _list_flags(p, selector=False)
    p.add_argument("--principal", help="only events by (or on behalf of) this principal id")
    p.add_argument("--operation", help="only this operation, e.g. CreateSandbox")
    p.add_argument("--outcome", choices=("allowed", "denied", "error"))
    p.add_argument(
        "--since", type=parse_time, metavar="ISO8601", help="from this time (inclusive; UTC if no offset)"
    )
    p.add_argument("--until", type=parse_time, metavar="ISO8601", help="before this time (exclusive)")
    p.add_argument("--limit", type=_at_least_one, metavar="N", help="show at most N events")
