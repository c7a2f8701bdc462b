"""Benchmark: gateway resident memory with 100,000 sandboxes stored, after touching them all.

A gateway subprocess (OIDC + Cedar on, SQLite) serves a store seeded with 100 namespaces
of 1,000 sandboxes. Its RSS is read from /proc after start, then after a platform admin
listed every sandbox (all namespaces, pages of 1,000), a member listed its namespace,
and 2,000 GetSandbox calls on random sandboxes by members of their namespaces (filling the
token, membership and decision caches).

Run: ``python benchmarks/memory.py`` (``--quick``: 10,000 sandboxes, a smoke run).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import grpc
from _common import print_table
from _gateway import GatewayProcess, seed_world, settings_dict, vm_rss_mb

from openshell_server.api import openshell_pb2 as api
from openshell_server.api import openshell_pb2_grpc
from tests.authn.oidc_fixture import FakeIssuer

PER_NAMESPACE = 1000
LIMIT_MB = 300


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 sandboxes: a smoke run")
    parser.add_argument("--total", type=int, default=100_000)
    parser.add_argument("--gets", type=int, default=2000)
    args = parser.parse_args(argv)
    total, gets = (10_000, 200) if args.quick else (args.total, args.gets)
    namespaces = total // PER_NAMESPACE
    issuer = FakeIssuer(audience="openshell")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-mem-") as tmp:
            data = Path(tmp) / "data"
            data.mkdir()
            members = [(f"{issuer.issuer}#user-{i}", i, "user") for i in range(namespaces)]
            names = seed_world(data, namespaces, PER_NAMESPACE, members)
            admin = (("authorization", f"Bearer {issuer.issue('admin', roles=['platform_admin'], ttl_s=3600)}"),)
            tokens = [(("authorization", f"Bearer {issuer.issue(f'user-{i}', ttl_s=3600)}"),)
                      for i in range(namespaces)]
            with GatewayProcess(settings_dict(data, issuer)) as gw:
                channel = grpc.insecure_channel(gw.target)
                stub = openshell_pb2_grpc.OpenShellStub(channel)
                stub.GetGatewayConfig(api.GetGatewayConfigRequest(), metadata=admin, timeout=60)
                rss_start = vm_rss_mb(gw.pid)
                listed, token = 0, ""
                t0 = time.perf_counter()
                while True:
                    page = stub.ListSandboxes(
                        api.ListSandboxesRequest(all_namespaces=True, page_size=1000, page_token=token),
                        metadata=admin, timeout=120,
                    )  # fmt: skip
                    listed += len(page.sandboxes)
                    token = page.next_page_token
                    if not token:
                        break
                list_s = time.perf_counter() - t0
                if listed != total:
                    raise RuntimeError(f"listed {listed} sandboxes, stored {total}")
                rss_listed = vm_rss_mb(gw.pid)
                rng = random.Random(5)
                stub.ListSandboxes(api.ListSandboxesRequest(namespace=names[0], page_size=1000), metadata=tokens[0])
                for _ in range(gets):
                    i = rng.randrange(namespaces)
                    request = api.GetSandboxRequest(namespace=names[i], name=f"box-{rng.randrange(PER_NAMESPACE):07d}")
                    stub.GetSandbox(request, metadata=tokens[i], timeout=60)
                rss_end = vm_rss_mb(gw.pid)
                channel.close()
    finally:
        issuer.stop()
    print_table(
        f"gateway resident memory, {total:,} sandboxes stored (target: < {LIMIT_MB} MB)",
        ["moment", "RSS MiB"],
        [
            ["after start", rss_start],
            [f"after listing all {listed:,} ({list_s:.1f} s, pages of 1,000)", rss_listed],
            [f"after {gets:,} GetSandbox by {namespaces} members", rss_end],
            ["verdict", "under target" if max(rss_start, rss_listed, rss_end) < LIMIT_MB else "OVER TARGET"],
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
