"""Reading a gateway's audit file back in tests: parsed events and their OCSF fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["audit_path", "extra", "namespace", "operation", "read_events"]


def audit_path(data_dir: Path) -> Path:
    """Where a gateway with the default ``audit_log`` setting writes its events."""
    return data_dir / "audit" / "audit.jsonl"


def read_events(data_dir: Path) -> list[dict[str, Any]]:
    path = audit_path(data_dir)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def operation(event: dict[str, Any]) -> str:
    return str(event["api"]["operation"])


def namespace(event: dict[str, Any]) -> str:
    return str((event.get("resources") or [{}])[0].get("namespace", ""))


def extra(event: dict[str, Any]) -> dict[str, str]:
    return dict(event.get("unmapped", {}).get("extra", {}))
