"""Benchmark: GetSandbox through the real gRPC server on loopback, authn + authz on against off.

"on" is the production gateway: a real OIDC issuer (RS256 JWKS on loopback), the token
checked on every call (through the verified-token cache), membership facts, one Cedar
decision. "off" is the same server with a fixed identity (no token read) and an allow-all
policy object. Both run in a subprocess on the same seeded SQLite store (1,000 sandboxes
in the caller's namespace), started together and loaded one at a time; the load generator
is this process, with 1, 8 and 32 concurrent client threads each repeating one token. Short
rounds alternate on/off (and which goes first) so a load swing on the shared machine hits
both alike; medians are over all calls of all rounds.

Run: ``python benchmarks/rpc.py`` (``--quick``: short rounds, a smoke run).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import grpc
from _common import percentile, print_table
from _gateway import GatewayProcess, seed_namespaces, seed_sandboxes, settings_dict

from openshell_server import store as st
from openshell_server.api import openshell_pb2 as api
from openshell_server.api import openshell_pb2_grpc
from tests.authn.oidc_fixture import FakeIssuer

NAMESPACE = "team"
SANDBOXES = 1000
USER = "alice"


def seed(data_dir: Path, principal_id: str) -> None:
    store = st.open_store(f"sqlite:///{data_dir / 'openshell.db'}")
    try:
        store.ensure_default()
        ids = seed_namespaces(store, [NAMESPACE])
        store.put_membership(ids[NAMESPACE], principal_id, "user", created_by="bench")
        seed_sandboxes(store.engine, [ids[NAMESPACE]], SANDBOXES)
    finally:
        store.close()


def load(target: str, token: str, clients: int, seconds: float) -> tuple[list[int], float]:
    """Run ``clients`` threads calling GetSandbox for ``seconds``; (latencies ns, requests/s)."""
    channel = grpc.insecure_channel(target)
    stub = openshell_pb2_grpc.OpenShellStub(channel)
    metadata = (("authorization", f"Bearer {token}"),)
    for i in range(20):  # warm: connection, token cache, membership cache, entity caches
        stub.GetSandbox(api.GetSandboxRequest(namespace=NAMESPACE, name=f"box-{i:07d}"), metadata=metadata)
    samples: list[list[int]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    deadline = 0.0

    def worker(k: int) -> None:
        rng = random.Random(k)
        out = samples[k]
        clock = time.perf_counter_ns
        start.wait()
        while time.perf_counter() < deadline:
            req = api.GetSandboxRequest(namespace=NAMESPACE, name=f"box-{rng.randrange(SANDBOXES):07d}")
            t0 = clock()
            stub.GetSandbox(req, metadata=metadata, timeout=30)
            out.append(clock() - t0)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    deadline = time.perf_counter() + seconds
    began = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    channel.close()
    flat = [x for s in samples for x in s]
    return flat, len(flat) / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short rounds: a smoke run")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=8, help="on/off round pairs per concurrency")
    parser.add_argument("--clients", default="1,8,32")
    args = parser.parse_args(argv)
    seconds, rounds = (0.3, 2) if args.quick else (args.seconds, args.rounds)
    levels = [int(c) for c in args.clients.split(",")]

    issuer = FakeIssuer(audience="openshell")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-rpc-") as tmp:
            data = Path(tmp) / "data"
            data.mkdir()
            principal_id = f"{issuer.issuer}#{USER}"
            seed(data, principal_id)
            token = issuer.issue(USER, ttl_s=3600)
            off_identity = {"kind": "user", "principal_id": principal_id, "issuer": issuer.issuer, "subject": USER}
            results: dict[tuple[str, int], tuple[list[int], list[float]]] = {}
            cfg = settings_dict(data, issuer)
            with (
                GatewayProcess(cfg, mode="on") as on,
                GatewayProcess(cfg, mode="off", off_identity=off_identity) as off,
            ):
                servers = {"on": on, "off": off}
                for clients in levels:
                    for r in range(rounds):
                        for mode in ("on", "off") if r % 2 == 0 else ("off", "on"):
                            lat, rps = load(servers[mode].target, token, clients, seconds)
                            got = results.setdefault((mode, clients), ([], []))
                            got[0].extend(lat)
                            got[1].append(rps)
    finally:
        issuer.stop()

    rows = []
    for clients in levels:
        on_lat, on_rps = results[("on", clients)]
        off_lat, off_rps = results[("off", clients)]
        on_med, off_med = statistics.median(on_lat) / 1000, statistics.median(off_lat) / 1000
        rows.append([
            f"{clients} client(s)", off_med, on_med, on_med / off_med, percentile(on_lat, 0.99) / 1000,
            statistics.median(off_rps), statistics.median(on_rps), len(on_lat) + len(off_lat),
        ])  # fmt: skip
    print_table(
        "GetSandbox over gRPC: authn+authz on vs off (target: on/off median <= 1.15)",
        ["concurrency", "off median µs", "on median µs", "on/off", "on p99 µs", "off req/s", "on req/s", "calls"],
        rows,
        f"({rounds} alternating round(s) of {seconds:g} s per mode and concurrency; repeated token; SQLite)",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
