"""Sandboxes: create (quota-checked, atomic), get, list, delete, exec, logs, effective policy."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from openshell_authz import AttachContext, Request, Sandbox, SupervisorPrincipal
from openshell_server import facts, validation
from openshell_server import store as st
from openshell_server.api import openshell_pb2 as api
from openshell_server.api import resources_pb2 as pb
from openshell_server.drivers import ExecChunk, ExecResult, SandboxSpec
from openshell_server.handlers import convert
from openshell_server.handlers._common import list_scope, namespace_names
from openshell_server.interceptor import Call
from openshell_server.sandbox_policy import EffectivePolicy, effective_policy
from openshell_server.status import Denied

__all__ = [
    "create",
    "delete",
    "exec_",
    "get",
    "list_",
    "logs",
    "policy",
    "provider_environment",
    "sandbox_message",
    "sandbox_policy",
    "spec_for",
]

import grpc

log = logging.getLogger("openshell.gateway")


def sandbox_message(store: st.Store, rec: st.SandboxRecord, namespace_name: str) -> pb.Sandbox:
    names = [p.name for p in store.list_providers(ids=rec.provider_ids)] if rec.provider_ids else []
    return convert.sandbox(rec, namespace_name, names)


def sandbox_policy(store: st.Store, rec: st.SandboxRecord) -> EffectivePolicy:
    default = store.get_gateway_config().doc.get("default_sandbox_policy", {})
    providers = store.list_providers(ids=rec.provider_ids) if rec.provider_ids else []
    return effective_policy(default, [(p.name, p.profile) for p in providers if p.namespace_id == rec.namespace_id])


def provider_environment(call: Call, rec: st.SandboxRecord, ns_rec: st.NamespaceRecord) -> dict[str, str]:
    """The supervisor path: credentials of attached providers the policies release to this sandbox."""
    store = call.gateway.store
    ns = facts.namespace_model(ns_rec)
    supervisor = SupervisorPrincipal(sandbox=facts.sandbox_model(rec, ns))
    providers = store.list_providers(ids=rec.provider_ids) if rec.provider_ids else []
    ns_models = {ns_rec.id: ns}
    requests = []
    for p in providers:
        if p.namespace_id not in ns_models:
            ns_models[p.namespace_id] = facts.namespace_model(store.get_namespace_by_id(p.namespace_id))
        requests.append(
            Request(supervisor, "GetSandboxProviderEnvironment", facts.provider_model(p, ns_models[p.namespace_id]))
        )
    env: dict[str, str] = {}
    for p, decision in zip(providers, call.authorizer.check_batch(requests), strict=True):
        if decision.allowed:
            env.update(store.get_provider_credentials(p.id))
    return env


def spec_for(
    call: Call, rec: st.SandboxRecord, ns_rec: st.NamespaceRecord, *, token: str = "", with_env: bool = False
) -> SandboxSpec:
    """What the driver needs; provider credentials only when it must deliver them (create, exec)."""
    gw = call.gateway
    pol = sandbox_policy(gw.store, rec)
    return SandboxSpec(
        id=rec.id, name=rec.name, namespace=ns_rec.name, namespace_id=rec.namespace_id, gpus=rec.gpus,
        labels=dict(rec.labels), network_allowed=pol.network_allowed, supervisor_token=token,
        image=str(rec.spec.get("image", "")),
        env=provider_environment(call, rec, ns_rec) if with_env else {},
    )  # fmt: skip


def _soft_quota_violations(store: st.Store, namespace_id: str, gpus: int) -> list[st.QuotaViolation]:
    """What a create of ``gpus`` GPUs goes past in ``namespace_id``, from the committed state."""
    ns = store.get_namespace_by_id(namespace_id)
    if ns.quota_mode != st.QuotaMode.SOFT:
        return []  # a hard-mode excess never reaches commit
    limits = ns.effective_limits
    use = store.get_namespace_usage(namespace_id)
    out = []
    if limits.max_sandboxes and use.sandboxes + 1 > limits.max_sandboxes:
        out.append(st.QuotaViolation("max_sandboxes", limits.max_sandboxes, use.sandboxes, 1))
    if limits.max_gpus and gpus and use.gpus + gpus > limits.max_gpus:
        out.append(st.QuotaViolation("max_gpus", limits.max_gpus, use.gpus, gpus))
    return out


def _audit_create(call: Call, namespace_id: str, gpus: int) -> None:
    """Before-commit hook of CreateSandbox: the call's one audit event, noting a soft-quota excess.

    The event must be written inside the create's transaction (nothing commits
    unaudited), but the store reports a soft-mode excess only after commit. So
    the excess is recomputed here from the committed state, which is exactly
    what the store counted: this transaction holds the namespace's write lock
    (SQLite: the database lock; PostgreSQL: the namespace row), so no other
    create or limit change can commit meanwhile, and its own insert is not yet
    visible to the read. Hard mode never gets here with an excess.
    """
    if call.audited:
        return
    violations = _soft_quota_violations(call.gateway.store, namespace_id, gpus)
    if violations:
        call.audit_extra["quota"] = "exceeded"
        call.audit_extra["quota_violations"] = "; ".join(
            f"{v.limit_name}: limit {v.limit}, in use {v.current}, requested {v.requested}" for v in violations
        )
    call.gateway.audit_call(call, "allowed", "OK", "")
    call.audited = True  # the interceptor's own before-commit hook then writes nothing more


def create(call: Call, req: api.CreateSandboxRequest) -> api.CreateSandboxResponse:
    gw = call.gateway
    ns_rec = call.target.namespace_record
    name = validation.object_name(req.name)
    call.target.name = name
    validation.stored_int(req.gpus, "gpus")
    validation.stored_int(req.lifetime_seconds, "lifetime_seconds")
    labels = validation.labels(req.labels)
    # Each provider to attach is its own AttachProvider decision (same namespace only).
    provider_ids = []
    ns_model = call.target.namespace
    for i, pname in enumerate(req.providers):
        prov = gw.store.get_provider(ns_rec.id, validation.object_name(pname, field=f"providers[{i}]"))
        probe = Sandbox(id="\x00new", name=name, namespace=ns_model)  # the sandbox about to exist
        attach = AttachContext(provider=facts.provider_model(prov, ns_model))
        decision = call.authorizer.check(Request(call.principal, "AttachProvider", probe, attach))
        if not decision.allowed:
            who = call.identity.principal_id
            raise Denied(grpc.StatusCode.PERMISSION_DENIED, f'{who} may not attach provider "{pname}"')
        provider_ids.append(prov.id)
    gw.driver.check_ready()
    with st.before_commit(lambda: _audit_create(call, ns_rec.id, req.gpus)):
        result = gw.store.create_sandbox(
            ns_rec.id, name, created_by=call.identity.principal_id, gpus=req.gpus, labels=labels,
            provider_ids=provider_ids, lifetime_seconds=req.lifetime_seconds, spec={},
        )  # fmt: skip
    rec = result.sandbox
    if result.exceeded != (call.audit_extra.get("quota") == "exceeded"):
        log.error("sandbox %s: the audited soft-quota state disagrees with the store's %s", rec.id, result.violations)
    token, _ = gw.minter.mint_supervisor(rec.id, ns_rec.name, gw.settings.supervisor_token_ttl_seconds)
    try:
        observed = gw.driver.create(spec_for(call, rec, ns_rec, token=token, with_env=True))
    except Exception:
        gw.store.delete_sandbox(rec.id)  # the driver refused: leave nothing half-created
        raise
    rec = gw.store.update_sandbox(rec.id, phase=observed.phase.value, message=observed.message)
    return api.CreateSandboxResponse(sandbox=sandbox_message(gw.store, rec, ns_rec.name))


def get(call: Call, req: api.GetSandboxRequest) -> api.GetSandboxResponse:
    message = sandbox_message(call.gateway.store, call.target.record, call.target.namespace_name)
    return api.GetSandboxResponse(sandbox=message)


def list_(call: Call, req: api.ListSandboxesRequest) -> api.ListSandboxesResponse:
    store = call.gateway.store
    scope = list_scope(call, "ListSandboxes")
    if not scope.all and not scope.namespace_ids:
        return api.ListSandboxesResponse()
    page = store.list_sandboxes(
        None if scope.all else scope.namespace_ids,
        label_selector=validation.label_selector(req.label_selector),
        page_size=validation.page_size(req.page_size),
        page_token=req.page_token,
    )
    names = namespace_names(store, {r.namespace_id for r in page.items})
    all_provider_ids = {pid for r in page.items for pid in r.provider_ids}
    prov_names = {p.id: p.name for p in store.list_providers(ids=all_provider_ids)} if all_provider_ids else {}
    return api.ListSandboxesResponse(
        sandboxes=[
            convert.sandbox(
                r, names.get(r.namespace_id, ""), [prov_names[i] for i in r.provider_ids if i in prov_names]
            )
            for r in page.items
        ],
        next_page_token=page.next_page_token,
    )


def delete(call: Call, req: api.DeleteSandboxRequest) -> api.DeleteSandboxResponse:
    gw = call.gateway
    rec = call.target.record
    gw.store.update_sandbox(rec.id, phase="Deleting")
    gw.driver.delete(spec_for(call, rec, call.target.namespace_record))
    gw.store.delete_sandbox(rec.id)
    return api.DeleteSandboxResponse()


def exec_(call: Call, req: api.ExecSandboxRequest) -> Iterator[api.ExecSandboxResponse]:
    gw = call.gateway
    if not req.argv:
        raise validation.InvalidArgument("argv", "a command is required")
    if len(req.argv) > 1024 or sum(len(a) for a in req.argv) > 256 * 1024:
        raise validation.InvalidArgument("argv", "is too long")
    if any("\x00" in a for a in req.argv):
        raise validation.InvalidArgument("argv", "must not contain NUL characters")
    timeout = req.timeout_seconds or gw.settings.exec_default_timeout_seconds
    if timeout > gw.settings.exec_max_timeout_seconds:
        raise validation.InvalidArgument("timeout_seconds", f"must be at most {gw.settings.exec_max_timeout_seconds}")
    rec = call.target.record
    stdin = req.stdin if req.HasField("stdin") else None
    # Provider credentials reach the sandbox through the supervisor path (spec.env), never a user RPC.
    spec = spec_for(call, rec, call.target.namespace_record, with_env=True)
    for item in gw.driver.exec(spec, list(req.argv), env={}, timeout_s=float(timeout), stdin=stdin):
        if isinstance(item, ExecChunk):
            if item.stream == "stdout":
                yield api.ExecSandboxResponse(stdout=item.data)
            else:
                yield api.ExecSandboxResponse(stderr=item.data)
        elif isinstance(item, ExecResult):
            yield api.ExecSandboxResponse(exit_code=item.exit_code)


def logs(call: Call, req: api.GetSandboxLogsRequest) -> api.GetSandboxLogsResponse:
    if req.tail_lines < 0:
        raise validation.InvalidArgument("tail_lines", "must not be negative")
    store = call.gateway.store
    rec = call.target.record
    lines = store.read_sandbox_logs(rec.id, limit=100_000)
    if req.tail_lines:
        lines = lines[-req.tail_lines :]
    out = []
    for line in lines:
        msg = pb.LogLine(stream="system", text=line.line)
        msg.time.CopyFrom(convert.timestamp(line.at))
        out.append(msg)
    return api.GetSandboxLogsResponse(lines=out)


def policy_message(pol: EffectivePolicy) -> pb.SandboxPolicy:
    return pb.SandboxPolicy(
        allow_endpoints=list(pol.allow_endpoints), deny_endpoints=list(pol.deny_endpoints), env=dict(pol.env),
        providers=list(pol.providers),
    )  # fmt: skip


def policy(call: Call, req: api.GetSandboxPolicyRequest) -> api.GetSandboxPolicyResponse:
    return api.GetSandboxPolicyResponse(policy=policy_message(sandbox_policy(call.gateway.store, call.target.record)))
