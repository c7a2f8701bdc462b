"""The only module that imports cedarpy: compiles a policy directory, evaluates requests.

A directory holds one ``*.cedarschema`` file and any number of ``*.cedar`` files.
Compilation is all-or-nothing: every file must parse, every policy must carry a
unique ``@id`` and validate against the schema, or ``PolicyLoadError`` names the
file and line and nothing is returned.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import cedarpy

from openshell_authz._policy_text import split_statements
from openshell_authz.errors import PolicyLoadError

__all__ = [
    "CompiledPolicies",
    "RawDecision",
    "compile_directory",
    "compile_sources",
    "evaluate",
    "evaluate_one",
]

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
    # Hot-path caches (see evaluate): request shapes Cedar's validator accepted, and
    # parsed entity sets keyed by their JSON text. Both only ever affect speed.
    _validated: set[tuple[Any, ...]] = field(default_factory=set, repr=False, compare=False)
    _entities: OrderedDict[Any, Any] = field(default_factory=OrderedDict, repr=False, compare=False)
    # Principal slices (action hierarchy + the principal's closure) parsed once per principal.
    _bases: OrderedDict[str, Any] = field(default_factory=OrderedDict, repr=False, compare=False)
    # Decisions by everything they depend on (entity texts, request uids, context text):
    # Cedar is deterministic, so a repeated request skips evaluation. 0 turns it off.
    _decisions: OrderedDict[Any, RawDecision] = field(default_factory=OrderedDict, repr=False, compare=False)
    decision_cache_size: int = 4096
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # The schema's action hierarchy (action groups) as pre-parsed entities: evaluation
    # without the schema still needs to know that CreateSandbox is in Creates.
    action_entities: Any = None


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
    try:
        action_entities = cedarpy.Entities.from_json_str(json.dumps(_action_entities(schema_text)), schema)
    except ValueError as exc:
        raise PolicyLoadError(f"cannot build the action hierarchy: {exc}", file=schema_name) from exc
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
        action_entities=action_entities,
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


# Bounded by memory: one handle (a clone of the action hierarchy plus the request's entities)
# costs about 25 KB, so 1,024 of them about 25 MB.
ENTITY_CACHE_SIZE = 1024
BASE_CACHE_SIZE = 256
#: Entities for one request: one JSON array, or (principal slice, rest) from ``entity_slices``.
EntitiesArg = str | tuple[str, str]


def _shape(value: Any) -> Any:
    """The type structure of a context value (what Cedar's request validation depends on)."""
    if isinstance(value, Mapping):
        if "__entity" in value:
            return ("entity", value["__entity"].get("type"))
        return tuple(sorted((k, _shape(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return ("set", tuple(sorted({repr(_shape(v)) for v in value})))
    return type(value).__name__


def _signature(request: Mapping[str, Any]) -> tuple[Any, ...]:
    context = request.get("context")
    return (
        request["action"]["id"],
        request["principal"]["type"],
        request["resource"]["type"],
        _shape(context) if context else (),
    )


def _lru_put(compiled: CompiledPolicies, cache: OrderedDict[Any, Any], key: Any, value: Any, size: int) -> None:
    with compiled._lock:
        cache[key] = value
        if len(cache) > size:
            cache.popitem(last=False)


def _entities_handle(compiled: CompiledPolicies, entities: EntitiesArg) -> Any:
    cache = compiled._entities
    handle = cache.get(entities)  # a plain dict read is atomic; LRU order is best effort
    if handle is not None:
        return handle
    if isinstance(entities, str):
        handle = compiled.action_entities.with_added_json_str(entities)
    else:
        # Parse only the rest onto the principal's cached slice: a user's first call on a
        # new sandbox costs a clone plus one small parse, not the whole set.
        base_json, rest_json = entities
        base = compiled._bases.get(base_json)
        if base is None:
            base = compiled.action_entities.with_added_json_str(base_json)
            _lru_put(compiled, compiled._bases, base_json, base, BASE_CACHE_SIZE)
        handle = base.with_added_json_str(rest_json) if rest_json != "[]" else base
    _lru_put(compiled, cache, entities, handle, ENTITY_CACHE_SIZE)
    return handle


def _probe_internal() -> Callable[..., str] | None:
    """cedarpy's extension entry point, if it answers as the public wrapper expects.

    ``cedarpy.is_authorized`` wraps it with a JSON encode of the context, a request
    copy and result objects; calling it directly saves that per decision. Anything
    unexpected (another cedarpy version) falls back to the public API.
    """
    fn = getattr(getattr(cedarpy, "_internal", None), "is_authorized", None)
    if fn is None:
        return None
    try:
        ps = cedarpy.PolicySet.from_str("permit(principal, action, resource);")
        ents = cedarpy.Entities.from_json_str("[]")
        uid = {"type": "T", "id": "x"}
        request = {"principal": uid, "action": uid, "resource": uid, "context": "{}"}
        out = json.loads(fn(request, ps, ents._inner, None, False))
        if out["decision"] != "Allow" or "reason" not in out["diagnostics"]:
            return None
    except Exception:  # noqa: BLE001 - any surprise means: use the public API
        return None
    return fn


_INTERNAL = _probe_internal()
_EMPTY_CONTEXT = "{}"


def _authorize(
    request: Mapping[str, Any], policy_set: Any, entities: Any, schema: Any, context_json: str
) -> tuple[bool, list[Any], list[Any]]:
    """One Cedar decision: (allowed, reasons, errors); ``context_json`` is the request's context, encoded."""
    if _INTERNAL is not None:
        call = {
            "principal": request["principal"],
            "action": request["action"],
            "resource": request["resource"],
            "context": context_json,
        }
        out = json.loads(_INTERNAL(call, policy_set, entities._inner, schema, False))
        diag = out["diagnostics"]
        return out["decision"] == "Allow", diag.get("reason") or [], diag.get("errors") or []
    result = cedarpy.is_authorized(request, policy_set, entities, schema)
    return result.allowed, result.diagnostics.reasons, result.diagnostics.errors


def _action_entities(schema_text: str) -> list[dict[str, Any]]:
    """Every action and action group of the schema with its parent groups, as Cedar entities."""
    entities: dict[str, list[str]] = {}
    for stmt in split_statements(schema_text):
        code = " ".join(" ".join(ln.split("//")[0] for ln in stmt.text.splitlines()).split())
        if not code.startswith("action "):
            continue
        head = code[len("action ") :].split(" appliesTo")[0].rstrip(";").strip()
        names, _, groups = head.partition(" in ")
        parents = [g.strip().strip('"') for g in groups.strip().strip("[]").split(",") if g.strip()]
        for name in (n.strip().strip('"') for n in names.split(",") if n.strip()):
            entities.setdefault(name, []).extend(parents)
    for parents in list(entities.values()):
        for group in parents:
            entities.setdefault(group, [])
    return [
        {"uid": {"type": "Action", "id": name}, "attrs": {}, "parents": [{"type": "Action", "id": p} for p in parents]}
        for name, parents in entities.items()
    ]


def evaluate(
    compiled: CompiledPolicies, requests: Sequence[Mapping[str, Any]], entities_json: EntitiesArg
) -> list[RawDecision]:
    """Evaluate requests against one entity set. Never raises: failures become errors (deny).

    Every request shape (action, principal type, resource type, context structure) is
    first evaluated with the schema, so Cedar's request validation refuses what the
    schema does not allow; once Cedar accepted a shape, later requests of that shape
    skip re-validation. Parsed entity sets are reused by their exact JSON text.
    """
    try:
        entities = _entities_handle(compiled, entities_json)
    except Exception as exc:  # noqa: BLE001 - unparsable entities deny, reported
        return [RawDecision(False, (), (f"bad entities: {exc}",)) for _ in requests]
    signatures = [_signature(r) for r in requests]
    known = compiled._validated
    fresh = [i for i, sig in enumerate(signatures) if sig not in known]
    seen = [i for i, sig in enumerate(signatures) if sig in known]
    out: list[RawDecision | None] = [None] * len(requests)
    for indices, schema in ((seen, None), (fresh, compiled.schema)):
        if not indices:
            continue
        try:
            results = cedarpy.is_authorized_batch([requests[i] for i in indices], compiled.policy_set, entities, schema)
        except Exception as exc:  # noqa: BLE001 - the engine failing is a denial, reported
            for i in indices:
                out[i] = RawDecision(False, (), (f"evaluation failed: {exc}",))
            continue
        for i, result in zip(indices, results, strict=True):
            out[i] = _raw(compiled, result)
            if schema is not None and not any("failed to build request" in e for e in out[i].errors):
                known.add(signatures[i])
    return [r for r in out if r is not None]


def evaluate_one(compiled: CompiledPolicies, request: Mapping[str, Any], entities: EntitiesArg) -> RawDecision:
    """:func:`evaluate` for a single request, without the batch bookkeeping (the hot path)."""
    context = request.get("context")
    try:
        context_json = json.dumps(context, sort_keys=True) if context else _EMPTY_CONTEXT
    except (TypeError, ValueError) as exc:
        return RawDecision(False, (), (f"bad context: {exc}",))
    principal, resource = request["principal"], request["resource"]
    key = (
        entities, request["action"]["id"], principal["type"], principal["id"], resource["type"], resource["id"],
        context_json,
    )  # fmt: skip
    hit = compiled._decisions.get(key)  # a plain dict read is atomic
    if hit is not None:
        return hit
    try:
        handle = _entities_handle(compiled, entities)
    except Exception as exc:  # noqa: BLE001
        return RawDecision(False, (), (f"bad entities: {exc}",))
    signature = _signature(request)
    validated = signature in compiled._validated
    try:
        allowed, reasons, errors = _authorize(
            request, compiled.policy_set, handle, None if validated else compiled.schema, context_json
        )
    except Exception as exc:  # noqa: BLE001 - not cached: it may not recur
        return RawDecision(False, (), (f"evaluation failed: {exc}",))
    ids = compiled.positional_ids
    raw = RawDecision(
        allowed and not errors, tuple(ids.get(r, r) for r in reasons), tuple(map(str, errors)) if errors else ()
    )
    if not validated and not any("failed to build request" in e for e in raw.errors):
        compiled._validated.add(signature)
        validated = True
    if validated and compiled.decision_cache_size:
        _lru_put(compiled, compiled._decisions, key, raw, compiled.decision_cache_size)
    return raw


def _raw(compiled: CompiledPolicies, result: Any) -> RawDecision:
    diag = result.diagnostics
    errors = tuple(map(str, diag.errors)) if diag.errors else ()
    ids = compiled.positional_ids
    reasons = tuple(ids.get(r, r) for r in diag.reasons)
    return RawDecision(result.allowed and not errors, reasons, errors)
