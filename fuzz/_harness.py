"""Shared atheris plumbing: instrument the target modules, run libFuzzer with the command-line flags.

A harness's ``one_input(data)`` must return normally for every input or raise the one
exception type its target documents for bad input; anything else is a finding and
atheris stops with a crash report.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = ["run"]


def run(one_input: Callable[[bytes], None], argv: list[str] | None = None) -> None:
    import atheris

    atheris.Setup(list(argv if argv is not None else sys.argv), one_input)
    atheris.Fuzz()
