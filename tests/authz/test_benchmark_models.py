"""The benchmark's contenders answer like the Authorizer, so its ratios compare like with like."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from openshell_authz import Authorizer, Request
from tests.authz.conftest import REPO


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_decisions", REPO / "benchmarks" / "decisions.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_casbin_model_agrees_with_cedar_on_sandbox_actions(authz: Authorizer) -> None:
    bench = _bench()
    store = bench.build_store(6, 24, 24)
    enforcer = bench.build_casbin(store)
    actions = sorted({a for acts in bench._SANDBOX_ACTIONS.values() for a in acts} - {"CreateSandbox"})
    checked = allowed = 0
    for user in store.users.values():
        for sandbox in store.sandboxes.values():
            for action in actions:
                cedar = authz.check(Request(user, action, sandbox)).allowed
                assert enforcer.enforce(user.id, sandbox.namespace.id, "sandbox", action) == cedar, (
                    user.id, action, sandbox.id)
                checked += 1
                allowed += cedar
    assert 0 < allowed < checked


def test_typical_requests_are_allowed_members_work(authz: Authorizer) -> None:
    bench = _bench()
    store = bench.build_store(20, 80, 200)
    for uid, sid in bench.typical_requests(store, 50):
        assert authz.check(Request(store.users[uid], bench.ACTION, store.sandboxes[sid])).allowed
