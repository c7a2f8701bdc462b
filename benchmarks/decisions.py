"""Benchmark: latency of one typical sandbox decision, our full path against the alternatives.

World: 1,000 namespaces, 10,000 memberships, 100,000 sandboxes held as Python
objects the caller looks up by id (what a gateway's store hands over). The
request: a member execs a sandbox in one of its namespaces. Side by side, in one run:

* ours        ``Authorizer.check`` (model objects in, decision out; entities built per request)
* (a) raw     ``cedarpy.is_authorized`` on a pre-parsed PolicySet with pre-built ``cedarpy.Entities``
              and ``{"type", "id"}`` ids, no schema: Cedar's fastest form (the work ours must add
              on top is building entities and reading the answer)
* (a') +schema  the same with the schema passed, as ours does (request validation)
* (b) oso     the Polar twin (``policies/polar/openshell.polar``)
* (c) casbin  an RBAC-with-domains model of the same roles in pycasbin

Contenders are timed in alternating blocks (a load swing on the shared machine hits all
alike). "ours" is the steady state: the request set cycles and warm-up has seen it, as a
gateway's repeat callers are, so decisions come from the decision cache; "decision cache
off" evaluates every call (cached entity handles); "first sight" times each (principal,
sandbox) pair once, on a fresh Authorizer, so it also pays the entity parse. Then the median of ours at a 10x larger
world. Run: ``python benchmarks/decisions.py`` (``--quick``: a small world, a smoke run).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import casbin
import cedarpy
from _common import REPO, interleaved, print_table, summary_us

from openshell_authz import (
    Authorizer,
    GlobalRole,
    Membership,
    Namespace,
    NamespaceRole,
    Request,
    Sandbox,
    UserPrincipal,
)
from openshell_authz._engine import compile_directory
from openshell_authz._entities import entities_json, entity_uid
from tests.authz.polar_twin import PolarTwin

ACTION = "ExecSandbox"
MEMBERSHIPS_PER_USER = 4


@dataclass
class Store:
    namespaces: dict[str, Namespace]
    users: dict[str, UserPrincipal]
    sandboxes: dict[str, Sandbox]
    memberships: int


def build_store(n_namespaces: int, n_memberships: int, n_sandboxes: int, seed: int = 7) -> Store:
    rng = random.Random(seed)
    namespaces = {f"ns-{i}": Namespace(id=f"ns-{i}", name=f"team-{i}") for i in range(n_namespaces)}
    ns_list = list(namespaces.values())
    roles = [NamespaceRole.USER, NamespaceRole.USER, NamespaceRole.NAMESPACE_ADMIN, NamespaceRole.AUDITOR]
    users: dict[str, UserPrincipal] = {}
    for u in range(n_memberships // MEMBERSHIPS_PER_USER):
        chosen = rng.sample(ns_list, MEMBERSHIPS_PER_USER)
        uid = f"https://issuer.test#user-{u}"
        users[uid] = UserPrincipal(
            id=uid,
            issuer="https://issuer.test",
            memberships=tuple(Membership(namespace_id=ns.id, role=rng.choice(roles)) for ns in chosen),
            global_roles=frozenset({GlobalRole.AUDITOR}) if u % 500 == 0 else frozenset(),
        )
    sandboxes = {
        f"sb-{i}": Sandbox(id=f"sb-{i}", name=f"box-{i}", namespace=ns_list[i % n_namespaces])
        for i in range(n_sandboxes)
    }
    return Store(namespaces, users, sandboxes, len(users) * MEMBERSHIPS_PER_USER)


def typical_requests(store: Store, count: int, seed: int = 11) -> list[tuple[str, str]]:
    """(user id, sandbox id) pairs: a member working on a sandbox of one of its namespaces."""
    rng = random.Random(seed)
    by_ns: dict[str, list[str]] = {}
    for sb in store.sandboxes.values():
        by_ns.setdefault(sb.namespace.id, []).append(sb.id)
    users = list(store.users.values())
    out = []
    while len(out) < count:
        user = rng.choice(users)
        working = [m.namespace_id for m in user.memberships if m.role is not NamespaceRole.AUDITOR]
        if working and by_ns.get(ns := rng.choice(working)):
            out.append((user.id, rng.choice(by_ns[ns])))
    return out


CASBIN_MODEL = """
[request_definition]
r = sub, dom, obj, act
[policy_definition]
p = sub, dom, obj, act
[role_definition]
g = _, _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = g(r.sub, p.sub, r.dom) && (p.dom == "*" || r.dom == p.dom) && r.obj == p.obj && r.act == p.act
"""
_SANDBOX_ACTIONS = {
    "namespace_admin": ["CreateSandbox", "DeleteSandbox", "GetSandbox", "ExecSandbox", "GetSandboxLogs"],
    "user": ["CreateSandbox", "DeleteSandbox", "GetSandbox", "ExecSandbox", "GetSandboxLogs"],
    "auditor": ["GetSandbox", "GetSandboxLogs"],
    "platform_admin": ["CreateSandbox", "DeleteSandbox", "GetSandbox", "ExecSandbox", "GetSandboxLogs"],
    "global_auditor": ["GetSandbox", "GetSandboxLogs"],
}


def build_casbin(store: Store) -> casbin.Enforcer:
    """Roles per domain (namespace); global roles through a wildcard domain."""
    model = casbin.model.Model()
    model.load_model_from_text(CASBIN_MODEL)
    enforcer = casbin.Enforcer(model)
    enforcer.add_named_domain_matching_func("g", casbin.util.key_match)
    enforcer.add_policies([[role, "*", "sandbox", act] for role, acts in _SANDBOX_ACTIONS.items() for act in acts])
    grouping = []
    for user in store.users.values():
        grouping += [[user.id, str(m.role), m.namespace_id] for m in user.memberships]
        if GlobalRole.AUDITOR in user.global_roles:
            grouping.append([user.id, "global_auditor", "*"])
    enforcer.add_grouping_policies(grouping)
    return enforcer


def run(scale: float, n: int, *, compare: bool) -> dict[str, tuple[float, float]]:
    t0 = time.perf_counter()
    store = build_store(int(1000 * scale), int(10_000 * scale), int(100_000 * scale))
    pairs = typical_requests(store, 800)  # the working set: within every cache bound
    print(f"world x{scale:g}: {len(store.namespaces):,} namespaces, {store.memberships:,} memberships, "
          f"{len(store.sandboxes):,} sandboxes (built in {time.perf_counter() - t0:.1f} s)", flush=True)
    authz = Authorizer.from_directory(REPO / "policies")
    k = len(pairs)
    warmup = k  # every pair seen once: the steady state of repeat callers

    def ours(i: int) -> object:
        uid, sid = pairs[i % k]
        response = authz.check(Request(store.users[uid], ACTION, store.sandboxes[sid]))
        assert response.allowed
        return response

    # Every call evaluates (entity handles still cached): what a decision-cache miss costs.
    evaluating = Authorizer(dataclasses.replace(compile_directory(REPO / "policies"), decision_cache_size=0))

    def ours_evaluating(i: int) -> object:
        uid, sid = pairs[i % k]
        response = evaluating.check(Request(store.users[uid], ACTION, store.sandboxes[sid]))
        assert response.allowed
        return response

    sources = sorted((REPO / "policies").glob("*.cedar"))
    policy_set = cedarpy.PolicySet.from_str("\n".join(p.read_text() for p in sources))
    schema = cedarpy.Schema.from_str((REPO / "policies" / "schema.cedarschema").read_text())
    prebuilt = []
    for uid, sid in pairs:  # outside the timing: the raw call gets everything ready-made
        user, sb = store.users[uid], store.sandboxes[sid]
        request = {"principal": entity_uid(user), "action": {"type": "Action", "id": ACTION},
                   "resource": entity_uid(sb), "context": {}}
        prebuilt.append((request, cedarpy.Entities.from_json_str(entities_json([user, sb]))))

    def raw(i: int) -> object:
        request, entities = prebuilt[i % k]
        result = cedarpy.is_authorized(request, policy_set, entities)
        assert result.allowed
        return result

    def raw_schema(i: int) -> object:
        request, entities = prebuilt[i % k]
        result = cedarpy.is_authorized(request, policy_set, entities, schema=schema)
        assert result.allowed
        return result

    twin = PolarTwin()

    def oso(i: int) -> object:
        uid, sid = pairs[i % k]
        allowed = twin.allowed(Request(store.users[uid], ACTION, store.sandboxes[sid]))
        assert allowed
        return allowed

    enforcer = build_casbin(store)

    def pycasbin(i: int) -> object:
        uid, sid = pairs[i % k]
        allowed = enforcer.enforce(uid, store.sandboxes[sid].namespace.id, "sandbox", ACTION)
        assert allowed
        return allowed

    if not compare:
        both = interleaved({"ours": ours, "evaluating": ours_evaluating}, n, warmup=warmup)
        return {
            "ours: Authorizer.check": summary_us(both["ours"]),
            "ours, decision cache off": summary_us(both["evaluating"]),
        }
    samples = interleaved(
        {"ours": ours, "evaluating": ours_evaluating, "raw": raw, "raw_schema": raw_schema, "casbin": pycasbin},
        n,
        warmup=warmup,
    )
    oso_samples = interleaved({"oso": oso}, max(n // 5, 100), warmup=50)["oso"]
    fresh = typical_requests(store, n, seed=23)
    cold_authz = Authorizer.from_directory(REPO / "policies")

    def first_sight(i: int) -> object:
        uid, sid = fresh[i]
        return cold_authz.check(Request(store.users[uid], ACTION, store.sandboxes[sid]))

    cold = interleaved({"cold": first_sight}, min(n, len(fresh)), warmup=0)["cold"]
    return {
        "ours: Authorizer.check": summary_us(samples["ours"]),
        "ours, decision cache off": summary_us(samples["evaluating"]),
        "(a) raw cedarpy, pre-built Entities": summary_us(samples["raw"]),
        "(a') raw cedarpy + schema": summary_us(samples["raw_schema"]),
        "(b) oso (Polar twin)": summary_us(oso_samples),
        "(c) pycasbin RBAC with domains": summary_us(samples["casbin"]),
        "ours, first sight of each pair": summary_us(cold),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="timed calls per contender")
    parser.add_argument("--quick", action="store_true", help="small worlds and few calls: a smoke run")
    parser.add_argument("--skip-large", action="store_true", help="skip the 10x world")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)
    scale, n = (0.02, 300) if args.quick else (1.0, args.n)

    results = run(scale, n, compare=True)
    base = results["ours: Authorizer.check"][0]
    raw = results["(a) raw cedarpy, pre-built Entities"][0]
    figures = {name: {"median_us": m, "p99_us": p} for name, (m, p) in results.items()}
    rows = [[name, median, p99, median / raw, base / median] for name, (median, p99) in results.items()]
    if not args.skip_large:
        large = run(scale * 10, n, compare=False)
        for name, (median, p99) in large.items():
            small = results[name][0]
            label = f"{name} at 10x world ({median / small:.2f}x)"
            rows.append([label, median, p99, median / raw, base / median])
            figures[label] = {"median_us": median, "p99_us": p99, "growth": median / small}
    print_table(
        "decision latency (target: ours <= 1.25x raw; faster than oso and pycasbin; 10x world < +10%)",
        ["contender", "median µs", "p99 µs", "/ raw", "ours /"],
        rows,
        "('/ raw' = median over (a); 'ours /' = our median over this one: below 1 means ours is faster)",
    )
    if args.json:
        print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
