"""Code generation from ``proto/``: import rewriting, staleness, regeneration on import, the build hook."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from openshell_server import _codegen

REPO = Path(__file__).resolve().parents[2]


def _copy_tree(dst: Path) -> Path:
    """A minimal copy of the project (protos, policies, the package without _gen, build files) under ``dst``."""
    shutil.copytree(REPO / "proto", dst / "proto")
    shutil.copytree(REPO / "policies", dst / "policies", symlinks=True)
    shutil.copytree(
        REPO / "openshell_server",
        dst / "openshell_server",
        ignore=shutil.ignore_patterns("_gen", "__pycache__", "bundled_policies"),
    )
    for name in ("pyproject.toml", "setup.py"):
        shutil.copy(REPO / name, dst / name)
    return dst


def test_generate_rewrites_imports_into_the_package(tmp_path: Path) -> None:
    out = tmp_path / "_gen"
    _codegen.generate(out)
    v1 = out / "openshell" / "v1"
    assert {p.name for p in v1.glob("*_pb2*.py")} >= {
        "authz_pb2.py",
        "openshell_pb2.py",
        "openshell_pb2_grpc.py",
    }
    for init in (out / "__init__.py", out / "openshell" / "__init__.py", v1 / "__init__.py"):
        assert init.is_file()
    service = (v1 / "openshell_pb2.py").read_text()
    assert "from openshell_server._gen.openshell.v1 import authz_pb2" in service
    assert "'openshell_server._gen.openshell.v1.openshell_pb2'" in service
    for path in v1.glob("*.py*"):
        assert "from openshell.v1 import" not in path.read_text(), path
    assert not _codegen.is_stale(out)


def test_a_changed_proto_makes_the_output_stale(tmp_path: Path) -> None:
    protos = shutil.copytree(REPO / "proto", tmp_path / "proto")
    out = tmp_path / "_gen"
    assert _codegen.is_stale(out, protos)  # never generated
    _codegen.generate(out, protos)
    assert not _codegen.is_stale(out, protos)
    resources = protos / "openshell" / "v1" / "resources.proto"
    resources.write_text(resources.read_text() + "\nmessage Extra {}\n")
    assert _codegen.is_stale(out, protos)


def test_removed_proto_modules_do_not_linger(tmp_path: Path) -> None:
    protos = shutil.copytree(REPO / "proto", tmp_path / "proto")
    (protos / "openshell" / "v1" / "scratch.proto").write_text('syntax = "proto3";\npackage openshell.v1;\n')
    out = tmp_path / "_gen"
    _codegen.generate(out, protos)
    assert (out / "openshell" / "v1" / "scratch_pb2.py").is_file()
    (protos / "openshell" / "v1" / "scratch.proto").unlink()
    _codegen.generate(out, protos)
    assert not (out / "openshell" / "v1" / "scratch_pb2.py").exists()


def test_importing_api_in_a_fresh_checkout_generates_the_modules(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    assert not (tree / "openshell_server" / "_gen").exists()
    script = (
        "from openshell_server import api; "
        "print(api.openshell_pb2.__file__); "
        "print(api.method_authz(api.methods()['/openshell.v1.OpenShell/ExecSandbox']).action)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tree, capture_output=True, text=True, check=True, timeout=60
    )
    module_file, action = done.stdout.split()
    assert Path(module_file).is_relative_to(tree / "openshell_server" / "_gen")
    assert action == "ExecSandbox"


def test_concurrent_first_imports_both_succeed(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    script = "from openshell_server import api; assert len(api.methods()) > 30"
    procs = [
        subprocess.Popen([sys.executable, "-c", script], cwd=tree, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    assert not _codegen.is_stale(tree / "openshell_server" / "_gen", tree / "proto")
    assert not list((tree / "openshell_server" / "_gen").glob(".scratch-*"))


def test_setup_build_py_generates_into_the_build_dir(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path / "src")
    build_lib = tmp_path / "build-lib"
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(build_lib)],
        cwd=tree,
        capture_output=True,
        check=True,
        timeout=120,
    )
    assert (build_lib / "openshell_server" / "_gen" / "openshell" / "v1" / "openshell_pb2_grpc.py").is_file()
    assert (build_lib / "openshell_server" / "bundled_policies" / "schema.cedarschema").is_file()
    assert not (tree / "openshell_server" / "_gen").exists()  # a wheel build leaves the source tree alone
