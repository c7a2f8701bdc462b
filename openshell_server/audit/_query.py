"""Reading the audit log back for ListAuditEvents: filters and opaque-token pagination.

The caller's scope is decided by policy in the gateway and passed in as
``AuditQuery.namespaces``; this module only applies it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from openshell_authz._audit_chain import line_hash
from openshell_server.audit._ocsf import _action_name
from openshell_server.audit._record import OUTCOMES
from openshell_server.audit._tail import iter_lines_reversed

__all__ = ["MAX_PAGE_SIZE", "AuditQuery", "query_events"]

MAX_PAGE_SIZE = 1000


@dataclass(frozen=True, kw_only=True)
class AuditQuery:
    """Filters for :func:`query_events`; empty string / ``None`` means "any".

    * ``namespaces``: ``None`` = every event; otherwise only events whose target
      is in one of these namespaces (events with no namespace are then excluded).
    * ``principal``: the actor's principal id, or the principal a supervisor acted for.
    * ``operation``: the RPC method (``CreateSandbox``), full RPC name, or Cedar action
      (bare or qualified: ``OpenShell::Action::"CreateSandbox"``).
    * ``since`` (inclusive) / ``until`` (exclusive): timezone-aware datetimes.
    * ``newest_first``: order of results (default newest first).
    """

    namespaces: frozenset[str] | None = None
    principal: str = ""
    operation: str = ""
    outcome: str = ""
    since: datetime | None = None
    until: datetime | None = None
    newest_first: bool = True

    def __post_init__(self) -> None:
        if self.outcome and self.outcome not in OUTCOMES:
            raise ValueError(f"outcome filter {self.outcome!r} is not one of {sorted(OUTCOMES)}")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"audit query {name!r} must be timezone-aware")
        if self.namespaces is not None and not isinstance(self.namespaces, frozenset):
            object.__setattr__(self, "namespaces", frozenset(self.namespaces))

    def _fingerprint(self) -> str:
        """Binds a page token to the query that issued it."""
        parts = [
            sorted(self.namespaces) if self.namespaces is not None else None,
            self.principal, self.operation, self.outcome,
            _ms(self.since), _ms(self.until), self.newest_first,
        ]  # fmt: skip
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]

    def matches(self, event: dict[str, Any]) -> bool:
        unmapped = event.get("unmapped") or {}
        if self.namespaces is not None:
            resources = event.get("resources") or [{}]
            if resources[0].get("namespace", "") not in self.namespaces:
                return False
        if self.principal and self.principal not in (
            ((event.get("actor") or {}).get("user") or {}).get("uid"),
            unmapped.get("on_behalf_of"),
        ):
            return False
        if self.operation:
            action = str(unmapped.get("cedar_action", ""))
            recorded = {(event.get("api") or {}).get("operation"), unmapped.get("rpc"), action, _action_name(action)}
            if recorded.isdisjoint({self.operation, _action_name(self.operation)}):
                return False
        if self.outcome and unmapped.get("outcome") != self.outcome:
            return False
        time = event.get("time")
        if not isinstance(time, int):
            return self.since is None and self.until is None
        since, until = _ms(self.since), _ms(self.until)
        return (since is None or time >= since) and (until is None or time < until)


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def _lines(paths: Sequence[Path], newest_first: bool) -> Iterator[bytes]:
    """Complete lines of ``paths`` (oldest file first) in the requested order."""
    if newest_first:
        for path in reversed(paths):
            yield from iter_lines_reversed(path)
        return
    for path in paths:
        with Path(path).open("rb") as handle:
            for raw in handle:
                if raw.endswith(b"\n"):
                    yield raw[:-1]


def _encode_token(after: str, fingerprint: str) -> str:
    raw = json.dumps({"after": after, "query": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _decode_token(token: str, fingerprint: str) -> str:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        after = data["after"]
        query = data["query"]
        if not isinstance(after, str) or not isinstance(query, str):
            raise TypeError
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeError):
        raise ValueError("invalid page token: pass next_page_token from the previous page unchanged") from None
    if query != fingerprint:
        raise ValueError("page token belongs to a different query: repeat the same filters or drop the token")
    return after


def query_events(
    paths: Sequence[Path], query: AuditQuery, page_size: int = 100, page_token: str = ""
) -> tuple[list[dict[str, Any]], str]:
    """One page of events from ``paths`` (the chain's files, oldest first) matching ``query``.

    Returns the events (parsed JSON lines, chain fields included) and the token
    for the next page, ``""`` when there is none. The token names the last
    event returned by its line hash, so it survives rotation and new writes.
    Raises ``ValueError`` for a bad page size or token.
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    fingerprint = query._fingerprint()
    after = _decode_token(page_token, fingerprint) if page_token else None
    page: list[dict[str, Any]] = []
    last = ""
    for line in _lines(paths, query.newest_first):
        if after is not None:
            if line_hash(line) == after:
                after = None
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a damaged line is audit verify's business; it cannot match a filter
        if not isinstance(event, dict) or not query.matches(event):
            continue
        if len(page) == page_size:
            return page, _encode_token(last, fingerprint)
        page.append(event)
        last = line_hash(line)
    if after is not None:
        raise ValueError("page token points at an event no longer in the audit log: start again without it")
    return page, ""
