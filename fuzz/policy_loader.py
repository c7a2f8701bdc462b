"""Fuzz ``openshell_authz._engine.compile_sources`` with fuzzed policy text against the real schema.

Any text compiles or is refused with ``AuthzError`` (PolicyLoadError); nothing else may escape.
Run: ``python fuzz/policy_loader.py -runs=2000`` (libFuzzer flags apply).
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports():
    from openshell_authz import AuthzError
    from openshell_authz._engine import compile_sources

from fuzz._harness import run

__all__ = ["one_input"]

_POLICIES = Path(__file__).resolve().parent.parent / "policies"
_SCHEMA = next(iter(sorted(_POLICIES.glob("*.cedarschema*"))), None)
_SCHEMA_SOURCE = (_SCHEMA.name, _SCHEMA.read_text()) if _SCHEMA else ("schema", "")
_REAL = [(p.name, p.read_text()) for p in sorted(_POLICIES.glob("*.cedar"))]
_FRAGMENTS = ("permit(", "forbid(", "principal", "action", "resource", " in ", "==", "when {", "unless {", "}",
              ");", '@id("x")', 'Action::"GetSandbox"', "context.", "has ", "&&", "||", "\"", "//", "\n")  # fmt: skip


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 2)
    if mode == 0:
        text = fdp.ConsumeUnicodeNoSurrogates(2048)
    elif mode == 1:  # grammar-ish: a sequence of Cedar fragments
        count = fdp.ConsumeIntInRange(1, 40)
        text = "".join(_FRAGMENTS[fdp.ConsumeIntInRange(0, len(_FRAGMENTS) - 1)] for _ in range(count))
    else:  # a real policy file with a slice replaced
        _, real = _REAL[fdp.ConsumeIntInRange(0, len(_REAL) - 1)]
        a = fdp.ConsumeIntInRange(0, len(real))
        text = real[:a] + fdp.ConsumeUnicodeNoSurrogates(64) + real[a + fdp.ConsumeIntInRange(0, 64) :]
    files = [*_REAL[:1], ("fuzzed.cedar", text)]
    try:
        compile_sources(_SCHEMA_SOURCE, files)
    except AuthzError as exc:
        assert str(exc), "a refusal says why"


if __name__ == "__main__":
    run(one_input)
