"""Quotas: the check and the insert are one atomic step, on every backend, across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from openshell_server.store import (
    NamespaceNotEmpty,
    NamespaceTerminating,
    NotFound,
    QuotaExceeded,
    QuotaLimits,
    SqlStore,
)

from ._race import race

ADMIN = "https://idp#admin"
WORKER = Path(__file__).with_name("_worker.py")
REPO = Path(__file__).resolve().parents[2]


def test_50_concurrent_creates_against_hard_limit_10_leave_exactly_10(store: SqlStore) -> None:
    ns = store.create_namespace("hard", created_by=ADMIN, limits=QuotaLimits(max_sandboxes=10))
    outcomes = race(lambda i: store.create_sandbox(ns.id, f"s{i}", created_by="x"), 50)
    refused = [o for o in outcomes if isinstance(o, QuotaExceeded)]
    errors = [o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, QuotaExceeded)]
    assert errors == []
    assert len(refused) == 40
    assert len(store.list_sandboxes([ns.id]).items) == 10
    assert store.get_namespace_usage(ns.id).sandboxes == 10
    assert refused[0].limit_name == "max_sandboxes"
    assert (refused[0].limit, refused[0].current) == (10, 10)
    assert "max_sandboxes=10" in str(refused[0]) and "10 in use" in str(refused[0])


@pytest.mark.postgres
def test_two_processes_share_the_hard_limit_on_postgres(pg_store: SqlStore, postgres_url: str) -> None:
    store = pg_store
    ns = store.create_namespace("shared", created_by=ADMIN, limits=QuotaLimits(max_sandboxes=10))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "create", postgres_url, ns.id, f"p{p}", "25"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for p in range(2)
    ]
    totals: Counter[str] = Counter()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        totals.update(json.loads(out))
    assert totals == Counter(created=10, refused=40)
    assert len(store.list_sandboxes([ns.id]).items) == 10


def test_soft_mode_lets_all_through_and_flags_the_excess(store: SqlStore) -> None:
    ns = store.create_namespace("soft", created_by=ADMIN, limits=QuotaLimits(max_sandboxes=10), quota_mode="soft")
    outcomes = race(lambda i: store.create_sandbox(ns.id, f"s{i}", created_by="x"), 50)
    assert all(not isinstance(o, BaseException) for o in outcomes)
    flagged = [o for o in outcomes if not isinstance(o, BaseException) and o.exceeded]
    assert len(flagged) == 40
    assert sorted(o.violations[0].current for o in flagged) == list(range(10, 50))
    assert len(store.list_sandboxes([ns.id]).items) == 50


def test_gpu_limit_and_ceiling(store: SqlStore) -> None:
    # The namespace admin's limit (8) is above the platform ceiling (4): the ceiling wins.
    ns = store.create_namespace(
        "gpu", created_by=ADMIN, limits=QuotaLimits(max_gpus=8), ceiling=QuotaLimits(max_gpus=4)
    )
    store.create_sandbox(ns.id, "a", created_by="x", gpus=3)
    store.create_sandbox(ns.id, "cpu-only", created_by="x", gpus=0)
    with pytest.raises(QuotaExceeded) as err:
        store.create_sandbox(ns.id, "b", created_by="x", gpus=2)
    assert (err.value.limit_name, err.value.limit, err.value.current, err.value.requested) == ("max_gpus", 4, 3, 2)
    store.create_sandbox(ns.id, "c", created_by="x", gpus=1)
    assert store.get_namespace_usage(ns.id).gpus == 4
    store.update_namespace(ns.id, quota_mode="soft")
    soft = store.create_sandbox(ns.id, "d", created_by="x", gpus=1)
    assert soft.exceeded
    assert soft.violations[0].limit_name == "max_gpus"


def test_lowering_a_limit_below_use_refuses_new_creates_and_removes_nothing(store: SqlStore) -> None:
    ns = store.create_namespace("shrink", created_by=ADMIN)
    for i in range(5):
        store.create_sandbox(ns.id, f"s{i}", created_by="x")
    store.update_namespace(ns.id, limits=QuotaLimits(max_sandboxes=2))
    with pytest.raises(QuotaExceeded, match="5 in use"):
        store.create_sandbox(ns.id, "extra", created_by="x")
    assert len(store.list_sandboxes([ns.id]).items) == 5
    for name in ("s0", "s1", "s2"):
        store.delete_sandbox(store.get_sandbox(ns.id, name).id)
    with pytest.raises(QuotaExceeded):
        store.create_sandbox(ns.id, "extra", created_by="x")
    store.delete_sandbox(store.get_sandbox(ns.id, "s3").id)
    assert store.create_sandbox(ns.id, "extra", created_by="x").sandbox.name == "extra"


def test_create_during_delete_never_leaves_a_sandbox_in_a_deleted_namespace(store: SqlStore) -> None:
    ns = store.create_namespace("racy", created_by=ADMIN)

    def act(i: int) -> str:
        if i == 0:
            store.begin_delete_namespace(ns.id)
            while True:  # the admin's retry loop: clean up, then try to finish
                for sb in store.list_sandboxes([ns.id]).items:
                    store.delete_sandbox(sb.id)
                try:
                    store.finish_delete_namespace(ns.id)
                    return "deleted"
                except NamespaceNotEmpty:
                    continue
        try:
            store.create_sandbox(ns.id, f"s{i}", created_by="x")
            return "created"
        except (NamespaceTerminating, NotFound):
            return "refused"

    outcomes = race(act, 30)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert errors == []
    assert outcomes[0] == "deleted"
    with pytest.raises(NotFound):
        store.get_namespace_by_id(ns.id)
    assert store.list_sandboxes([ns.id]).items == []
    assert store.list_sandboxes(None).items == []
