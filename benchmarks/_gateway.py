"""A real gateway in a subprocess for the wire benchmarks, and bulk seeding of its store.

The gateway runs in its own process so the load generator never shares its GIL.
``GatewayProcess`` starts ``python benchmarks/_gateway.py CONFIG_JSON`` and reads the bound
port back. Mode ``"on"`` is the production server (OIDC + Cedar); mode ``"off"`` is the same
server with the caller identification replaced by a fixed identity (no token check) and the
live policy set replaced by an allow-all object, built here for benchmarking only.

Seeding writes rows with SQLAlchemy Core ``executemany`` straight into the store's tables
(100,000 sandboxes in seconds); the store itself creates and migrates the schema first.
Seeded sandboxes exist in no compute driver, so they are stored in phase ``Error``: the
gateway's start-up reconciliation then reads them all (as it would with a driver that has
them) but does not rewrite each one as an orphan, which would be a write storm that no real
gateway sees and that would distort every figure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO

__all__ = [
    "GatewayProcess", "bench_policy_dir", "seed_namespaces", "seed_sandboxes", "seed_world",
    "settings_dict", "vm_rss_mb",
]


def bench_policy_dir(parent: Path) -> Path:
    """A copy of ``policies/`` without its ``tests/``: the same policy set (same hash), but a
    gateway start does not run the policy test suite, which only costs start-up time."""
    target = parent / "policies"
    if not target.is_dir():
        target.mkdir(parents=True)
        for source in (REPO / "policies").iterdir():
            if source.is_file():
                shutil.copy2(source, target / source.name)
    return target


def settings_dict(data_dir: Path, issuer: Any = None, database_url: str = "") -> dict[str, Any]:
    """Settings for a benchmark gateway (loopback, port 0, no policy watching unless asked)."""
    return {
        "policy_dir": str(bench_policy_dir(data_dir.parent)),
        "listen": "127.0.0.1:0",
        "data_dir": str(data_dir),
        "database_url": database_url,
        "oidc_issuers": [issuer.config_entry()] if issuer is not None else [],
        "policy_reload_interval": 0,
        "reaper_interval_seconds": 3600,
    }


@dataclass
class GatewayProcess:
    """A gateway subprocess; use as a context manager."""

    settings: dict[str, Any]
    mode: str = "on"  # "on" | "off"
    off_identity: dict[str, Any] | None = None
    max_workers: int = 16

    def __enter__(self) -> GatewayProcess:
        config = {"settings": self.settings, "mode": self.mode, "identity": self.off_identity,
                  "max_workers": self.max_workers}  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, __file__, json.dumps(config)], stdout=subprocess.PIPE, stdin=subprocess.PIPE, env=env,
            text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"benchmark gateway did not start (exit {self.proc.wait()}): {line!r}")
        self.port = int(line.split()[1])
        return self

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def vm_rss_mb(pid: int) -> float:
    """Resident set size of a process, in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


# ---------------------------------------------------------------------- seeding


def seed_namespaces(store: Any, names: Sequence[str], created_by: str = "bench") -> dict[str, str]:
    """Create namespaces through the store (name -> id)."""
    return {name: store.create_namespace(name, created_by=created_by).id for name in names}


SEEDED_MESSAGE = "seeded by a benchmark; in no compute driver"


def seed_sandboxes(engine: Any, namespace_ids: Sequence[str], per_namespace: int, batch: int = 20_000) -> int:
    """Bulk-insert ``per_namespace`` sandboxes into each namespace with Core executemany; returns rows."""
    from openshell_server.store import _schema as t

    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    total = 0

    def flush() -> None:
        nonlocal rows
        if rows:
            with engine.begin() as conn:
                conn.execute(t.sandboxes.insert(), rows)
            rows = []

    for ns_id in namespace_ids:
        for i in range(per_namespace):
            rows.append({
                "id": str(uuid.uuid4()), "namespace_id": ns_id, "name": f"box-{i:07d}", "gpus": 0,
                "phase": "Error", "message": SEEDED_MESSAGE, "expires_at": None, "spec": {},
                "labels": {"tier": "bench"},
                "created_by": "bench", "created_at": now, "resource_version": 1,
            })  # fmt: skip
            total += 1
            if len(rows) >= batch:
                flush()
    flush()
    return total


def seed_world(
    data_dir: Path, namespaces: int, per_namespace: int, members: Sequence[tuple[str, int, str]] = ()
) -> list[str]:
    """A SQLite store in ``data_dir`` with ``namespaces`` x ``per_namespace`` sandboxes.

    Namespaces are ``ns-00000``...; ``members`` are (principal id, namespace index, role).
    Returns the namespace names.
    """
    from openshell_server import store as st

    store = st.open_store(f"sqlite:///{data_dir / 'openshell.db'}")
    try:
        store.ensure_default()
        names = [f"ns-{i:05d}" for i in range(namespaces)]
        ids = seed_namespaces(store, names)
        for principal_id, index, role in members:
            store.put_membership(ids[names[index]], principal_id, role, created_by="bench")
        seed_sandboxes(store.engine, [ids[n] for n in names], per_namespace)
    finally:
        store.close()
    return names


# ---------------------------------------------------------------------- the server side


class _AllowAll:
    """Stands in for the live Authorizer in mode "off": every check allows (benchmark only)."""

    policy_hash = "allow-all"

    def check(self, request: Any) -> Any:
        from openshell_authz import Decision, Response

        return Response(Decision.ALLOW, policy_hash=self.policy_hash)

    def check_batch(self, requests: Sequence[Any]) -> list[Any]:
        return [self.check(r) for r in requests]

    def scope(self, principal: Any, action: str, candidates: Any) -> Any:
        from openshell_authz import NamespaceScope

        return NamespaceScope(all=True)

    def annotation(self, policy_id: str, key: str) -> str | None:
        return None


class _FixedIdentity:
    """Stands in for the caller identification in mode "off": no token is read or checked."""

    def __init__(self, identity: Any) -> None:
        self._identity = identity

    def identify(self, ctx: Any, token: str | None) -> Any:
        return self._identity


def main() -> None:
    from openshell_server.authn import Identity
    from openshell_server.server import build_server
    from openshell_server.settings import Settings

    config = json.loads(sys.argv[1])
    stop = threading.Event()
    running = build_server(Settings(**config["settings"]), max_workers=config.get("max_workers", 16))
    if config["mode"] == "off":
        ident = config["identity"] or {}
        running.gateway.transport = _FixedIdentity(Identity(**{**ident, "global_roles": frozenset()}))
        running.gateway.policies.current = _AllowAll()
    running.start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # until here, SIGTERM simply ends the process
    print(f"PORT {running.port}", flush=True)
    stop.wait()
    running.stop(grace=1)


if __name__ == "__main__":
    main()
