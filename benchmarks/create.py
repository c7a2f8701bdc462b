"""Benchmark: CreateSandbox throughput under a hard quota, SQLite and PostgreSQL, 1 and 16 clients.

Each run gives a fresh namespace a hard ``max_sandboxes`` of K and lets 1 or 16 client
threads create sandboxes through the real gRPC server (subprocess, OIDC + Cedar on, the
local bubblewrap driver) until every client has been refused with RESOURCE_EXHAUSTED.
Throughput counts accepted creates per second; afterwards the store is asked how many
sandboxes the namespace holds: anything but exactly K is an overshoot (or undershoot).
PostgreSQL is a throwaway database on the local server (``tests/store/pg.py``).

Run: ``python benchmarks/create.py`` (``--quick``: K = 8, a smoke run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import grpc
from _common import print_table
from _gateway import GatewayProcess, settings_dict

from openshell_server import store as st
from openshell_server.api import openshell_pb2 as api
from openshell_server.api import openshell_pb2_grpc
from tests.authn.oidc_fixture import FakeIssuer
from tests.store.pg import postgres_unavailable_reason, temporary_database

USER = "alice"
LEVELS = (1, 16)


def prepare(url: str, principal_id: str, limit: int) -> None:
    store = st.open_store(url)
    try:
        store.ensure_default()
        for clients in LEVELS:
            ns = store.create_namespace(
                f"quota-{clients}", created_by="bench", limits=st.QuotaLimits(max_sandboxes=limit), quota_mode="hard"
            )
            store.put_membership(ns.id, principal_id, "user", created_by="bench")
    finally:
        store.close()


def count(url: str, namespace: str) -> int:
    store = st.open_store(url)
    try:
        return len(store.list_sandboxes([store.get_namespace_by_name(namespace).id]).items)
    finally:
        store.close()


def hammer(target: str, token: str, namespace: str, clients: int) -> tuple[int, int, list[str], float]:
    """(accepted, refused, unexpected errors, seconds) of clients creating until refused."""
    channel = grpc.insecure_channel(target)
    stub = openshell_pb2_grpc.OpenShellStub(channel)
    metadata = (("authorization", f"Bearer {token}"),)
    accepted = [0] * clients
    refused = [0] * clients
    errors: list[str] = []
    barrier = threading.Barrier(clients + 1)

    def worker(k: int) -> None:
        barrier.wait()
        for i in range(100_000):
            request = api.CreateSandboxRequest(namespace=namespace, name=f"c{k}-{i}")
            try:
                stub.CreateSandbox(request, metadata=metadata, timeout=120)
                accepted[k] += 1
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    refused[k] += 1
                    return
                errors.append(f"{exc.code().name}: {exc.details()}")
                return

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    channel.close()
    return sum(accepted), sum(refused), errors, elapsed


def run_backend(name: str, url: str, data: Path, issuer: FakeIssuer, limit: int) -> list[list[object]]:
    principal_id = f"{issuer.issuer}#{USER}"
    prepare(url or f"sqlite:///{data / 'openshell.db'}", principal_id, limit)
    token = issuer.issue(USER, ttl_s=3600)
    rows: list[list[object]] = []
    with GatewayProcess(settings_dict(data, issuer, database_url=url)) as gw:
        for clients in LEVELS:
            namespace = f"quota-{clients}"
            accepted, refused, errors, seconds = hammer(gw.target, token, namespace, clients)
            stored = count(url or f"sqlite:///{data / 'openshell.db'}", namespace)
            verdict = "exact" if stored == limit and accepted == limit else f"WRONG: {stored} stored"
            rows.append([name, clients, limit, accepted, refused, stored, verdict, accepted / seconds,
                         "; ".join(errors[:2]) or "-"])  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="K = 8: a smoke run")
    parser.add_argument("--limit", type=int, default=64, help="the namespace's hard max_sandboxes (K)")
    args = parser.parse_args(argv)
    limit = 8 if args.quick else args.limit
    rows: list[list[object]] = []
    issuer = FakeIssuer(audience="openshell")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-create-") as tmp:
            (Path(tmp) / "sqlite" / "data").mkdir(parents=True)
            rows += run_backend("sqlite", "", Path(tmp) / "sqlite" / "data", issuer, limit)
            reason = postgres_unavailable_reason()
            if reason is not None:
                rows.append(["postgresql", "-", limit, "-", "-", "-", "not run", 0.0, reason])
            else:
                (Path(tmp) / "pg" / "data").mkdir(parents=True)
                with temporary_database(prefix="openshell_bench") as url:
                    rows += run_backend("postgresql", url, Path(tmp) / "pg" / "data", issuer, limit)
    finally:
        issuer.stop()
    print_table(
        "CreateSandbox under a hard quota (target: stored == K, zero overshoot)",
        ["backend", "clients", "K", "accepted", "refused", "stored", "quota", "creates/s", "other errors"],
        rows,
        "(through the gRPC server with OIDC + Cedar and the local bubblewrap driver)",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
