"""Benchmark: policy reload, from a file change to the new set being live, under concurrent checks.

A ``PolicyHolder`` watches a copy of ``policies/`` (with its policy tests, so a reload
compiles, validates and tests the set, as in production) polling every ``--interval``
seconds (1 s, the gateway's default). Each round adds or removes ``zz_bench.cedar``, a
policy that forbids one benchmark principal GetSandbox, and times until
``holder.current`` carries the expected hash. Meanwhile checker threads decide that
principal's GetSandbox non-stop, each time reading ``holder.current`` once. Every
response must carry the old or the new policy hash and the decision that hash implies
(allow without the file, deny with it): a half-loaded set would show up as another
hash or a decision that disagrees with its hash.

Run: ``python benchmarks/reload.py`` (``--quick``: 0.2 s polling, 2 rounds).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, print_table

from openshell_authz import Authorizer, Membership, Namespace, NamespaceRole, Request, Sandbox, UserPrincipal
from openshell_server.policies import PolicyHolder

MARKER = "zz_bench.cedar"
PROBE_ID = "https://bench.invalid#reload-probe"
MARKER_TEXT = f"""// Added and removed by benchmarks/reload.py: denies one benchmark principal GetSandbox.
@id("bench.reload_marker")
forbid (principal == User::"{PROBE_ID}", action == Action::"GetSandbox", resource);
"""


def probe_request() -> Request:
    ns = Namespace(id="bench-ns", name="bench")
    member = Membership(namespace_id=ns.id, role=NamespaceRole.USER)
    user = UserPrincipal(id=PROBE_ID, issuer="https://bench.invalid", memberships=(member,))
    return Request(user, "GetSandbox", Sandbox(id="bench-sb", name="box", namespace=ns))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="0.2 s polling, 2 rounds: a smoke run")
    parser.add_argument("--interval", type=float, default=1.0, help="the watcher's polling interval (s)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--checkers", type=int, default=2)
    args = parser.parse_args(argv)
    interval, rounds = (0.2, 2) if args.quick else (args.interval, args.rounds)
    request = probe_request()

    with tempfile.TemporaryDirectory(prefix="bench-reload-") as tmp:
        directory = Path(tmp) / "policies"
        shutil.copytree(REPO / "policies", directory, ignore=shutil.ignore_patterns("polar"))
        plain = Authorizer.from_directory(directory)
        (directory / MARKER).write_text(MARKER_TEXT)
        marked = Authorizer.from_directory(directory)
        (directory / MARKER).unlink()
        expected = {plain.policy_hash: True, marked.policy_hash: False}  # hash -> GetSandbox allowed?
        assert plain.check(request).allowed and not marked.check(request).allowed

        holder = PolicyHolder(directory)
        holder.watch(interval)
        stop = threading.Event()
        seen: dict[tuple[str, bool], int] = {}
        lock = threading.Lock()

        def checker() -> None:
            local: dict[tuple[str, bool], int] = {}
            while not stop.is_set():
                response = holder.current.check(request)  # one read of the live set per decision
                key = (response.policy_hash, response.allowed)
                local[key] = local.get(key, 0) + 1
            with lock:
                for key, n in local.items():
                    seen[key] = seen.get(key, 0) + n

        threads = [threading.Thread(target=checker) for _ in range(args.checkers)]
        for t in threads:
            t.start()
        latencies: list[float] = []
        try:
            time.sleep(interval * 1.5)
            for r in range(rounds):
                adding = r % 2 == 0
                target_hash = marked.policy_hash if adding else plain.policy_hash
                began = time.perf_counter()
                if adding:
                    (directory / MARKER).write_text(MARKER_TEXT)
                else:
                    (directory / MARKER).unlink()
                deadline = began + 30 + interval
                while holder.current.policy_hash != target_hash:
                    if time.perf_counter() > deadline:
                        raise RuntimeError(f"the new policy set was not live within 30 s: {holder.last_error}")
                    time.sleep(0.001)
                latencies.append(time.perf_counter() - began)
                time.sleep(interval * 0.7)  # let checkers run on the new set before the next change
        finally:
            stop.set()
            for t in threads:
                t.join()
            holder.stop()

    foreign = {h for h, _ in seen if h not in expected}
    inconsistent = sum(n for (h, allowed), n in seen.items() if h in expected and expected[h] != allowed)
    total = sum(seen.values())
    per_hash = {h: sum(n for (hh, _), n in seen.items() if hh == h) for h in expected}
    rows = [
        ["change -> live, median s", statistics.median(latencies)],
        ["change -> live, max s", max(latencies)],
        ["polling interval s", interval],
        ["reloads timed", len(latencies)],
        ["concurrent decisions", total],
        ["  on the old/new sets", " / ".join(str(per_hash[h]) for h in expected)],
        ["  with another hash", len(foreign)],
        ["  deciding against their hash", inconsistent],
        ["verdict", "consistent" if not foreign and not inconsistent else "INCONSISTENT"],
    ]
    print_table(
        "policy reload (target: every decision carries the old or new hash and agrees with it)",
        ["figure", "value"],
        rows,
        "(PolicyHolder.watch on a copy of policies/ with its policy tests; checkers read holder.current)",
    )
    return 0 if not foreign and not inconsistent else 1


if __name__ == "__main__":
    sys.exit(main())
