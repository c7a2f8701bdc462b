"""Shared fixtures of the authorization library tests: paths, the loaded policies, the CLI."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from openshell_authz import Authorizer
from openshell_authz.cli import main

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"
SAMPLES = REPO / "tests" / "policy_samples"


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture(scope="session")
def authz() -> Authorizer:
    return Authorizer.from_directory(POLICIES)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``openshell-authz`` in-process with these arguments."""

    def run(*argv: str | Path) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    """A private copy of the real policy directory (tests included) to edit."""
    dest = tmp_path / "policies"
    shutil.copytree(POLICIES, dest, ignore=shutil.ignore_patterns("polar"))
    return dest
