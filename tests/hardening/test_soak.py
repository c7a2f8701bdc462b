"""A bounded soak: mixed RPCs from many principals against one subprocess gateway, on loopback.

No error other than the expected cross-namespace refusals, and memory flat: the
gateway's RSS is sampled every second and the last quarter's median may not exceed the
first quarter's (after warm-up) by more than a fixed margin. Quick form ~20 s; the slow
form (``tox -e deep``) runs 4 minutes.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest

from tests.authn.oidc_fixture import FakeIssuer
from tests.gateway.harness import api
from tests.hardening._proc import GatewayProcess

TEAMS = 4
USERS_PER_TEAM = 3
MAX_GROWTH_KIB = 40 * 1024  # allocator noise and caches settle well below this; a leak per call does not


def _worker(gw: GatewayProcess, token: str, team: int, me: str, stop: threading.Event, tally: Counter[str]) -> None:
    c = gw.client(token)
    ns, other = f"team-{team}", f"team-{(team + 1) % TEAMS}"
    i = 0
    while not stop.is_set():
        i += 1
        name = f"{me}-{i % 5}"
        ops = [
            ("create", lambda name=name: c.CreateSandbox(api.CreateSandboxRequest(namespace=ns, name=name))),
            ("get", lambda name=name: c.GetSandbox(api.GetSandboxRequest(namespace=ns, name=name))),
            ("list", lambda name=name: c.ListSandboxes(api.ListSandboxesRequest(namespace=ns))),
            ("providers", lambda name=name: c.ListProviders(api.ListProvidersRequest(namespace=ns))),
            ("whoami", lambda name=name: c.WhoAmI(api.WhoAmIRequest())),
            ("delete", lambda name=name: c.DeleteSandbox(api.DeleteSandboxRequest(namespace=ns, name=name))),
        ]
        probes = [  # another team's namespace: always refused, as NOT_FOUND
            ("probe-get", lambda name=name: c.GetSandbox(api.GetSandboxRequest(namespace=other, name=name))),
            ("probe-create", lambda name=name: c.CreateSandbox(api.CreateSandboxRequest(namespace=other, name=name))),
        ]
        for op, fn in ops:
            try:
                fn()
                tally["ok"] += 1
            except grpc.RpcError as exc:
                tally[f"{op}:{exc.code().name}"] += 1
        for op, fn in probes:
            try:
                fn()
                tally[f"{op}:LEAK"] += 1
            except grpc.RpcError as exc:
                tally["denied" if exc.code() == grpc.StatusCode.NOT_FOUND else f"{op}:{exc.code().name}"] += 1


def run_soak(tmp_path: Path, seconds: float) -> dict[str, object]:
    with FakeIssuer(audience="openshell") as idp:
        env = {"OPENSHELL_OIDC_ISSUERS": json.dumps([idp.config_entry()]), "OPENSHELL_AUDIT_MAX_BYTES": str(4 << 20)}
        with GatewayProcess(tmp_path / "data", env) as gw:
            root = gw.client(idp.issue("soak-root", roles=["platform_admin"], ttl_s=3600))
            workers = []
            stop = threading.Event()
            tally: Counter[str] = Counter()
            for t in range(TEAMS):
                root.CreateNamespace(api.CreateNamespaceRequest(name=f"team-{t}"))
                for u in range(USERS_PER_TEAM):
                    sub = f"t{t}u{u}"
                    root.AddMember(api.AddMemberRequest(
                        namespace=f"team-{t}", principal=f"{idp.issuer}#{sub}", role="user"
                    ))  # fmt: skip
                    token = idp.issue(sub, ttl_s=3600)
                    workers.append(threading.Thread(target=_worker, args=(gw, token, t, sub, stop, tally), daemon=True))
            samples: list[int] = []
            started = time.monotonic()
            for w in workers:
                w.start()
            while time.monotonic() - started < seconds:
                samples.append(gw.rss_kib())
                time.sleep(1)
            stop.set()
            for w in workers:
                w.join(30)
            elapsed = time.monotonic() - started
    calls = sum(tally.values())
    quarter = max(1, len(samples) // 4)
    warm = samples[1:] if len(samples) > 4 else samples  # the first second includes start-up allocation
    return {
        "seconds": round(elapsed, 1), "calls": calls, "rate": round(calls / elapsed), "principals": len(workers) + 1,
        "tally": dict(tally), "rss_first_kib": int(statistics.median(warm[:quarter])),
        "rss_last_kib": int(statistics.median(samples[-quarter:])), "rss_max_kib": max(samples),
    }  # fmt: skip


def _check(report: dict[str, object]) -> None:
    print(f"\nsoak: {report}")
    tally = report["tally"]
    assert isinstance(tally, dict)
    # Each sandbox name belongs to one worker, whose calls are sequential: nothing but "ok" and the probes'
    # NOT_FOUND is expected.
    unexpected = {k: v for k, v in tally.items() if k not in ("ok", "denied")}
    assert unexpected == {}
    assert tally["denied"] > 0 and tally["ok"] > 0
    growth = int(report["rss_last_kib"]) - int(report["rss_first_kib"])  # type: ignore[call-overload]
    assert growth < MAX_GROWTH_KIB, report


def test_soak_quick(tmp_path: Path) -> None:
    _check(run_soak(tmp_path, 20))


@pytest.mark.slow
def test_soak_long(tmp_path: Path) -> None:
    _check(run_soak(tmp_path, 240))
