"""Smoke runs of the atheris harnesses in ``fuzz/``: each runs briefly as a subprocess and finds nothing.

Longer runs: ``python fuzz/token_parser.py -runs=200000``, ``python fuzz/policy_loader.py -runs=4000``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"


@pytest.mark.parametrize(("harness", "runs"), [("token_parser", 3000), ("policy_loader", 20)])
def test_harness_runs_clean(harness: str, runs: int, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(FUZZ / f"{harness}.py"), f"-runs={runs}", "-seed=1", f"-artifact_prefix={tmp_path}/"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Done {runs} runs" in result.stderr
    assert list(tmp_path.glob("crash-*")) == []


def test_harness_targets_reject_the_documented_way() -> None:
    """The harnesses' one_input accepts what the targets refuse cleanly, so a crash report means a real bug."""
    sys.path.insert(0, str(FUZZ.parent))
    from fuzz import policy_loader, token_parser

    for data in (b"", b"\x00" * 64, b"\xff" * 300, bytes(range(256))):
        token_parser.one_input(data)
        policy_loader.one_input(data)
