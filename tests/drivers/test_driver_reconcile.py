"""reconcile(): orphans and adoption, and driver selection by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from openshell_server.drivers import DriverSandbox, LocalDriver, SandboxPhase, get_driver, reconcile


def _seen(sandbox_id: str, namespace: str = "") -> DriverSandbox:
    return DriverSandbox(id=sandbox_id, name=f"n-{sandbox_id}", namespace=namespace, phase=SandboxPhase.READY)


def test_orphans_and_adoptions() -> None:
    stored = [("a", "team-a"), ("b", "default"), ("gone", "team-a")]
    observed = [_seen("a", "team-a"), _seen("b", "elsewhere"), _seen("new", "team-c"), _seen("bare")]
    plan = reconcile(stored, observed)
    assert plan.orphans == ("gone",)
    # Unknown objects go to the namespace their labels name, else default; known ones never move.
    assert [(s.id, ns) for s, ns in plan.adopt] == [("bare", "default"), ("new", "team-c")]


def test_nothing_to_do_and_duplicates() -> None:
    assert reconcile([], []).orphans == () and reconcile([], []).adopt == ()
    plan = reconcile([("a", "x")], [_seen("a", "x"), _seen("a", "x"), _seen("z"), _seen("z")])
    assert plan.orphans == () and [s.id for s, _ in plan.adopt] == ["z"]


def test_stored_iterable_is_consumed_once() -> None:
    plan = reconcile(iter([("a", "x"), ("b", "y")]), [_seen("b", "y")])
    assert plan.orphans == ("a",)


@pytest.mark.parametrize("name", ["", "local", " Local "])
def test_local_is_the_default_driver(tmp_path: Path, name: str) -> None:
    driver = get_driver(name, data_dir=tmp_path)
    assert isinstance(driver, LocalDriver) and driver.name == "local"
