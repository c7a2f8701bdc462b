"""Every benchmark script runs in its ``--quick`` mode and prints its table of figures.

No timing is asserted (the machine is shared); what is asserted is that each script
exits 0, prints its ``== title ==`` table with a header rule and at least one row, and
that the rows carry numbers (and, where the benchmark checks correctness, its verdict).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks"
NUMBER = re.compile(r"\d+(\.\d+)?")

#: script -> (a text its table title must contain, texts its rows must contain)
EXPECTED: dict[str, tuple[str, tuple[str, ...]]] = {
    "decisions": ("decision latency", ("ours: Authorizer.check", "(a) raw cedarpy", "oso", "pycasbin", "10x world")),
    "rpc": ("GetSandbox over gRPC", ("1 client(s)", "8 client(s)", "32 client(s)")),
    "listing": ("ListSandboxes", ("2,000 stored", "20,000 stored")),
    "create": ("CreateSandbox under a hard quota", ("sqlite", "exact")),
    "reload": ("policy reload", ("change -> live", "verdict", "consistent")),
    "memory": ("gateway resident memory", ("after start", "after listing all", "under target")),
}


def _table(out: str, title: str) -> list[str]:
    """The rows of the table whose title contains ``title`` (after its header and rule)."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("== ") and title in line:
            assert set(lines[i + 2].replace(" ", "")) == {"-"}, f"no header rule under {line!r}"
            rows = []
            for row in lines[i + 3 :]:
                if not row.strip() or row.startswith(("note: ", "==", "#####")):
                    break
                rows.append(row)
            return rows
    raise AssertionError(f"no table titled {title!r} in:\n{out}")


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_quick_mode_prints_its_table(script: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / f"{script}.py"), "--quick"],
        capture_output=True, text=True, timeout=600, cwd=REPO, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"{script} --quick failed:\n{proc.stdout}\n{proc.stderr}"
    title, must_have = EXPECTED[script]
    rows = _table(proc.stdout, title)
    assert rows, f"{script}: empty table"
    text = "\n".join(rows)
    for needle in must_have:
        assert needle in text, f"{script}: {needle!r} missing from\n{text}"
    figures = [row for row in rows if not row.startswith("verdict")]
    assert figures and all(NUMBER.search(row) for row in figures), f"{script}: a row without figures\n{text}"


def test_run_all_knows_every_script_and_rejects_unknown_ones() -> None:
    scripts = {p.stem for p in BENCH.glob("*.py") if not p.name.startswith("_") and p.stem != "run_all"}
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--only", "nosuch"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2 and "unknown benchmark(s) nosuch" in proc.stderr
    sys.path.insert(0, str(BENCH))
    try:
        import run_all
    finally:
        sys.path.remove(str(BENCH))
    assert set(run_all.SCRIPTS) == scripts == set(EXPECTED)
