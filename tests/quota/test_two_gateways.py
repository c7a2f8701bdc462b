"""Two ``openshell-gateway`` processes sharing one PostgreSQL store enforce one hard quota (SPEC §6, §7)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import grpc

from tests.gateway.harness import Stub, api
from tests.quota._burst import burst, create_call, quota_namespace
from tests.quota._process import gateway_process
from tests.store.pg import require_postgres, temporary_database

CALLS_EACH, LIMIT = 25, 10


def test_two_gateway_processes_share_one_hard_limit(tmp_path: Path) -> None:
    with ExitStack() as stack:
        url = stack.enter_context(temporary_database(require_postgres(), prefix="openshell_two_gw"))
        # Start both at once: they also race on migrating the fresh database.
        with ThreadPoolExecutor(2) as pool:
            ports = list(pool.map(lambda d: stack.enter_context(gateway_process(tmp_path / d, url)), ["gw-a", "gw-b"]))
        assert ports[0] != ports[1]
        channels = [stack.enter_context(grpc.insecure_channel(f"127.0.0.1:{p}")) for p in ports]
        a, b = (Stub(c, None) for c in channels)  # local mode: the caller is the platform admin
        quota_namespace(a, "shared", max_sandboxes=LIMIT)

        calls = [
            create_call(stub, "shared", f"{tag}-{i}") for i in range(CALLS_EACH) for stub, tag in ((a, "a"), (b, "b"))
        ]
        result = burst(calls)
        print(result.figures(f"hard limit {LIMIT}, two gateway processes on one PostgreSQL"))

        assert result.ok == LIMIT
        assert result.codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 2 * CALLS_EACH - LIMIT
        for message in result.refusals:
            assert f"quota max_sandboxes={LIMIT} of namespace 'shared' exceeded: {LIMIT} in use" in message
        per_gateway = [result.codes[i::2].count(grpc.StatusCode.OK) for i in range(2)]
        for stub in (a, b):  # both gateways see the same store
            listed = stub.ListSandboxes(api.ListSandboxesRequest(namespace="shared", page_size=1000)).sandboxes
            assert len(listed) == LIMIT
        print(f"  successes per gateway: a={per_gateway[0]} b={per_gateway[1]}")
