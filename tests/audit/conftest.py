"""Fixtures for the audit-trail tests: a record factory and a rotated, chained log on disk."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from openshell_server.audit import AuditRecord, JsonlChainSink

RecordFactory = Callable[..., AuditRecord]
T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def make_record() -> RecordFactory:
    """Builds an AuditRecord with sensible defaults; keyword arguments override fields."""

    def build(**overrides: Any) -> AuditRecord:
        fields: dict[str, Any] = {
            "time": T0,
            "actor_id": "https://idp.example#alice",
            "actor_kind": "user",
            "actor_issuer": "https://idp.example",
            "rpc": "/openshell.v1.OpenShell/CreateSandbox",
            "action": 'OpenShell::Action::"CreateSandbox"',
            "outcome": "allowed",
            "status_code": "OK",
            "target_kind": "sandbox",
            "target_namespace": "default",
            "target_name": "sb",
            "target_id": "sb-id",
            "policy_ids": ("policy0",),
            "policy_hash": "f" * 64,
            "source_address": "ipv4:127.0.0.1:50000",
            "correlation_id": "corr",
            "mutating": True,
        }
        fields.update(overrides)
        return AuditRecord(**fields)

    return build


@pytest.fixture
def rotated_log(tmp_path: Path, make_record: RecordFactory) -> Path:
    """An active log path whose chain holds 24 events spread over several rotated files."""
    path = tmp_path / "audit" / "audit.jsonl"
    sink = JsonlChainSink(path, max_bytes=6000)
    try:
        for i in range(24):
            sink.emit(make_record(time=T0 + timedelta(seconds=i), target_name=f"sb{i}", correlation_id=f"c{i}"))
    finally:
        sink.close()
    return path
