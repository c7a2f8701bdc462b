"""A policy directory that does not load is rejected whole, naming the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from openshell_authz import Authorizer, PolicyLoadError
from tests.authz.conftest import SAMPLES

MARKER = "EXPECT-ERROR"


def _expected_location(sample: Path) -> tuple[Path, int]:
    """The file holding the marker comment, and the line after it (where the bad statement starts)."""
    for path in sorted(sample.glob("*.cedar")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if MARKER in line:
                return path, number + 1
    raise AssertionError(f"{sample} has no {MARKER} marker")


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        ("bad_syntax", "syntax error"),
        ("bad_schema_attr", "attribute `owner` on entity type `Sandbox` not found"),
        ("bad_schema_type", "expected Long but saw String"),
        ("missing_id", "needs a non-empty @id"),
        ("duplicate_id", 'duplicate policy @id("shared.name") (first at'),
    ],
)
def test_bad_policy_names_file_and_line(sample: str, message: str) -> None:
    path, line = _expected_location(SAMPLES / sample)
    with pytest.raises(PolicyLoadError) as info:
        Authorizer.from_directory(SAMPLES / sample)
    assert Path(info.value.file) == path
    assert info.value.line == line
    assert message in str(info.value)
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_missing_schema_names_the_directory() -> None:
    with pytest.raises(PolicyLoadError) as info:
        Authorizer.from_directory(SAMPLES / "missing_schema")
    assert Path(info.value.file) == SAMPLES / "missing_schema"
    assert "expected exactly one .cedarschema file" in str(info.value)


def test_one_bad_file_rejects_the_whole_directory(policy_copy: Path) -> None:
    (policy_copy / "zz_extra.cedar").write_text('@id("x")\npermit (principal, action, resource) when { nope };\n')
    with pytest.raises(PolicyLoadError) as info:
        Authorizer.from_directory(policy_copy)
    assert info.value.file == str(policy_copy / "zz_extra.cedar")
    assert info.value.line == 1
