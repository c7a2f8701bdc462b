# The OpenShell role model (SPEC.md §3, §4) encoded a second time, in Polar, for oso.
#
# Test-only: property tests ask this twin and the Cedar policies the same questions
# on random worlds and require the same answers. Structure mirrors Cedar's
# semantics: an allow needs a permit, no forbid, and a resource of the kind the
# action applies to. Facts come from the Python mirror classes registered by
# tests/authz/polar_twin.py (User, ServiceAccountActor, Supervisor, Namespace,
# Sandbox, Provider, ServiceAccount, Gateway, Context, Limits, Target).

allow(actor, action: String, target: Target) if
    target_kind(action, target.resource.kind) and
    permitted(actor, action, target.resource, target.context) and
    not forbidden(actor, action, target.resource, target.context);

# ------------------------------------------------------------------ what each action targets

target_kind("CreateNamespace", "gateway");
target_kind(action, "namespace") if
    action in ["DeleteNamespace", "GetNamespace", "UpdateNamespace", "ListNamespaces", "AddMember",
               "RemoveMember", "CreateServiceAccount", "CreateSandbox", "CreateProvider"];
target_kind(action, kind) if list_action(action) and kind in ["namespace", "gateway"];
target_kind(action, "service_account") if action in ["DeleteServiceAccount", "IssueServiceAccountToken"];
target_kind(action, "sandbox") if
    action in ["DeleteSandbox", "ExecSandbox", "GetSandboxLogs", "GetSandboxPolicy", "GetSandbox",
               "AttachProvider", "DetachProvider", "GetSandboxConfig", "PushSandboxLogs",
               "RefreshSandboxToken", "GetSandboxProviderEnvironment"];
target_kind(action, "provider") if
    action in ["UpdateProvider", "DeleteProvider", "GetProvider", "GetSandboxProviderEnvironment"];
target_kind(action, "gateway") if
    action in ["GetGatewayConfig", "UpdateGatewayConfig", "WhoAmI", "CheckAccess"];

# ------------------------------------------------------------------ action families

list_action(action) if
    action in ["ListMembers", "ListServiceAccounts", "ListSandboxes", "ListProviders", "ListAuditEvents"];
create_action(action) if action in ["AddMember", "CreateServiceAccount", "CreateSandbox", "CreateProvider"];
supervisor_action(action) if
    action in ["GetSandboxConfig", "GetSandboxProviderEnvironment", "PushSandboxLogs", "RefreshSandboxToken"];
self_service(action) if action in ["WhoAmI", "CheckAccess", "GetGatewayConfig"];
read_action(action) if
    action in ["GetNamespace", "ListNamespaces", "ListMembers", "ListServiceAccounts", "GetSandbox",
               "ListSandboxes", "GetSandboxLogs", "GetSandboxPolicy", "GetProvider", "ListProviders",
               "ListAuditEvents"];
sandbox_work(action) if
    action in ["GetNamespace", "ListNamespaces", "CreateSandbox", "DeleteSandbox", "GetSandbox",
               "ListSandboxes", "ExecSandbox", "GetSandboxLogs", "GetSandboxPolicy", "GetProvider",
               "ListProviders", "AttachProvider", "DetachProvider"];
user_action(action) if sandbox_work(action) or action in ["ListMembers", "ListServiceAccounts"];
admin_action(action) if
    user_action(action) or
    action in ["AddMember", "RemoveMember", "CreateServiceAccount", "DeleteServiceAccount",
               "IssueServiceAccountToken", "CreateProvider", "UpdateProvider", "DeleteProvider",
               "ListAuditEvents"];

# ------------------------------------------------------------------ where a resource lives

ns_of(r: Namespace, ns) if ns = r.id;
ns_of(r: Sandbox, ns) if ns = r.namespace.id;
ns_of(r: Provider, ns) if ns = r.namespace.id;
ns_of(r: ServiceAccount, ns) if ns = r.namespace.id;

holds(actor: User, "namespace_admin", r) if ns_of(r, ns) and ns in actor.admin_of;
holds(actor: User, "user", r) if ns_of(r, ns) and ns in actor.user_of;
holds(actor: User, "auditor", r) if ns_of(r, ns) and ns in actor.auditor_of;

global_role(actor: User, role) if role in actor.global_roles;

# ------------------------------------------------------------------ permits

permitted(actor: User, action, _r, _c) if global_role(actor, "platform_admin") and not supervisor_action(action);
permitted(actor: User, action, _r, _c) if global_role(actor, "auditor") and read_action(action);
permitted(_actor: User, action, _r, _c) if self_service(action);
permitted(_actor: ServiceAccountActor, action, _r, _c) if self_service(action);

permitted(actor: User, action, r, _c) if admin_action(action) and holds(actor, "namespace_admin", r);
permitted(actor: User, "UpdateNamespace", r, c) if
    holds(actor, "namespace_admin", r) and not c.changes_ceiling and not c.changes_labels;
permitted(actor: User, action, r, _c) if user_action(action) and holds(actor, "user", r);
permitted(actor: User, action, r, _c) if read_action(action) and holds(actor, "auditor", r);

permitted(actor: ServiceAccountActor, action, r, _c) if
    sandbox_work(action) and ns_of(r, ns) and ns = actor.namespace_id;

permitted(actor: Supervisor, action, r: Sandbox, _c) if
    action in ["GetSandbox", "GetSandboxConfig", "GetSandboxProviderEnvironment", "PushSandboxLogs",
               "RefreshSandboxToken"] and
    r.id = actor.sandbox.id;
permitted(actor: Supervisor, "GetSandboxProviderEnvironment", r: Provider, _c) if
    attached_here(actor, r);

attached_here(actor: Supervisor, r: Provider) if
    r.id in actor.sandbox.provider_ids and r.namespace.id = actor.sandbox.namespace.id;

# ------------------------------------------------------------------ forbids (no permit lifts them)

forbidden(_a, action, r: Namespace, _c) if create_action(action) and r.phase = "Terminating";
forbidden(_a, action, r, _c) if
    action in ["IssueServiceAccountToken", "AttachProvider"] and r.namespace.phase = "Terminating";
forbidden(_a, "DeleteNamespace", r, _c) if r.name = "default";

forbidden(actor, "GetSandboxProviderEnvironment", r, _c) if not credentials_ok(actor, r);
credentials_ok(actor: Supervisor, r: Sandbox) if r.id = actor.sandbox.id;
credentials_ok(actor: Supervisor, r: Provider) if attached_here(actor, r);

forbidden(_a, "AttachProvider", r, c) if c.provider.namespace.id != r.namespace.id;

forbidden(actor, action, r, c) if
    list_action(action) and (c.all_namespaces or r.kind = "gateway") and not any_global_role(actor);
any_global_role(actor: User) if global_role(actor, "platform_admin") or global_role(actor, "auditor");

forbidden(actor, action, _r, c) if
    action in ["AddMember", "RemoveMember"] and
    (c.role = "namespace_admin" or c.previous_role = "namespace_admin") and
    not global_role(actor, "platform_admin");

forbidden(actor, "UpdateNamespace", r, c) if
    not global_role(actor, "platform_admin") and not within_ceiling(c.limits, r.ceiling);
within_ceiling(limits: Limits, ceiling: Limits) if
    within(limits.max_sandboxes, ceiling.max_sandboxes) and
    within(limits.max_gpus, ceiling.max_gpus) and
    within(limits.max_sandbox_lifetime_seconds, ceiling.max_sandbox_lifetime_seconds);
within(_limit, 0);
within(limit, ceiling) if ceiling != 0 and limit != 0 and limit <= ceiling;

forbidden(actor: ServiceAccountActor, action, r, _c) if not service_account_reaches(actor, action, r);
service_account_reaches(actor: ServiceAccountActor, _action, r) if ns_of(r, ns) and ns = actor.namespace_id;
service_account_reaches(_actor: ServiceAccountActor, action, _r: Gateway) if self_service(action);

forbidden(_a, "AddMember", _r, c) if c.member_kind = "service_account";

forbidden(_a: Supervisor, action, _r, _c) if not supervisor_action(action) and action != "GetSandbox";
forbidden(actor, action, _r, _c) if supervisor_action(action) and not actor matches Supervisor;
