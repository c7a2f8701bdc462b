"""Build hook: generates the gRPC modules from ``proto/`` into ``openshell_server/_gen``.

All metadata lives in pyproject.toml; this file only swaps in a ``build_py`` that runs
:func:`openshell_server._codegen.generate`: into the build directory for a wheel, into
the source tree for an editable install (PEP 660, where ``build_py`` copies nothing),
and an ``sdist`` that carries ``proto/`` so a wheel can be built from it.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

_ROOT = Path(__file__).resolve().parent


def _load_codegen():  # type: ignore[no-untyped-def]
    # Loaded by path: importing the package would import its runtime dependencies,
    # which a build environment does not have.
    spec = importlib.util.spec_from_file_location(
        "_openshell_codegen", _ROOT / "openshell_server/_codegen.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithProtos(build_py):
    """``build_py`` that also generates ``openshell_server/_gen`` from ``proto/`` and bundles
    ``policies/`` as ``openshell_server/bundled_policies`` (the gateway's default policy set)."""

    def run(self) -> None:
        super().run()
        codegen = _load_codegen()
        if self.editable_mode:
            codegen.generate(_ROOT / "openshell_server" / "_gen", _ROOT / "proto")
        else:
            codegen.generate(Path(self.build_lib) / "openshell_server" / "_gen", _ROOT / "proto")
            # An installed gateway has no source checkout to read policies/ from.
            target = Path(self.build_lib) / "openshell_server" / "bundled_policies"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(_ROOT / "policies", target, ignore=shutil.ignore_patterns("__pycache__"))


class SdistWithProtos(sdist):
    """``sdist`` that ships ``proto/`` and ``policies/`` (not Python packages), so a wheel built from it can
    generate the API and bundle the policies."""

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        extra = [
            str(p.relative_to(_ROOT))
            for top in ("proto", "policies")
            for p in sorted((_ROOT / top).rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts
        ]
        super().make_release_tree(base_dir, [*files, *(p for p in extra if p not in files)])


setup(cmdclass={"build_py": BuildPyWithProtos, "sdist": SdistWithProtos})
