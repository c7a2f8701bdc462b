"""Which decisions change between two policy sets: over the matrix, and over recorded requests.

Recorded requests come from the gateway's audit log: each event carries the
request it decided at ``unmapped.extra.authz_request``, the :func:`request_to_dict`
form serialised as a JSON string (OCSF ``unmapped.extra`` values are strings).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from openshell_authz._matrix import compute_matrix
from openshell_authz.authorizer import Authorizer, Request, request_from_dict

__all__ = ["CellChange", "ReplayChange", "ReplayReport", "matrix_changes", "recorded_request", "replay"]


@dataclass(frozen=True, slots=True)
class CellChange:
    role: str
    action: str
    scope: str
    old: bool
    new: bool


@dataclass(frozen=True, slots=True)
class ReplayChange:
    index: int  # 1-based position of the event among those read
    request: Request
    old: bool
    new: bool
    new_reasons: tuple[str, ...]


@dataclass(frozen=True)
class ReplayReport:
    replayed: int
    skipped: int  # events with no recorded request, or one that no longer parses
    changes: tuple[ReplayChange, ...]


def matrix_changes(old: Authorizer, new: Authorizer) -> list[CellChange]:
    """Cells whose decision differs; a cell present in only one set counts as denied in the other."""
    before = {(c.role, c.action, c.scope): c.allowed for c in compute_matrix(old)}
    after = {(c.role, c.action, c.scope): c.allowed for c in compute_matrix(new)}
    out = []
    for key in list(before) + [k for k in after if k not in before]:
        a, b = before.get(key, False), after.get(key, False)
        if a != b:
            out.append(CellChange(*key, a, b))
    return out


def recorded_request(event: Mapping[str, Any]) -> Request | None:
    """The request an audit event recorded, or None when it has none (or it is malformed)."""
    unmapped = event.get("unmapped")
    extra = unmapped.get("extra") if isinstance(unmapped, Mapping) else None
    raw = extra.get("authz_request") if isinstance(extra, Mapping) else None
    if not isinstance(raw, str):
        return None
    try:
        data = json.loads(raw)
        return request_from_dict(data) if isinstance(data, Mapping) else None
    except ValueError:  # json.JSONDecodeError is a ValueError too
        return None


def replay(old: Authorizer, new: Authorizer, events: Iterable[Mapping[str, Any]]) -> ReplayReport:
    """Decide every recorded request under both sets; report those that change."""
    requests: list[tuple[int, Request]] = []
    skipped = 0
    for index, event in enumerate(events, start=1):
        request = recorded_request(event)
        if request is None:
            skipped += 1
        else:
            requests.append((index, request))
    # One request per batch: recorded requests come from different moments, and two
    # versions of one object in one entity set would be merged.
    changes = []
    for index, request in requests:
        a, b = old.check(request), new.check(request)
        if a.allowed != b.allowed:
            changes.append(ReplayChange(index, request, a.allowed, b.allowed, b.reasons))
    return ReplayReport(len(requests), skipped, tuple(changes))
