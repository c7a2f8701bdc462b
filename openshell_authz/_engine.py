"""The only module that imports cedarpy: compiles a policy directory, evaluates requests.

A directory holds one ``*.cedarschema`` file and any number of ``*.cedar`` files.
Compilation is all-or-nothing: every file must parse, every policy must carry a
unique ``@id`` and validate against the schema, or ``PolicyLoadError`` names the
file and line and nothing is returned.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import cedarpy

from openshell_authz._policy_text import split_statements
from openshell_authz.errors import PolicyLoadError

__all__ = ["CompiledPolicies", "RawDecision", "compile_directory", "compile_sources", "evaluate"]

SCHEMA_SUFFIX = ".cedarschema"
POLICY_SUFFIX = ".cedar"


@dataclass(frozen=True, slots=True)
class RawDecision:
    allowed: bool
    reasons: tuple[str, ...]
    errors: tuple[str, ...]


@dataclass(frozen=True)
class CompiledPolicies:
    """A validated, pre-parsed policy set and the facts about it tools need."""

    policy_set: Any  # cedarpy.PolicySet
    schema: Any  # cedarpy.Schema
    hash: str  # sha256 over schema + policy files: names every decision's policy set
    actions: frozenset[str]
    # @id -> {"effect", "file", "line", "annotations"}
    policies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    positional_ids: Mapping[str, str] = field(default_factory=dict)  # cedar "policyN" -> @id


def compile_directory(directory: Path | str) -> CompiledPolicies:
    """Load ``directory`` (non-recursive: test cases under ``tests/`` are not policies)."""
    root = Path(directory)
    if not root.is_dir():
        raise PolicyLoadError(f"policy directory {root} does not exist")
    schemas = sorted(root.glob(f"*{SCHEMA_SUFFIX}"))
    if len(schemas) != 1:
        raise PolicyLoadError(
            f"expected exactly one {SCHEMA_SUFFIX} file in {root}, found {len(schemas)}", file=str(root)
        )
    files = [(str(p), _read(p)) for p in sorted(root.glob(f"*{POLICY_SUFFIX}"))]
    return compile_sources((str(schemas[0]), _read(schemas[0])), files)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyLoadError(f"cannot read: {exc}", file=str(path)) from exc


def compile_sources(schema_source: tuple[str, str], files: Sequence[tuple[str, str]]) -> CompiledPolicies:
    """Compile ``(name, text)`` sources; see :func:`compile_directory`."""
    schema_name, schema_text = schema_source
    try:
        schema = cedarpy.Schema.from_str(schema_text)
    except ValueError as exc:
        raise PolicyLoadError(f"schema does not parse: {exc}", file=schema_name) from exc
    actions = frozenset(_schema_actions(schema_text))
    if not files:
        raise PolicyLoadError("no .cedar policy files found", file=schema_name)

    policies: dict[str, dict[str, Any]] = {}
    combined: list[str] = []
    for name, text in files:
        for index, stmt in enumerate(split_statements(text)):
            info = _check_statement(name, stmt.text, stmt.line, schema)
            pid = info["id"]
            if pid in policies:
                first = policies[pid]
                raise PolicyLoadError(
                    f'duplicate policy @id("{pid}") (first at {first["file"]}:{first["line"]})',
                    file=name,
                    line=stmt.line,
                )
            policies[pid] = {**info, "file": name, "line": stmt.line, "index": index}
            combined.append(stmt.text)

    text = "\n".join(combined)
    policy_set = cedarpy.PolicySet.from_str(text)
    positional = json.loads(cedarpy.policies_to_json_str(text))["staticPolicies"]
    positional_ids = {
        cedar_id: body.get("annotations", {}).get("id", cedar_id) for cedar_id, body in positional.items()
    }
    digest = hashlib.sha256()
    for name, body in [(Path(schema_name).name, schema_text), *[(Path(n).name, t) for n, t in files]]:
        digest.update(name.encode() + b"\0" + body.encode() + b"\0")
    frozen = {pid: MappingProxyType(info) for pid, info in policies.items()}
    return CompiledPolicies(
        policy_set=policy_set,
        schema=schema,
        hash=digest.hexdigest(),
        actions=actions,
        policies=MappingProxyType(frozen),
        positional_ids=MappingProxyType(positional_ids),
    )


def _check_statement(name: str, text: str, line: int, schema: Any) -> dict[str, Any]:
    """Parse and validate one policy statement; return its @id, effect and annotations."""
    try:
        est = json.loads(cedarpy.policies_to_json_str(text))["staticPolicies"]
    except ValueError as exc:
        raise PolicyLoadError(f"syntax error: {exc}", file=name, line=line) from exc
    if len(est) != 1:  # templates or an empty fragment
        raise PolicyLoadError("expected exactly one static policy (templates are not supported)", file=name, line=line)
    body = next(iter(est.values()))
    annotations = body.get("annotations", {})
    pid = annotations.get("id", "")
    if not pid:
        raise PolicyLoadError('every policy needs a non-empty @id("...") annotation', file=name, line=line)
    result = cedarpy.validate_policies(text, schema)
    if not result.validation_passed:
        detail = "; ".join(sorted({e.error for e in result.errors}))
        raise PolicyLoadError(f'policy "{pid}" fails schema validation: {detail}', file=name, line=line)
    return {"id": pid, "effect": body.get("effect", ""), "annotations": MappingProxyType(dict(annotations))}


def _schema_actions(schema_text: str) -> list[str]:
    """Requestable actions of a Cedar schema (human syntax): ``action A, B appliesTo {...}``.

    Action groups (declared without ``appliesTo``) are excluded: policies name them,
    requests never use them.
    """
    names: list[str] = []
    for stmt in split_statements(schema_text):
        code = " ".join(ln.split("//")[0] for ln in stmt.text.splitlines())
        code = " ".join(code.split())
        if not code.startswith("action ") or " appliesTo " not in f"{code} ":
            continue
        head = code[len("action ") :].split(" appliesTo")[0].split(" in ")[0]
        names.extend(part.strip().strip('"') for part in head.split(",") if part.strip())
    return names


def evaluate(
    compiled: CompiledPolicies, requests: Sequence[Mapping[str, Any]], entities_json: str
) -> list[RawDecision]:
    """Evaluate requests against one entity set. Never raises: failures become errors (deny)."""
    try:
        results = cedarpy.is_authorized_batch(
            list(requests), compiled.policy_set, entities_json, schema=compiled.schema
        )
    except Exception as exc:
        return [RawDecision(False, (), (f"evaluation failed: {exc}",)) for _ in requests]
    out: list[RawDecision] = []
    ids = compiled.positional_ids
    for result in results:
        diag = result.diagnostics
        errors = tuple(str(e) for e in diag.errors)
        reasons = tuple(ids.get(r, r) for r in diag.reasons)
        out.append(RawDecision(result.allowed and not errors, reasons, errors))
    return out
