"""Store consistency checks, read straight from the database (SQLite or PostgreSQL) behind a gateway.

:class:`InvariantChecker` is called after every batch of hostile or concurrent calls and
returns the violated invariants (empty = consistent). It keeps what it saw last time, so
a hard quota is checked against sandboxes created since, not against a limit an admin
lowered below existing usage (which the API allows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

__all__ = ["InvariantChecker"]

_ORPHANS = {
    "sandbox": "SELECT id FROM sandboxes WHERE namespace_id NOT IN (SELECT id FROM namespaces)",
    "provider": "SELECT id FROM providers WHERE namespace_id NOT IN (SELECT id FROM namespaces)",
    "service account": "SELECT id FROM service_accounts WHERE namespace_id NOT IN (SELECT id FROM namespaces)",
    "membership": "SELECT principal_id FROM memberships WHERE namespace_id NOT IN (SELECT id FROM namespaces)",
    "attachment": "SELECT sandbox_id FROM sandbox_providers WHERE sandbox_id NOT IN (SELECT id FROM sandboxes)"
    " OR provider_id NOT IN (SELECT id FROM providers)",
    "cross-namespace attachment": "SELECT sp.sandbox_id FROM sandbox_providers sp"
    " JOIN sandboxes s ON s.id = sp.sandbox_id JOIN providers p ON p.id = sp.provider_id"
    " WHERE s.namespace_id <> p.namespace_id",
    "sandbox created in a terminating namespace": "SELECT s.id FROM sandboxes s JOIN namespaces n"
    " ON n.id = s.namespace_id WHERE n.deletion_timestamp IS NOT NULL AND s.created_at > n.deletion_timestamp",
}


@dataclass
class InvariantChecker:
    database_url: str
    max_members: int = 1000
    checks: int = 0
    _seen: dict[str, tuple[int, frozenset[str]]] = field(default_factory=dict)  # ns id -> (version, sandbox ids)
    _engine: Any = None

    def __post_init__(self) -> None:
        self._engine = sa.create_engine(self.database_url, poolclass=sa.pool.NullPool)

    def violations(self) -> list[str]:
        self.checks += 1
        found: list[str] = []
        with self._engine.connect() as conn:
            for what, query in _ORPHANS.items():
                rows = conn.execute(sa.text(query)).fetchall()
                if rows:
                    found.append(f"{len(rows)} {what} row(s) without a consistent parent: {rows[:3]}")
            default = conn.execute(sa.text("SELECT count(*) FROM namespaces WHERE name = 'default'")).scalar()
            if default != 1:
                found.append("the default namespace is gone")
            for ns_id, count in conn.execute(
                sa.text("SELECT namespace_id, count(*) FROM memberships GROUP BY namespace_id")
            ).fetchall():
                if count > self.max_members:
                    found.append(f"namespace {ns_id} has {count} members (limit {self.max_members})")
            found += self._quota(conn)
        return found

    def _quota(self, conn: Any) -> list[str]:
        found = []
        namespaces = conn.execute(
            sa.text("SELECT id, name, resource_version, max_sandboxes, quota_mode FROM namespaces")
        ).fetchall()
        seen: dict[str, tuple[int, frozenset[str]]] = {}
        for ns_id, name, version, limit, mode in namespaces:
            ids = frozenset(
                r[0] for r in conn.execute(sa.text("SELECT id FROM sandboxes WHERE namespace_id = :n"), {"n": ns_id})
            )
            seen[ns_id] = (version, ids)
            if mode != "hard" or not limit or len(ids) <= limit:
                continue
            before = self._seen.get(ns_id)
            # Over the limit is only a violation if sandboxes were added while the limit stood unchanged.
            if before is None or (before[0] == version and ids - before[1]):
                found.append(f"namespace {name} holds {len(ids)} sandboxes, hard limit {limit}")
        self._seen = seen
        return found

    def close(self) -> None:
        self._engine.dispose()
