"""Renders API responses for the terminal: aligned tables (the default) or JSON (``-o json``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from openshell_server.api import resources_pb2

__all__ = ["AUDIT_HEADER", "COLUMNS", "audit_row", "print_items", "print_json", "print_table"]

Row = Sequence[str]


def _time(ts: Timestamp, present: bool = True) -> str:
    if not present or (ts.seconds == 0 and ts.nanos == 0):
        return "-"
    return ts.ToDatetime().strftime("%Y-%m-%dT%H:%M:%SZ")


def _labels(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"


def _names(values: Iterable[str]) -> str:
    return ",".join(values) or "-"


def _limit(value: int) -> str:
    return str(value) if value else "-"


# Per resource message: the table header and how to turn one message into a row.
COLUMNS: dict[type[Message], tuple[Row, Callable[[Any], Row]]] = {
    resources_pb2.Namespace: (
        ("NAME", "PHASE", "QUOTA-MODE", "MAX-SANDBOXES", "MAX-GPUS", "LABELS"),
        lambda n: (
            n.meta.name,
            n.phase,
            n.quota_mode,
            _limit(n.quota.max_sandboxes),
            _limit(n.quota.max_gpus),
            _labels(n.meta.labels),
        ),
    ),
    resources_pb2.Member: (
        ("NAMESPACE", "PRINCIPAL", "ROLE", "KIND"),
        lambda m: (m.namespace, m.principal, m.role, m.member_kind),
    ),
    resources_pb2.ServiceAccount: (
        ("NAMESPACE", "NAME", "SUBJECT", "CREATED"),
        lambda s: (s.meta.namespace, s.meta.name, s.subject, _time(s.meta.created_at)),
    ),
    resources_pb2.Sandbox: (
        ("NAMESPACE", "NAME", "PHASE", "GPUS", "PROVIDERS", "EXPIRES"),
        lambda s: (
            s.meta.namespace,
            s.meta.name,
            s.phase,
            str(s.gpus),
            _names(s.providers),
            _time(s.expires_at, s.HasField("expires_at")),
        ),
    ),
    resources_pb2.Provider: (
        ("NAMESPACE", "NAME", "TYPE", "ENDPOINTS", "CREDENTIALS"),
        lambda p: (
            p.meta.namespace,
            p.meta.name,
            p.type,
            _names(p.profile.endpoints),
            _names(p.credential_keys),
        ),
    ),
    resources_pb2.LogLine: (
        ("TIME", "STREAM", "TEXT"),
        lambda line: (_time(line.time), line.stream, line.text),
    ),
}


AUDIT_HEADER: Row = ("TIME", "ACTOR", "OPERATION", "NAMESPACE", "TARGET", "OUTCOME", "STATUS")


def _field(event: Mapping[str, Any], *path: str | int) -> str:
    """The value at ``path`` in a decoded event, or ``-`` when a step is missing (events vary in shape)."""
    value: Any = event
    for step in path:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            return "-"
    return "-" if value in ("", None) else str(value)


def _event_time(event: Mapping[str, Any]) -> str:
    millis = event.get("time")
    if not isinstance(millis, int | float) or isinstance(millis, bool):
        return "-"
    try:
        return datetime.fromtimestamp(millis / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return "-"


def audit_row(event: Mapping[str, Any]) -> Row:
    """One OCSF API Activity event as a row under :data:`AUDIT_HEADER`."""
    target = _field(event, "resources", 0, "name")
    if target == "-":
        target = _field(event, "resources", 0, "uid")
    return (
        _event_time(event),
        _field(event, "actor", "user", "uid"),
        _field(event, "api", "operation"),
        _field(event, "resources", 0, "namespace"),
        target,
        _field(event, "unmapped", "outcome"),
        _field(event, "status_code"),
    )


def print_items(kind: type[Message], items: Sequence[Message], out: TextIO) -> None:
    """``items`` (all of message type ``kind``) as a table with the columns of :data:`COLUMNS`."""
    header, to_row = COLUMNS[kind]
    print_table(header, [to_row(item) for item in items], out)


def print_table(header: Row, rows: Sequence[Row], out: TextIO) -> None:
    """Columns left-aligned and separated by at least two spaces (kubectl style)."""
    if not rows:
        print("No resources found.", file=out)
        return
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out)


def print_json(message: Message, out: TextIO) -> None:
    """The response message as JSON with proto field names; fields at their default are included."""
    data = MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    print(json.dumps(data, indent=2), file=out)
