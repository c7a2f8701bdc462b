"""Faults: SIGKILL during writes, PostgreSQL connections killed under load, a broken policy
file dropped into the live directory, the JWKS endpoint going down. Nothing acknowledged
is lost, nothing half-created is left unreconciled, the audit chain verifies, and no
fault ever turns a refusal into an allow.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from openshell_server.authn import OidcVerifier, TokenCache
from openshell_server.authn._oidc import OidcIssuer
from openshell_server.drivers import get_driver
from openshell_server.settings import BUNDLED_POLICY_DIR
from tests.authn.oidc_fixture import FakeClock
from tests.gateway.harness import Stub, api, call_status, start_gateway
from tests.hardening._invariants import InvariantChecker
from tests.hardening._proc import GatewayProcess
from tests.store.pg import require_postgres, temporary_database

S = grpc.StatusCode


class Writers:
    """``n`` threads creating sandboxes and providers until stopped; records what was acknowledged."""

    def __init__(self, client: Stub, n: int = 4, ns: str = "default") -> None:
        self.client, self.ns = client, ns
        self.acked: list[tuple[str, str]] = []  # (kind, name)
        self.failures: dict[str, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(n)]

    def _run(self, worker: int) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            kind, name = ("provider", f"p{worker}-{i}") if i % 3 == 0 else ("sandbox", f"s{worker}-{i}")
            try:
                if kind == "sandbox":
                    self.client.CreateSandbox(api.CreateSandboxRequest(namespace=self.ns, name=name), timeout=10)
                else:
                    self.client.CreateProvider(api.CreateProviderRequest(namespace=self.ns, name=name), timeout=10)
            except grpc.RpcError as exc:
                with self._lock:
                    self.failures[exc.code().name] = self.failures.get(exc.code().name, 0) + 1
                time.sleep(0.02)
                continue
            with self._lock:
                self.acked.append((kind, name))

    def start(self) -> Writers:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)

    def missing(self, client: Stub) -> list[tuple[str, str]]:
        lost = []
        for kind, name in self.acked:
            method = client.GetSandbox if kind == "sandbox" else client.GetProvider
            message = api.GetSandboxRequest if kind == "sandbox" else api.GetProviderRequest
            request = message(namespace=self.ns, name=name)
            code, _, _ = call_status(method, request)
            if code != S.OK:
                lost.append((kind, name))
        return lost


def _verify_audit(data_dir: Path) -> subprocess.CompletedProcess[str]:
    cli = Path(sys.executable).with_name("openshell-authz")
    return subprocess.run(
        [str(cli), "audit", "verify", str(data_dir / "audit" / "audit.jsonl")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)


@pytest.mark.parametrize("round_", range(2))
def test_sigkill_during_concurrent_writes_loses_nothing_acknowledged(tmp_path: Path, round_: int) -> None:
    data = tmp_path / "data"
    gw = GatewayProcess(data, {"OPENSHELL_REAPER_INTERVAL_SECONDS": "0"}).start()
    writers = Writers(gw.client()).start()
    _wait_for(lambda: len(writers.acked) >= 15 + 10 * round_, timeout=30)
    time.sleep(0.05 * round_)  # a different point inside the write stream each round
    gw.kill()
    writers.stop()
    assert len(writers.acked) >= 15, writers.failures

    restarted = GatewayProcess(data, {"OPENSHELL_REAPER_INTERVAL_SECONDS": "0"}).start()
    try:
        client = restarted.client()
        assert writers.missing(client) == []
        # No half-created sandbox: every row the driver does not hold was marked Error at start.
        held = {obj.id for obj in get_driver("local", data_dir=data).list()}
        rows = client.ListSandboxes(api.ListSandboxesRequest(all_namespaces=True)).sandboxes
        unreconciled = [(s.meta.name, s.phase) for s in rows if s.meta.id not in held and s.phase != "Error"]
        assert unreconciled == []
        checker = InvariantChecker(f"sqlite:///{(data / 'openshell.db').resolve()}")
        assert checker.violations() == []
        checker.close()
        # The restarted gateway takes writes, and the chain (across the kill) verifies.
        client.CreateSandbox(api.CreateSandboxRequest(name="after-restart"))
    finally:
        restarted.stop()
    result = _verify_audit(data)
    assert result.returncode == 0, result.stdout + result.stderr


def _kill_pg_connections_under_load(tmp_path: Path) -> Writers:
    """Writers against a PostgreSQL-backed gateway while its backends are terminated three times."""
    with temporary_database(require_postgres(), prefix="openshell_fault") as url:
        admin_engine = sa.create_engine(require_postgres(), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        db = sa.engine.make_url(url).database
        with start_gateway(tmp_path / "data", database_url=url) as gw:
            admin = gw.as_user("pg-root", roles=("platform_admin",))
            writers = Writers(admin).start()
            killed = 0
            try:
                for _ in range(3):
                    time.sleep(0.7)
                    with admin_engine.connect() as conn:
                        killed += conn.execute(sa.text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                            " WHERE datname = :db AND pid <> pg_backend_pid()"
                        ), {"db": db}).scalar() or 0  # fmt: skip
                time.sleep(0.7)
            finally:
                writers.stop()
            assert killed >= 3, "the gateway held no connections to kill"
            assert len(writers.acked) >= 10, writers.failures
            assert writers.missing(admin) == []  # nothing acknowledged was lost
            # The gateway reconnected: new writes succeed at once.
            for i in range(3):
                admin.CreateSandbox(api.CreateSandboxRequest(name=f"after-reconnect-{i}"))
            checker = InvariantChecker(url)
            assert checker.violations() == []
            checker.close()
        admin_engine.dispose()
    return writers


def test_postgres_connections_killed_under_load_lose_nothing_and_fail_retryably(tmp_path: Path) -> None:
    writers = _kill_pg_connections_under_load(tmp_path)
    print(f"\npg kill: {len(writers.acked)} acknowledged, failures {writers.failures}")
    # Calls caught by the drop get a retryable UNAVAILABLE, never INTERNAL/UNKNOWN.
    assert not {"INTERNAL", "UNKNOWN"} & set(writers.failures), writers.failures


def test_broken_policy_file_keeps_the_old_set_serving(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(BUNDLED_POLICY_DIR, policies)
    with start_gateway(tmp_path / "data", policy_dir=policies) as gw:
        holder = gw.gateway.policies
        holder.watch(0.1)
        admin = gw.as_user("pol-root", roles=("platform_admin",))
        admin.CreateNamespace(api.CreateNamespaceRequest(name="team"))
        outsider = gw.as_user("outsider")
        original = holder.current.policy_hash

        def outsider_refused() -> bool:
            code, _, _ = call_status(outsider.ListSandboxes, api.ListSandboxesRequest(namespace="team"))
            return code == S.NOT_FOUND

        # Three kinds of bad drop: not Cedar, not valid against the schema, and valid but
        # permitting everything (its own policy tests fail). None may go live.
        for name, text in (
            ("zz_broken.cedar", "permit(principal, action, resource) when { garbage"),
            ("zz_schema.cedar", 'permit(principal, action == Action::"NoSuchAction", resource);'),
            ("zz_open.cedar", "permit(principal, action, resource);"),
        ):
            (policies / name).write_text(text)
            _wait_for(lambda: holder.last_error != "", timeout=10)
            assert holder.last_error, f"{name} was not noticed"
            assert holder.current.policy_hash == original
            assert outsider_refused()
            (policies / name).unlink()
            _wait_for(lambda: holder.last_error == "", timeout=10)
        # Positive control: a valid change does go live.
        first = sorted(policies.glob("*.cedar"))[0]
        first.write_text(first.read_text() + "\n// harmless edit\n")
        _wait_for(lambda: holder.current.policy_hash != original, timeout=10)
        assert holder.current.policy_hash != original and outsider_refused()


def test_jwks_down_cached_keys_work_until_max_age_then_unauthenticated(tmp_path: Path) -> None:
    with start_gateway(tmp_path / "data") as gw:
        clock = FakeClock()
        issuer = gw.issuer
        assert issuer is not None
        auth = gw.gateway.authenticator
        auth.oidc = OidcVerifier(
            [OidcIssuer(issuer.issuer, issuer.audience, issuer.jwks_url)], refresh_s=60, max_key_age_s=600, clock=clock
        )
        auth.cache = TokenCache(clock=clock)
        assert auth.oidc.prefetch() == {}
        root = issuer.issue("jw-root", roles=["platform_admin"], ttl_s=7200)
        gw.client(root).CreateNamespace(api.CreateNamespaceRequest(name="team"))
        issuer.stop()  # JWKS endpoint refuses connections from now on
        try:
            for step in range(5):  # 0..480 s: within the max key age, cached keys keep verifying
                clock.advance(120 if step else 0)
                fresh = issuer.issue(f"jw-{step}", roles=["platform_admin"], ttl_s=7200, now=clock.now)
                assert gw.client(fresh).GetNamespace(api.GetNamespaceRequest(name="team")).namespace.meta.name == "team"
            clock.advance(121)  # past the max key age: every token, cached or new, is refused
            for token in (root, issuer.issue("jw-late", roles=["platform_admin"], ttl_s=7200, now=clock.now)):
                for rpc, req in (("GetNamespace", api.GetNamespaceRequest(name="team")),
                                 ("CreateNamespace", api.CreateNamespaceRequest(name="late"))):  # fmt: skip
                    code, details, _ = call_status(getattr(gw.client(token), rpc), req)
                    assert code == S.UNAUTHENTICATED, (rpc, code, details)
        finally:
            issuer.start()
        names = [n.name for n in gw.gateway.store.list_namespaces()]
        assert "late" not in names
