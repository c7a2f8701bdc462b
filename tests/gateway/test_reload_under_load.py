"""Live policy reload under load: every decision comes from one whole policy set.

Clients hammer CheckAccess (which reports the deciding set's hash) while a forbid
file is added and removed repeatedly. Each answer must be the decision of the set
whose hash it carries: allowed under the set without the forbid, denied under the
set with it, and no third hash (a half-loaded set) ever appears.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

from openshell_server.settings import BUNDLED_POLICY_DIR
from tests.gateway.harness import api, start_gateway

FORBID = '@id("test.freeze_gateway_config")\nforbid (principal, action == Action::"GetGatewayConfig", resource);\n'


def _wait(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_no_decision_from_a_partial_set_during_reloads(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(BUNDLED_POLICY_DIR, policies)
    # The bundled cases expect GetGatewayConfig to be allowed; this experiment's set has its own.
    shutil.rmtree(policies / "tests")
    with start_gateway(tmp_path / "data", policy_dir=policies) as gw:
        holder = gw.gateway.policies
        holder.watch(0.02)
        client = gw.as_user("load-user")
        ask = api.CheckAccessRequest(action="GetGatewayConfig", kind="gateway")
        open_hash = client.CheckAccess(ask).policy_set_hash

        answers: list[tuple[str, bool]] = []
        stop = threading.Event()
        errors: list[BaseException] = []

        def hammer() -> None:
            try:
                while not stop.is_set():
                    reply = client.CheckAccess(ask)
                    answers.append((reply.policy_set_hash, reply.allowed))
            except BaseException as exc:  # noqa: BLE001 - re-raised below in the test thread
                errors.append(exc)

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        frozen_hash = ""
        try:
            for _ in range(5):
                (policies / "zz_freeze.cedar").write_text(FORBID)
                _wait(lambda: holder.current.policy_hash != open_hash)
                frozen_hash = holder.current.policy_hash
                time.sleep(0.1)
                (policies / "zz_freeze.cedar").unlink()
                _wait(lambda: holder.current.policy_hash == open_hash)
                time.sleep(0.1)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not errors, errors
        assert frozen_hash and frozen_hash != open_hash
        seen = {h for h, _ in answers}
        assert seen <= {open_hash, frozen_hash}, "a decision came from an unexpected policy set"
        assert {(h, ok) for h, ok in answers} <= {(open_hash, True), (frozen_hash, False)}
        # The load really overlapped the swaps: both sets decided requests.
        assert any(h == frozen_hash for h, _ in answers) and any(h == open_hash for h, _ in answers)
        assert len(answers) > 50
