"""Arbitrary protobuf requests for every RPC against a live gateway, as admin, user and supervisor.

The gateway must never crash, never answer UNKNOWN or INTERNAL (or any code outside the
contract), and the store must stay consistent: the invariant checker runs after every
batch. Quick form: ~20 batches of 12 calls by three callers (~700 requests); the slow form
(marked slow: ``tox -e deep``) runs thousands on both store backends.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gateway.conftest import backend_database
from tests.gateway.harness import api, call_status, start_gateway
from tests.hardening._invariants import InvariantChecker
from tests.hardening._protofuzz import RPC_INPUTS, calls
from tests.hardening._world import World, build_world

S = grpc.StatusCode
# Every code a well-behaved gateway may answer a hostile request with.
CONTRACT = {
    S.OK, S.INVALID_ARGUMENT, S.NOT_FOUND, S.PERMISSION_DENIED, S.ALREADY_EXISTS, S.FAILED_PRECONDITION,
    S.RESOURCE_EXHAUSTED, S.ABORTED, S.OUT_OF_RANGE, S.UNAUTHENTICATED,
}  # fmt: skip


@dataclass
class Fuzzed:
    world: World
    checker: InvariantChecker
    callers: dict[str, object] = field(default_factory=dict)
    requests: int = 0
    codes: dict[str, int] = field(default_factory=dict)


def _fuzz_world(request: pytest.FixtureRequest, tmp: pytest.TempPathFactory, backend: str) -> Iterator[Fuzzed]:
    with (
        backend_database(backend) as url,
        start_gateway(tmp.mktemp("fuzz") / "data", database_url=url, exec_max_timeout_seconds=2) as gw,
    ):
        world = build_world(gw)
        checker = InvariantChecker(gw.gateway.settings.resolved_database_url())
        fz = Fuzzed(world, checker)
        fz.callers = {who: world.caller(who) for who in ("root", "alpha-user", "alpha-supervisor")}
        yield fz
        checker.close()
        print(f"\nfuzzed {fz.requests} requests on {backend}: {dict(sorted(fz.codes.items()))}")


@pytest.fixture(scope="module")
def fuzzed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    yield from _fuzz_world(request, tmp_path_factory, "sqlite")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fuzzed_deep(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    yield from _fuzz_world(request, tmp_path_factory, request.param)


def _words(fz: Fuzzed) -> list[str]:
    w = fz.world
    return [
        "alpha", "beta", "box", "creds", "spare", "robot", "user", "namespace_admin", "auditor", "hard", "soft",
        "sandbox", "provider", "namespace", "gateway", "service_account", "GetSandbox", "DeleteNamespace",
        *w.sandbox_ids.values(), w.gw.principal_id("alpha-user"), w.gw.principal_id("beta-admin"),
        "system:serviceaccount:alpha:robot", "echo", "true",
    ]  # fmt: skip


def _run_batch(fz: Fuzzed, batch: list[tuple[str, Message]]) -> None:
    for rpc, req in batch:
        for who, caller in fz.callers.items():
            code, details, _ = call_status(getattr(caller, rpc), req)
            fz.requests += 1
            fz.codes[code.name] = fz.codes.get(code.name, 0) + 1
            assert code in CONTRACT, f"{who} {rpc}: {code.name} {details}\n{req!r}"
            assert "\n" not in details and "Traceback" not in details, details
    assert fz.checker.violations() == []
    # The gateway is still up and answering normally.
    assert fz.callers["root"].WhoAmI(api.WhoAmIRequest()).principal_id


def _batches(fz: Fuzzed, size: int) -> st.SearchStrategy[list[tuple[str, Message]]]:
    return st.lists(calls(_words(fz)), min_size=1, max_size=size)


def test_every_rpc_has_a_request_strategy() -> None:
    from hypothesis import find

    quiet = settings(database=None, suppress_health_check=list(HealthCheck))
    for rpc, cls in RPC_INPUTS.items():
        wanted = (lambda c: c[1].ByteSize() > 0) if cls.DESCRIPTOR.fields else (lambda c: True)
        example = find(calls(rpcs=[rpc]), wanted, settings=quiet)
        assert example[0] == rpc and isinstance(example[1], cls)


def test_fuzzed_requests_never_break_the_gateway(fuzzed: Fuzzed) -> None:
    @settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        _run_batch(fuzzed, data.draw(_batches(fuzzed, 12)))

    run()
    assert fuzzed.requests >= 150
    assert fuzzed.codes.get("OK", 0) > 0 and fuzzed.codes.get("INVALID_ARGUMENT", 0) > 0


@pytest.mark.slow
def test_fuzzed_requests_deep(fuzzed_deep: Fuzzed) -> None:
    @settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        _run_batch(fuzzed_deep, data.draw(_batches(fuzzed_deep, 20)))

    run()
    assert fuzzed_deep.requests >= 3000
