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

Then the median of ours at a 10x larger world. Run: ``python benchmarks/decisions.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the Polar twin lives with the tests

import casbin  # noqa: E402
import cedarpy  # noqa: E402

from openshell_authz import (  # noqa: E402
    Authorizer,
    GlobalRole,
    Membership,
    Namespace,
    NamespaceRole,
    Request,
    Sandbox,
    UserPrincipal,
)
from openshell_authz._entities import entities_json, entity_uid  # noqa: E402
from tests.authz.polar_twin import PolarTwin  # noqa: E402

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


def measure(fn: Callable[[int], object], n: int, warmup: int) -> tuple[float, float]:
    """(median, p99) in microseconds of ``fn(i)`` over ``n`` timed calls."""
    for i in range(warmup):
        fn(i)
    samples = []
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        fn(i)
        samples.append(clock() - t0)
    samples.sort()
    return statistics.median(samples) / 1000, samples[int(len(samples) * 0.99)] / 1000


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


def run(scale: int, n: int, warmup: int, *, compare: bool) -> dict[str, tuple[float, float]]:
    t0 = time.perf_counter()
    store = build_store(1000 * scale, 10_000 * scale, 100_000 * scale)
    pairs = typical_requests(store, 2000)
    print(f"world x{scale}: {len(store.namespaces):,} namespaces, {store.memberships:,} memberships, "
          f"{len(store.sandboxes):,} sandboxes (built in {time.perf_counter() - t0:.1f} s)")
    authz = Authorizer.from_directory(REPO / "policies")
    k = len(pairs)

    def ours(i: int) -> object:
        uid, sid = pairs[i % k]
        response = authz.check(Request(store.users[uid], ACTION, store.sandboxes[sid]))
        assert response.allowed
        return response

    results = {"ours: Authorizer.check": measure(ours, n, warmup)}
    if not compare:
        return results

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

    results["(a) raw cedarpy, pre-built Entities"] = measure(raw, n, warmup)
    results["(a') raw cedarpy + schema"] = measure(raw_schema, n, warmup)
    results["(b) oso (Polar twin)"] = measure(oso, max(n // 5, 200), warmup // 5)
    results["(c) pycasbin RBAC with domains"] = measure(pycasbin, n, warmup)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="timed calls per contender")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--skip-large", action="store_true", help="skip the 10x world")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)

    results = run(1, args.n, args.warmup, compare=True)
    base = results["ours: Authorizer.check"][0]
    raw = results["(a) raw cedarpy, pre-built Entities"][0]
    width = max(len(name) for name in results)
    print(f"\n{'contender'.ljust(width)}  {'median µs':>10}  {'p99 µs':>9}  {'/ raw':>6}  {'ours /':>7}")
    for name, (median, p99) in results.items():
        print(f"{name.ljust(width)}  {median:10.1f}  {p99:9.1f}  {median / raw:6.2f}  {base / median:7.2f}")
    print("('/ raw' = median over (a); 'ours /' = our median over this one: below 1 means ours is faster)")
    figures = {name: {"median_us": m, "p99_us": p} for name, (m, p) in results.items()}
    if not args.skip_large:
        large = run(10, args.n, args.warmup, compare=False)
        median, p99 = large["ours: Authorizer.check"]
        print(f"ours at 10x world: median {median:.1f} µs, p99 {p99:.1f} µs ({median / base:.2f}x the 1x median)")
        figures["ours at 10x world"] = {"median_us": median, "p99_us": p99}
    if args.json:
        print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
