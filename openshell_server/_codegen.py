"""Generates the Python gRPC modules of the OpenShell API from ``proto/``.

The generated code is never committed: the build (``setup.py``'s ``build_py``)
writes it into ``openshell_server/_gen`` and :mod:`openshell_server.api`
regenerates it in a source checkout when the ``.proto`` files changed since.

protoc, run with ``-I proto``, emits absolute imports such as
``from openshell.v1 import authz_pb2``; they are rewritten to
``openshell_server._gen.openshell.v1`` so the modules live inside our package
while the descriptors keep their canonical file names (``openshell/v1/*.proto``),
which is what reflection clients expect.

This module must stay importable on its own (``setup.py`` loads it by path,
before the package's dependencies exist): stdlib imports only at module level.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

__all__ = ["GEN_PACKAGE", "PROTO_DIR", "ensure_generated", "generate", "is_stale", "proto_hash"]

GEN_PACKAGE = "openshell_server._gen"
# The source checkout's proto tree; absent in an installed wheel.
PROTO_DIR = Path(__file__).resolve().parent.parent / "proto"
_DEFAULT_OUT = Path(__file__).resolve().parent / "_gen"
_STAMP = "PROTO_SHA256"
_INIT_DOC = '"""Generated from proto/ by openshell_server._codegen: do not edit."""\n'


def _proto_files(proto_dir: Path) -> list[Path]:
    files = sorted(proto_dir.rglob("*.proto"))
    if not files:
        raise FileNotFoundError(f"no .proto files under {proto_dir}")
    return files


def proto_hash(proto_dir: Path = PROTO_DIR) -> str:
    """Digest of every .proto file and of this generator (a change to either means regenerate)."""
    digest = hashlib.sha256()
    for path in [*_proto_files(proto_dir), Path(__file__)]:
        name = path.relative_to(proto_dir) if path.is_relative_to(proto_dir) else path.name
        digest.update(str(name).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def is_stale(out_dir: Path = _DEFAULT_OUT, proto_dir: Path = PROTO_DIR) -> bool:
    """True when ``out_dir`` was not generated from the current ``proto_dir``."""
    stamp = out_dir / _STAMP
    return not stamp.is_file() or stamp.read_text().strip() != proto_hash(proto_dir)


def _rewrite_imports(text: str, top_packages: list[str]) -> str:
    alternatives = "|".join(re.escape(p) for p in top_packages)
    text = re.sub(
        rf"^(\s*)(from|import) ({alternatives})([.\s])",
        lambda m: f"{m[1]}{m[2]} {GEN_PACKAGE}.{m[3]}{m[4]}",
        text,
        flags=re.MULTILINE,
    )
    # The module name protoc bakes into the message classes (their __module__, used by pickle).
    return re.sub(
        rf"(BuildTopDescriptorsAndMessages\(DESCRIPTOR, ')({alternatives})\.",
        lambda m: f"{m[1]}{GEN_PACKAGE}.{m[2]}.",
        text,
    )


def _run_protoc(proto_dir: Path, files: list[Path], out: Path) -> None:
    try:
        from importlib.resources import files as resource_files

        from grpc_tools import protoc
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "generating the gRPC modules needs grpcio-tools (pip install grpcio-tools)"
        ) from exc
    well_known = resource_files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{proto_dir}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *(str(f.relative_to(proto_dir)) for f in files),
    ]
    # protoc resolves the relative file names against the -I roots, not the cwd.
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {proto_dir} (see its messages above)")


def generate(out_dir: Path | str, proto_dir: Path | str = PROTO_DIR) -> None:
    """Generate ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` for every proto into ``out_dir``.

    ``out_dir`` becomes the package :data:`GEN_PACKAGE`. Files are written to a scratch
    directory first and moved into place one by one with ``os.replace``, so a concurrent
    importer never reads a half-written module; the stamp is written last.
    """
    out_dir, proto_dir = Path(out_dir), Path(proto_dir)
    files = _proto_files(proto_dir)
    top_packages = sorted({f.relative_to(proto_dir).parts[0] for f in files})
    out_dir.mkdir(parents=True, exist_ok=True)
    # Scratch space inside out_dir: same filesystem for os.replace, and ignored by git with it.
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".scratch-") as scratch_name:
        scratch = Path(scratch_name)
        _run_protoc(proto_dir, files, scratch)
        produced: set[Path] = set()
        for path in sorted(p for p in scratch.rglob("*") if p.suffix in (".py", ".pyi")):
            path.write_text(_rewrite_imports(path.read_text(), top_packages))
            produced.add(path.relative_to(scratch))
        for directory in [scratch, *(p for p in scratch.rglob("*") if p.is_dir())]:
            init = directory / "__init__.py"
            init.write_text(_INIT_DOC)
            produced.add(init.relative_to(scratch))
        for rel in sorted(produced):
            (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(scratch / rel, out_dir / rel)
        stamp_tmp = scratch / _STAMP
        stamp_tmp.write_text(proto_hash(proto_dir) + "\n")
        os.replace(stamp_tmp, out_dir / _STAMP)
    # Modules of protos that no longer exist would otherwise linger and import stale descriptors.
    # (Another process's scratch directory is left alone: it may be generating right now.)
    for path in out_dir.rglob("*"):
        rel = path.relative_to(out_dir)
        if (
            path.suffix in (".py", ".pyi")
            and rel not in produced
            and not rel.parts[0].startswith(".scratch-")
        ):
            path.unlink(missing_ok=True)


def ensure_generated(out_dir: Path = _DEFAULT_OUT, proto_dir: Path = PROTO_DIR) -> bool:
    """Regenerate ``out_dir`` in a source checkout when it is missing or stale; True if it did.

    In an installed wheel there is no ``proto/`` beside the package and the build already
    produced ``_gen``: nothing to do.
    """
    if not proto_dir.is_dir() or not is_stale(out_dir, proto_dir):
        return False
    generate(out_dir, proto_dir)
    return True


if __name__ == "__main__":
    generate(_DEFAULT_OUT)
    print(f"generated {GEN_PACKAGE} in {_DEFAULT_OUT}")
