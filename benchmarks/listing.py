"""Benchmark: ListSandboxes for a user who sees 1,000 of N stored sandboxes, N and 10 N.

The user is a member of one namespace holding 1,000 sandboxes; the other namespaces
fill the store. The call goes through the real gRPC server (a subprocess, OIDC + Cedar
on): one Cedar decision for the namespace, then one store query filtered by namespace
id in SQL (never decided item by item), one page of 1,000. Also timed: the store
query alone, in this process. Seeded with SQLAlchemy Core bulk inserts (SQLite).

Run: ``python benchmarks/listing.py`` (100,000 vs 1,000,000 rows; ``--quick``: 2,000 vs
20,000; ``--totals 10000,100000`` to choose).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import grpc
from _common import percentile, print_table
from _gateway import GatewayProcess, seed_world, settings_dict

from openshell_server import store as st
from openshell_server.api import openshell_pb2 as api
from openshell_server.api import openshell_pb2_grpc
from tests.authn.oidc_fixture import FakeIssuer

VISIBLE = 1000
USER = "alice"


def measure_total(total: int, calls: int, issuer: FakeIssuer) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-list-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        t0 = time.perf_counter()
        names = seed_world(data, total // VISIBLE, VISIBLE, [(f"{issuer.issuer}#{USER}", 0, "user")])
        seeded = time.perf_counter() - t0
        mine = names[0]
        store = st.open_store(f"sqlite:///{data / 'openshell.db'}")
        try:
            ns_id = store.get_namespace_by_name(mine).id
            store_samples = []
            for _ in range(calls):
                t1 = time.perf_counter_ns()
                page = store.list_sandboxes([ns_id], page_size=VISIBLE)
                store_samples.append(time.perf_counter_ns() - t1)
            assert len(page.items) == VISIBLE
        finally:
            store.close()
        token = issuer.issue(USER, ttl_s=3600)
        metadata = (("authorization", f"Bearer {token}"),)
        with GatewayProcess(settings_dict(data, issuer)) as gw:
            channel = grpc.insecure_channel(gw.target)
            stub = openshell_pb2_grpc.OpenShellStub(channel)
            request = api.ListSandboxesRequest(namespace=mine, page_size=VISIBLE)
            for _ in range(3):
                reply = stub.ListSandboxes(request, metadata=metadata, timeout=60)
            if len(reply.sandboxes) != VISIBLE or reply.next_page_token:
                raise RuntimeError(f"expected one page of {VISIBLE}, got {len(reply.sandboxes)}")
            samples = []
            for _ in range(calls):
                t1 = time.perf_counter_ns()
                stub.ListSandboxes(request, metadata=metadata, timeout=60)
                samples.append(time.perf_counter_ns() - t1)
            channel.close()
    return {
        "seed_s": seeded,
        "rpc_ms": statistics.median(samples) / 1e6,
        "rpc_p99_ms": percentile(samples, 0.99) / 1e6,
        "store_ms": statistics.median(store_samples) / 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 vs 20,000 rows: a smoke run")
    parser.add_argument("--totals", default="100000,1000000", help="stored sandbox counts, comma-separated")
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args(argv)
    totals = [2000, 20000] if args.quick else [int(x) for x in args.totals.split(",")]
    calls = 5 if args.quick else args.calls
    issuer = FakeIssuer(audience="openshell")
    try:
        figures = {total: measure_total(total, calls, issuer) for total in totals}
    finally:
        issuer.stop()
    base = figures[totals[0]]["rpc_ms"]
    rows = [
        [f"{total:,} stored", f["rpc_ms"], f["rpc_p99_ms"], f["store_ms"], f["rpc_ms"] / base, f["seed_s"]]
        for total, f in figures.items()
    ]
    print_table(
        f"ListSandboxes, {VISIBLE:,} visible (target: < 50 ms median; <= 1.5x at 10x rows)",
        ["stored", "rpc median ms", "rpc p99 ms", "store ms", "vs first", "seed s"],
        rows,
        f"({calls} calls each, one page of {VISIBLE:,}; SQLite; gateway subprocess with OIDC + Cedar)",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
