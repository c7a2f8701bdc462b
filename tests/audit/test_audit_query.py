"""ListAuditEvents' reader: filters, ordering and opaque-token pagination over a rotated log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from openshell_authz._audit_chain import chain_files
from openshell_server.audit import AuditQuery, AuditRecord, JsonlChainSink, query_events

RecordFactory = Callable[..., AuditRecord]
T0 = datetime(2025, 1, 1, tzinfo=UTC)
NAMESPACES = ["team-a", "team-b", ""]
ACTIONS = ["CreateSandbox", "DeleteSandbox", "UpdateNamespace", "AddMember"]


def _seq(events: list[dict[str, Any]]) -> list[int]:
    return [int(e["metadata"]["correlation_uid"]) for e in events]


@pytest.fixture
def log(tmp_path: Path, make_record: RecordFactory) -> Iterator[JsonlChainSink]:
    """30 events, one per second, cycling namespaces/outcomes/actions; event i has correlation id str(i)."""
    sink = JsonlChainSink(tmp_path / "audit.jsonl", max_bytes=8000)
    for i in range(30):
        action = ACTIONS[i % 4]
        sink.emit(
            make_record(
                time=T0 + timedelta(seconds=i),
                actor_id=f"https://idp#user{i % 2}" if i % 5 else "sandbox:sb-x",
                actor_kind="user" if i % 5 else "supervisor",
                on_behalf_of="" if i % 5 else "https://idp#user1",
                target_namespace=NAMESPACES[i % 3],
                outcome="denied" if i % 3 == 1 else ("error" if i % 7 == 0 else "allowed"),
                status_code="OK",
                action=action,
                rpc=f"/openshell.v1.OpenShell/{action}",
                correlation_id=str(i),
            )
        )
    yield sink
    sink.close()


def _all(log: JsonlChainSink, query: AuditQuery, page_size: int = 1000) -> list[int]:
    """Every matching event, walking pages of ``page_size``."""
    seen: list[int] = []
    token = ""
    while True:
        page, token = query_events(log.files(), query, page_size, token)
        assert page or not seen  # never an empty page after a token
        assert len(page) <= page_size
        seen += _seq(page)
        if not token:
            return seen


def test_default_is_everything_newest_first(log: JsonlChainSink) -> None:
    assert len(log.files()) > 3
    assert _all(log, AuditQuery()) == list(range(29, -1, -1))
    assert _all(log, AuditQuery(newest_first=False)) == list(range(30))


@pytest.mark.parametrize("page_size", [1, 4, 7, 29, 30, 31])
@pytest.mark.parametrize("newest_first", [True, False])
def test_pages_cover_everything_once(log: JsonlChainSink, page_size: int, newest_first: bool) -> None:
    expected = list(range(30)) if not newest_first else list(range(29, -1, -1))
    assert _all(log, AuditQuery(newest_first=newest_first), page_size) == expected


def test_namespace_scope(log: JsonlChainSink) -> None:
    assert _all(log, AuditQuery(namespaces=frozenset({"team-a"}), newest_first=False)) == list(range(0, 30, 3))
    both = _all(log, AuditQuery(namespaces=frozenset({"team-a", "team-b"}), newest_first=False))
    assert both == [i for i in range(30) if i % 3 != 2]
    assert _all(log, AuditQuery(namespaces=frozenset())) == []  # an empty scope sees nothing


def test_principal_includes_supervisor_on_behalf(log: JsonlChainSink) -> None:
    user1 = _all(log, AuditQuery(principal="https://idp#user1", newest_first=False))
    assert user1 == [i for i in range(30) if i % 5 == 0 or i % 2 == 1]
    assert _all(log, AuditQuery(principal="sandbox:sb-x", newest_first=False)) == list(range(0, 30, 5))
    assert _all(log, AuditQuery(principal="nobody")) == []


@pytest.mark.parametrize(
    "operation", ["DeleteSandbox", "/openshell.v1.OpenShell/DeleteSandbox", 'OpenShell::Action::"DeleteSandbox"']
)
def test_operation_by_method_rpc_or_action(log: JsonlChainSink, make_record: RecordFactory, operation: str) -> None:
    log.emit(make_record(action='OpenShell::Action::"DeleteSandbox"', rpc="/openshell.v1.OpenShell/DeleteSandbox",
                         correlation_id="30"))  # fmt: skip
    # Every spelling finds the deletes recorded with a bare action name and the one with a qualified name.
    assert _all(log, AuditQuery(operation=operation, newest_first=False)) == [*range(1, 30, 4), 30]


def test_outcome_and_time_range(log: JsonlChainSink) -> None:
    denied = _all(log, AuditQuery(outcome="denied", newest_first=False))
    assert denied == [i for i in range(30) if i % 3 == 1]
    window = AuditQuery(since=T0 + timedelta(seconds=10), until=T0 + timedelta(seconds=20), newest_first=False)
    assert _all(log, window) == list(range(10, 20))  # since inclusive, until exclusive
    combined = AuditQuery(
        namespaces=frozenset({"team-b"}), outcome="denied", since=T0 + timedelta(seconds=10), newest_first=False
    )
    assert _all(log, combined, page_size=2) == [i for i in range(10, 30) if i % 3 == 1]


def test_token_survives_rotation_and_new_writes(log: JsonlChainSink, make_record: RecordFactory) -> None:
    query = AuditQuery()
    first, token = query_events(log.files(), query, 10)
    assert _seq(first) == list(range(29, 19, -1))
    before = len(log.files())
    for i in range(30, 40):  # enough to rotate again
        log.emit(make_record(time=T0 + timedelta(seconds=i), correlation_id=str(i)))
    assert len(log.files()) > before
    second, token = query_events(log.files(), query, 10, token)
    assert _seq(second) == list(range(19, 9, -1))

    forward, token = query_events(log.files(), AuditQuery(newest_first=False), 35)
    rest, token = query_events(log.files(), AuditQuery(newest_first=False), 35, token)
    assert _seq(forward) + _seq(rest) == list(range(40)) and token == ""


def test_bad_tokens_and_sizes_are_clear_errors(log: JsonlChainSink, tmp_path: Path) -> None:
    _, token = query_events(log.files(), AuditQuery(), 5)
    for bad in ["not base64!", "bm90IGpzb24=", token[:-8]]:
        with pytest.raises(ValueError, match="invalid page token") as info:
            query_events(log.files(), AuditQuery(), 5, bad)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="different query"):
        query_events(log.files(), AuditQuery(outcome="denied"), 5, token)
    with pytest.raises(ValueError, match="no longer in the audit log"):
        query_events(chain_files(tmp_path / "other.jsonl"), AuditQuery(), 5, token)
    with pytest.raises(ValueError, match="page size"):
        query_events(log.files(), AuditQuery(), 0)
    with pytest.raises(ValueError, match="outcome"):
        AuditQuery(outcome="granted")
    with pytest.raises(ValueError, match="timezone-aware"):
        AuditQuery(since=datetime(2025, 1, 1))


def test_empty_log(tmp_path: Path) -> None:
    assert query_events(chain_files(tmp_path / "audit.jsonl"), AuditQuery()) == ([], "")
