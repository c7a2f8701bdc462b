"""The SQLAlchemy Core implementation of :class:`~openshell_server.store.Store`.

One class serves SQLite and PostgreSQL. Every write runs in one transaction that
first locks what it depends on: the namespace row (``SELECT ... FOR UPDATE`` on
PostgreSQL; on SQLite the whole database is locked by ``BEGIN IMMEDIATE`` and the
``FOR UPDATE`` renders as nothing). Checks (quota, member cap, namespace phase,
emptiness) and the insert or delete they guard therefore see the same state,
across threads and across gateway processes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from openshell_authz.models import NamespaceRole, is_dns1123_label

from . import _schema as t
from ._commit_hooks import run_before_commit
from ._engine import WRITE_OPTION
from ._errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    MemberLimitExceeded,
    NamespaceNotEmpty,
    NamespaceTerminating,
    NotFound,
    ProviderInUse,
    QuotaExceeded,
)
from ._records import (
    UNLIMITED,
    CreateSandboxResult,
    GatewayConfig,
    LogLine,
    MembershipRecord,
    NamespacePhase,
    NamespaceRecord,
    ProviderRecord,
    QuotaLimits,
    QuotaMode,
    QuotaUsage,
    QuotaViolation,
    SandboxPage,
    SandboxRecord,
    ServiceAccountRecord,
)

__all__ = ["DEFAULT_MAX_MEMBERS", "SqlStore"]

DEFAULT_MAX_MEMBERS = 1000
DEFAULT_SANDBOX_PHASE = "Provisioning"
SYSTEM_PRINCIPAL = "system"
_GATEWAY_CONFIG_ROW = 1
_DEFAULT_LOG_KEEP = 10_000
# Kubernetes-style label keys (optional DNS prefix + "/"); also keeps SQLite JSON paths safe.
_LABEL_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,251}[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_NS_COLS = (
    t.namespaces.c.id,
    t.namespaces.c.name,
    t.namespaces.c.phase,
    t.namespaces.c.labels,
    t.namespaces.c.max_sandboxes,
    t.namespaces.c.max_gpus,
    t.namespaces.c.max_sandbox_lifetime_seconds,
    t.namespaces.c.ceiling_max_sandboxes,
    t.namespaces.c.ceiling_max_gpus,
    t.namespaces.c.ceiling_max_sandbox_lifetime_seconds,
    t.namespaces.c.quota_mode,
    t.namespaces.c.created_by,
    t.namespaces.c.created_at,
    t.namespaces.c.resource_version,
    t.namespaces.c.deletion_timestamp,
)
# Order matches SandboxRecord's fields up to resource_version, then spec.
_SB_COLS = (
    t.sandboxes.c.id,
    t.sandboxes.c.namespace_id,
    t.sandboxes.c.name,
    t.sandboxes.c.labels,
    t.sandboxes.c.gpus,
    t.sandboxes.c.phase,
    t.sandboxes.c.message,
    t.sandboxes.c.created_by,
    t.sandboxes.c.created_at,
    t.sandboxes.c.expires_at,
    t.sandboxes.c.resource_version,
    t.sandboxes.c.spec,
)
_PV_COLS = (
    t.providers.c.id,
    t.providers.c.namespace_id,
    t.providers.c.name,
    t.providers.c.type,
    t.providers.c.labels,
    t.providers.c.profile,
    t.providers.c.created_by,
    t.providers.c.created_at,
    t.providers.c.resource_version,
)
_SA_COLS = (
    t.service_accounts.c.id,
    t.service_accounts.c.namespace_id,
    t.service_accounts.c.name,
    t.service_accounts.c.labels,
    t.service_accounts.c.created_by,
    t.service_accounts.c.created_at,
    t.service_accounts.c.resource_version,
)
_MB_COLS = (
    t.memberships.c.namespace_id,
    t.memberships.c.principal_id,
    t.memberships.c.role,
    t.memberships.c.created_by,
    t.memberships.c.created_at,
)


# --------------------------------------------------------------------------- helpers


def _now(now: datetime | None) -> datetime:
    return datetime.now(UTC) if now is None else now


def _new_id() -> str:
    return str(uuid.uuid4())


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not is_dns1123_label(name):
        raise InvalidArgument(
            f"{kind} name {name!r} is not a DNS-1123 label (lowercase letters, digits and '-', "
            "starting and ending alphanumeric, at most 63 characters)"
        )


def _labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    if labels is None:
        return {}
    for key, value in labels.items():
        if not isinstance(key, str) or not _LABEL_KEY.match(key):
            raise InvalidArgument(f"label key {key!r} is invalid: use letters, digits, '.', '_', '-', '/'")
        if not isinstance(value, str):
            raise InvalidArgument(f"label {key!r} must have a string value, got {type(value).__name__}")
    return dict(labels)


def _profile(profile: Mapping[str, Any] | None) -> dict[str, Any]:
    profile = dict(profile or {})
    unknown = set(profile) - {"endpoints", "env"}
    if unknown:
        raise InvalidArgument(f"provider profile has unknown field(s) {sorted(unknown)}; allowed: endpoints, env")
    endpoints = profile.get("endpoints") or []
    env = profile.get("env") or {}
    if not isinstance(endpoints, list | tuple) or not all(isinstance(e, str) and e for e in endpoints):
        raise InvalidArgument("provider profile 'endpoints' must be a list of non-empty strings")
    if not isinstance(env, Mapping) or not all(
        isinstance(k, str) and _ENV_NAME.match(k) and isinstance(v, str) for k, v in env.items()
    ):
        raise InvalidArgument("provider profile 'env' must map environment variable names to strings")
    return {"endpoints": list(endpoints), "env": dict(env)}


def _credentials(credentials: Mapping[str, str] | None) -> dict[str, str]:
    credentials = dict(credentials or {})
    for key, value in credentials.items():
        if not isinstance(key, str) or not _ENV_NAME.match(key) or not isinstance(value, str):
            raise InvalidArgument(
                f"credential {key!r} is invalid: credentials map environment variable names to strings"
            )
    return credentials


def _role(role: str) -> str:
    try:
        return NamespaceRole(role).value
    except ValueError:
        allowed = ", ".join(r.value for r in NamespaceRole)
        raise InvalidArgument(f"role {role!r} is not a namespace role; use one of: {allowed}") from None


def _quota_mode(mode: str) -> QuotaMode:
    try:
        return QuotaMode(mode)
    except ValueError:
        raise InvalidArgument(f"quota mode {mode!r} is invalid; use 'hard' or 'soft'") from None


def _selector_clauses(table: sa.Table, selector: Mapping[str, str] | None) -> list[sa.ColumnElement[bool]]:
    """Equality label selector, evaluated in SQL (JSON_EXTRACT on SQLite, ->> on PostgreSQL)."""
    selector = _labels(selector)
    return [table.c.labels[key].as_string() == value for key, value in selector.items()]


def _is_unique_violation(exc: IntegrityError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return sqlstate == "23505" if sqlstate else "UNIQUE" in str(exc.orig)


def _encode_token(namespace_id: str, name: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([namespace_id, name]).encode()).decode()


def _decode_token(token: str) -> tuple[str, str]:
    try:
        ns, name = json.loads(base64.urlsafe_b64decode(token.encode()))
        if isinstance(ns, str) and isinstance(name, str):
            return ns, name
    except (ValueError, TypeError, binascii.Error):
        pass
    raise InvalidArgument("page_token is malformed; pass the next_page_token of a previous page")


def _ns_record(row: Sequence[Any]) -> NamespaceRecord:
    return NamespaceRecord(
        id=row[0],
        name=row[1],
        phase=NamespacePhase(row[2]),
        labels=row[3],
        limits=QuotaLimits(row[4], row[5], row[6]),
        ceiling=QuotaLimits(row[7], row[8], row[9]),
        quota_mode=QuotaMode(row[10]),
        created_by=row[11],
        created_at=row[12],
        resource_version=row[13],
        deletion_timestamp=row[14],
    )


def _sb_record(row: Sequence[Any], provider_ids: frozenset[str]) -> SandboxRecord:
    return SandboxRecord(*row[:11], provider_ids, row[11])  # type: ignore[arg-type]


def _pv_record(row: Sequence[Any]) -> ProviderRecord:
    return ProviderRecord(*row)


def _sa_record(row: Sequence[Any]) -> ServiceAccountRecord:
    return ServiceAccountRecord(*row)


def _mb_record(row: Sequence[Any]) -> MembershipRecord:
    return MembershipRecord(*row)


def _limit_columns(limits: QuotaLimits, prefix: str = "") -> dict[str, int]:
    return {
        f"{prefix}max_sandboxes": limits.max_sandboxes,
        f"{prefix}max_gpus": limits.max_gpus,
        f"{prefix}max_sandbox_lifetime_seconds": limits.max_sandbox_lifetime_seconds,
    }


# --------------------------------------------------------------------------- store


class SqlStore:
    """The gateway store on SQLite or PostgreSQL; create it with :func:`open_store`."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE_OPTION: True})

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.begin() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._writer.begin() as conn:
            yield conn
            run_before_commit()  # e.g. the call's audit event; raising rolls the write back

    def _lock_namespace(self, conn: Connection, namespace_id: str, *, creating: bool = False) -> NamespaceRecord:
        row = conn.execute(sa.select(*_NS_COLS).where(t.namespaces.c.id == namespace_id).with_for_update()).first()
        if row is None:
            raise NotFound(f"namespace with id {namespace_id!r} not found")
        ns = _ns_record(row)
        if creating and ns.phase != NamespacePhase.ACTIVE:
            raise NamespaceTerminating(ns.name)
        return ns

    def _insert(self, conn: Connection, table: sa.Table, values: dict[str, Any], what: str) -> None:
        try:
            # A savepoint is not needed: on a unique violation the whole write is abandoned.
            conn.execute(table.insert().values(**values))
        except IntegrityError as exc:
            if _is_unique_violation(exc):
                raise AlreadyExists(f"{what} already exists") from None
            raise

    def _cas_update(
        self,
        conn: Connection,
        table: sa.Table,
        object_id: str,
        expected: int | None,
        values: dict[str, Any],
        kind: str,
        cols: Sequence[sa.ColumnElement[Any]],
    ) -> Sequence[Any]:
        stmt = sa.update(table).where(table.c.id == object_id)
        if expected is not None:
            stmt = stmt.where(table.c.resource_version == expected)
        row = conn.execute(
            stmt.values(**values, resource_version=table.c.resource_version + 1).returning(*cols)
        ).first()
        if row is not None:
            return row
        current = conn.execute(sa.select(table.c.name, table.c.resource_version).where(table.c.id == object_id)).first()
        if current is None:
            raise NotFound(f"{kind} with id {object_id!r} not found")
        raise Conflict(
            f"{kind} {current[0]!r} was modified concurrently (resource_version is {current[1]}, "
            f"expected {expected}); read it again and retry"
        )

    # ------------------------------------------------------------------ namespaces

    def ensure_default(self, *, now: datetime | None = None) -> NamespaceRecord:
        """Create the ``default`` namespace if missing; idempotent and safe across processes."""
        try:
            return self.get_namespace_by_name("default")
        except NotFound:
            pass
        try:
            return self.create_namespace("default", created_by=SYSTEM_PRINCIPAL, now=now)
        except AlreadyExists:
            return self.get_namespace_by_name("default")

    def create_namespace(
        self,
        name: str,
        *,
        created_by: str,
        labels: Mapping[str, str] | None = None,
        limits: QuotaLimits = UNLIMITED,
        ceiling: QuotaLimits = UNLIMITED,
        quota_mode: str = QuotaMode.HARD,
        now: datetime | None = None,
    ) -> NamespaceRecord:
        _check_name("namespace", name)
        values = {
            "id": _new_id(),
            "name": name,
            "phase": NamespacePhase.ACTIVE.value,
            "labels": _labels(labels),
            **_limit_columns(limits),
            **_limit_columns(ceiling, "ceiling_"),
            "quota_mode": _quota_mode(quota_mode).value,
            "deletion_timestamp": None,
            "created_by": created_by,
            "created_at": _now(now),
            "resource_version": 1,
        }
        with self._write() as conn:
            self._insert(conn, t.namespaces, values, f"namespace {name!r}")
            row = conn.execute(sa.select(*_NS_COLS).where(t.namespaces.c.id == values["id"])).one()
        return _ns_record(row)

    def get_namespace_by_name(self, name: str) -> NamespaceRecord:
        with self._read() as conn:
            row = conn.execute(sa.select(*_NS_COLS).where(t.namespaces.c.name == name)).first()
        if row is None:
            raise NotFound(f"namespace {name!r} not found")
        return _ns_record(row)

    def get_namespace_by_id(self, namespace_id: str) -> NamespaceRecord:
        with self._read() as conn:
            row = conn.execute(sa.select(*_NS_COLS).where(t.namespaces.c.id == namespace_id)).first()
        if row is None:
            raise NotFound(f"namespace with id {namespace_id!r} not found")
        return _ns_record(row)

    def list_namespaces(
        self, ids: Collection[str] | None = None, *, label_selector: Mapping[str, str] | None = None
    ) -> list[NamespaceRecord]:
        if ids is not None and not ids:
            return []
        stmt = sa.select(*_NS_COLS).where(*_selector_clauses(t.namespaces, label_selector))
        if ids is not None:
            stmt = stmt.where(self._in(t.namespaces.c.id, ids))
        with self._read() as conn:
            return [_ns_record(r) for r in conn.execute(stmt.order_by(t.namespaces.c.name))]

    def get_namespace_usage(self, namespace_id: str) -> QuotaUsage:
        with self._read() as conn:
            return self._usage(conn, namespace_id)

    def _usage(self, conn: Connection, namespace_id: str) -> QuotaUsage:
        count, gpus = conn.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(t.sandboxes.c.gpus), 0)).where(
                t.sandboxes.c.namespace_id == namespace_id
            )
        ).one()
        return QuotaUsage(sandboxes=int(count), gpus=int(gpus))

    def update_namespace(
        self,
        namespace_id: str,
        *,
        expected_resource_version: int | None = None,
        labels: Mapping[str, str] | None = None,
        limits: QuotaLimits | None = None,
        ceiling: QuotaLimits | None = None,
        quota_mode: str | None = None,
    ) -> NamespaceRecord:
        values: dict[str, Any] = {}
        if labels is not None:
            values["labels"] = _labels(labels)
        if limits is not None:
            values.update(_limit_columns(limits))
        if ceiling is not None:
            values.update(_limit_columns(ceiling, "ceiling_"))
        if quota_mode is not None:
            values["quota_mode"] = _quota_mode(quota_mode).value
        with self._write() as conn:
            row = self._cas_update(
                conn, t.namespaces, namespace_id, expected_resource_version, values, "namespace", _NS_COLS
            )
        return _ns_record(row)

    def begin_delete_namespace(self, namespace_id: str, *, now: datetime | None = None) -> NamespaceRecord:
        """Mark the namespace Terminating (irreversible). Idempotent: a second call changes nothing."""
        with self._write() as conn:
            ns = self._lock_namespace(conn, namespace_id)
            if ns.phase == NamespacePhase.TERMINATING:
                return ns
            row = conn.execute(
                sa.update(t.namespaces)
                .where(t.namespaces.c.id == namespace_id)
                .values(
                    phase=NamespacePhase.TERMINATING.value,
                    deletion_timestamp=_now(now),
                    resource_version=t.namespaces.c.resource_version + 1,
                )
                .returning(*_NS_COLS)
            ).one()
        return _ns_record(row)

    def finish_delete_namespace(self, namespace_id: str) -> NamespaceRecord:
        """Delete a Terminating namespace and its memberships, or raise NamespaceNotEmpty naming what is left."""
        with self._write() as conn:
            ns = self._lock_namespace(conn, namespace_id)
            if ns.phase != NamespacePhase.TERMINATING:
                raise Conflict(f"namespace {ns.name!r} is not terminating; begin its deletion first")
            blockers: list[str] = []
            for kind, table in (
                ("sandbox", t.sandboxes),
                ("provider", t.providers),
                ("serviceaccount", t.service_accounts),
            ):
                names = conn.execute(
                    sa.select(table.c.name).where(table.c.namespace_id == namespace_id).order_by(table.c.name)
                ).scalars()
                blockers.extend(f"{kind}/{n}" for n in names)
            if blockers:
                raise NamespaceNotEmpty(ns.name, blockers)
            conn.execute(sa.delete(t.memberships).where(t.memberships.c.namespace_id == namespace_id))
            conn.execute(sa.delete(t.namespaces).where(t.namespaces.c.id == namespace_id))
        return ns

    # ------------------------------------------------------------------ memberships

    def put_membership(
        self,
        namespace_id: str,
        principal_id: str,
        role: str,
        *,
        created_by: str,
        max_members: int = DEFAULT_MAX_MEMBERS,
        now: datetime | None = None,
    ) -> MembershipRecord:
        """Add a member or change its role; never lets the namespace exceed ``max_members``."""
        role = _role(role)
        if not principal_id:
            raise InvalidArgument("principal id must not be empty")
        m = t.memberships
        key = (m.c.namespace_id == namespace_id) & (m.c.principal_id == principal_id)
        with self._write() as conn:
            ns = self._lock_namespace(conn, namespace_id, creating=True)
            existing = conn.execute(sa.select(*_MB_COLS).where(key)).first()
            if existing is not None:
                if existing[2] != role:
                    conn.execute(sa.update(m).where(key).values(role=role))
                return MembershipRecord(existing[0], existing[1], role, existing[3], existing[4])
            count = conn.execute(sa.select(sa.func.count()).where(m.c.namespace_id == namespace_id)).scalar_one()
            if count >= max_members:
                raise MemberLimitExceeded(ns.name, max_members)
            record = MembershipRecord(namespace_id, principal_id, role, created_by, _now(now))
            conn.execute(
                m.insert().values(
                    namespace_id=namespace_id,
                    principal_id=principal_id,
                    role=role,
                    created_by=created_by,
                    created_at=record.created_at,
                )
            )
        return record

    def get_membership(self, namespace_id: str, principal_id: str) -> MembershipRecord:
        m = t.memberships
        with self._read() as conn:
            row = conn.execute(
                sa.select(*_MB_COLS).where(m.c.namespace_id == namespace_id, m.c.principal_id == principal_id)
            ).first()
        if row is None:
            raise NotFound(f"{principal_id!r} is not a member of the namespace")
        return _mb_record(row)

    def remove_membership(self, namespace_id: str, principal_id: str) -> MembershipRecord:
        m = t.memberships
        with self._write() as conn:
            row = conn.execute(
                sa.delete(m)
                .where(m.c.namespace_id == namespace_id, m.c.principal_id == principal_id)
                .returning(*_MB_COLS)
            ).first()
        if row is None:
            raise NotFound(f"{principal_id!r} is not a member of the namespace")
        return _mb_record(row)

    def list_memberships(self, namespace_id: str) -> list[MembershipRecord]:
        m = t.memberships
        with self._read() as conn:
            rows = conn.execute(sa.select(*_MB_COLS).where(m.c.namespace_id == namespace_id).order_by(m.c.principal_id))
            return [_mb_record(r) for r in rows]

    def memberships_of(self, principal_id: str) -> list[tuple[str, str]]:
        """``(namespace_id, role)`` of every membership of a principal: one covering-index query."""
        m = t.memberships
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(m.c.namespace_id, m.c.role).where(m.c.principal_id == principal_id))
            return [(r[0], r[1]) for r in rows]

    # ------------------------------------------------------------------ sandboxes

    def _in(self, column: sa.ColumnElement[str], values: Collection[str]) -> sa.ColumnElement[bool]:
        """``column IN values``; on PostgreSQL as ``= ANY(array)``, one parameter however many values."""
        if self._engine.dialect.name == "postgresql":
            return column == sa.any_(sa.bindparam(None, list(values), type_=ARRAY(sa.String)))
        return column.in_(list(values))

    def _fetch_sandboxes(self, conn: Connection, stmt: sa.Select[Any], order: tuple[str, str]) -> list[SandboxRecord]:
        """Run a select of ``_SB_COLS`` with each sandbox's provider ids joined in, in one query.

        ``order`` names the unique ordering columns; a sandbox's attachment rows come out adjacent.
        """
        page = stmt.subquery()
        sp = t.sandbox_providers
        joined = (
            sa.select(*page.c, sp.c.provider_id)
            .select_from(page.outerjoin(sp, sp.c.sandbox_id == page.c.id))
            .order_by(*(page.c[name] for name in order))
        )
        records: list[SandboxRecord] = []
        empty: frozenset[str] = frozenset()
        row: Sequence[Any] | None = None
        providers: list[str] = []
        for current in conn.execute(joined):
            if row is not None and current[0] != row[0]:
                records.append(_sb_record(row, frozenset(providers) if providers else empty))
                providers = []
            row = current
            if current[-1] is not None:
                providers.append(current[-1])
        if row is not None:
            records.append(_sb_record(row, frozenset(providers) if providers else empty))
        return records

    def _sandbox_records(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> list[SandboxRecord]:
        """Records for rows already fetched (a handful: gets and single-row updates)."""
        sp = t.sandbox_providers
        attached: dict[str, set[str]] = {}
        if rows:
            for sandbox_id, provider_id in conn.execute(
                sa.select(sp.c.sandbox_id, sp.c.provider_id).where(self._in(sp.c.sandbox_id, [r[0] for r in rows]))
            ):
                attached.setdefault(sandbox_id, set()).add(provider_id)
        empty: frozenset[str] = frozenset()
        return [_sb_record(r, frozenset(attached[r[0]]) if r[0] in attached else empty) for r in rows]

    def _sandbox_row(self, conn: Connection, sandbox_id: str, *, lock: bool = False) -> Sequence[Any]:
        stmt = sa.select(*_SB_COLS).where(t.sandboxes.c.id == sandbox_id)
        row = conn.execute(stmt.with_for_update() if lock else stmt).first()
        if row is None:
            raise NotFound(f"sandbox with id {sandbox_id!r} not found")
        return row

    def _check_providers(self, conn: Connection, namespace_id: str, provider_ids: Collection[str]) -> None:
        """Lock the providers (against a concurrent delete) and require them in ``namespace_id``."""
        if not provider_ids:
            return
        p = t.providers
        found = set(
            conn.execute(
                sa.select(p.c.id)
                .where(self._in(p.c.id, provider_ids), p.c.namespace_id == namespace_id)
                .with_for_update(read=True)
            ).scalars()
        )
        missing = sorted(set(provider_ids) - found)
        if missing:
            # Same answer whether the provider is elsewhere or nowhere: no cross-namespace probing.
            raise NotFound(f"provider(s) {', '.join(missing)} not found in the sandbox's namespace")

    def create_sandbox(
        self,
        namespace_id: str,
        name: str,
        *,
        created_by: str,
        gpus: int = 0,
        labels: Mapping[str, str] | None = None,
        spec: Mapping[str, Any] | None = None,
        provider_ids: Collection[str] = (),
        lifetime_seconds: int = 0,
        phase: str = DEFAULT_SANDBOX_PHASE,
        message: str = "",
        now: datetime | None = None,
        sandbox_id: str | None = None,
        enforce_quota: bool = True,
    ) -> CreateSandboxResult:
        """Check the namespace and its quota and insert the sandbox, all in one transaction.

        Hard mode raises QuotaExceeded; soft mode inserts and reports the violations.
        ``expires_at`` is ``now`` plus the tighter of ``lifetime_seconds`` and the
        namespace's lifetime limit (0 = none). ``sandbox_id`` and ``enforce_quota=False``
        exist for adopting a sandbox the compute driver already runs (the reconciler):
        it keeps its id, and refusing it would not stop it running (violations are still reported).
        """
        _check_name("sandbox", name)
        if not isinstance(gpus, int) or gpus < 0:
            raise InvalidArgument(f"gpus must be a non-negative integer, got {gpus!r}")
        if not isinstance(lifetime_seconds, int) or lifetime_seconds < 0:
            raise InvalidArgument(f"lifetime_seconds must be a non-negative integer, got {lifetime_seconds!r}")
        now = _now(now)
        labels = _labels(labels)
        provider_ids = frozenset(provider_ids)
        sb = t.sandboxes
        with self._write() as conn:
            ns = self._lock_namespace(conn, namespace_id, creating=True)
            taken = conn.execute(sa.select(sb.c.id).where(sb.c.namespace_id == namespace_id, sb.c.name == name)).first()
            if taken is not None:
                raise AlreadyExists(f"sandbox {name!r} already exists in namespace {ns.name!r}")
            limits = ns.effective_limits
            use = self._usage(conn, namespace_id)
            violations: list[QuotaViolation] = []
            if limits.max_sandboxes and use.sandboxes + 1 > limits.max_sandboxes:
                violations.append(QuotaViolation("max_sandboxes", limits.max_sandboxes, use.sandboxes, 1))
            if limits.max_gpus and gpus and use.gpus + gpus > limits.max_gpus:
                violations.append(QuotaViolation("max_gpus", limits.max_gpus, use.gpus, gpus))
            if violations and ns.quota_mode == QuotaMode.HARD and enforce_quota:
                v = violations[0]
                raise QuotaExceeded(ns.name, v.limit_name, v.limit, v.current, v.requested)
            self._check_providers(conn, namespace_id, provider_ids)
            lifetime = QuotaLimits(max_sandbox_lifetime_seconds=lifetime_seconds).effective(limits)
            seconds = lifetime.max_sandbox_lifetime_seconds
            record = SandboxRecord(
                id=sandbox_id or _new_id(),
                namespace_id=namespace_id,
                name=name,
                labels=labels,
                gpus=gpus,
                phase=phase,
                message=message,
                created_by=created_by,
                created_at=now,
                expires_at=now + timedelta(seconds=seconds) if seconds else None,
                resource_version=1,
                provider_ids=provider_ids,
                spec=dict(spec or {}),
            )
            self._insert(
                conn,
                sb,
                {col.name: getattr(record, col.name) for col in _SB_COLS},
                f"sandbox {name!r} in namespace {ns.name!r}",
            )
            if provider_ids:
                conn.execute(
                    t.sandbox_providers.insert(),
                    [{"sandbox_id": record.id, "provider_id": p} for p in sorted(provider_ids)],
                )
        return CreateSandboxResult(record, tuple(violations))

    def get_sandbox(self, namespace_id: str, name: str) -> SandboxRecord:
        sb = t.sandboxes
        with self._read() as conn:
            row = conn.execute(sa.select(*_SB_COLS).where(sb.c.namespace_id == namespace_id, sb.c.name == name)).first()
            if row is None:
                raise NotFound(f"sandbox {name!r} not found")
            return self._sandbox_records(conn, [row])[0]

    def get_sandbox_by_id(self, sandbox_id: str) -> SandboxRecord:
        with self._read() as conn:
            return self._sandbox_records(conn, [self._sandbox_row(conn, sandbox_id)])[0]

    def list_sandboxes(
        self,
        namespace_ids: Collection[str] | None = None,
        *,
        label_selector: Mapping[str, str] | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> SandboxPage:
        """Sandboxes in ``namespace_ids`` (None = every namespace), filtered and paged in SQL.

        Ordered by (namespace_id, name), the unique index; ``page_size`` 0 = everything.
        """
        if page_size < 0:
            raise InvalidArgument(f"page_size must not be negative, got {page_size}")
        if namespace_ids is not None and not namespace_ids:
            return SandboxPage([])
        sb = t.sandboxes
        stmt = sa.select(*_SB_COLS).where(*_selector_clauses(sb, label_selector))
        if namespace_ids is not None:
            stmt = stmt.where(self._in(sb.c.namespace_id, namespace_ids))
        if page_token:
            after = _decode_token(page_token)
            stmt = stmt.where(sa.tuple_(sb.c.namespace_id, sb.c.name) > sa.tuple_(*after))
        if page_size:
            stmt = stmt.order_by(sb.c.namespace_id, sb.c.name).limit(page_size + 1)
        with self._read() as conn:
            items = self._fetch_sandboxes(conn, stmt, ("namespace_id", "name"))
        token = ""
        if page_size and len(items) > page_size:
            items = items[:page_size]
            token = _encode_token(items[-1].namespace_id, items[-1].name)
        return SandboxPage(items, token)

    def list_sandbox_refs(self) -> list[tuple[str, str, str]]:
        """``(id, namespace_id, phase)`` of every sandbox: what the reconciler compares, without whole records."""
        sb = t.sandboxes
        with self._read() as conn:
            rows = conn.execute(sa.select(sb.c.id, sb.c.namespace_id, sb.c.phase)).all()
        return [(r[0], r[1], r[2]) for r in rows]

    def list_expired_sandboxes(self, now: datetime, *, limit: int = 1000) -> list[SandboxRecord]:
        """Sandboxes whose ``expires_at`` is at or before ``now``, oldest expiry first."""
        sb = t.sandboxes
        stmt = (
            sa.select(*_SB_COLS)
            .where(sb.c.expires_at.is_not(None), sb.c.expires_at <= now)
            .order_by(sb.c.expires_at, sb.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            return self._fetch_sandboxes(conn, stmt, ("expires_at", "id"))

    def update_sandbox(
        self,
        sandbox_id: str,
        *,
        expected_resource_version: int | None = None,
        phase: str | None = None,
        message: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> SandboxRecord:
        values: dict[str, Any] = {}
        if phase is not None:
            values["phase"] = phase
        if message is not None:
            values["message"] = message
        if labels is not None:
            values["labels"] = _labels(labels)
        with self._write() as conn:
            row = self._cas_update(
                conn, t.sandboxes, sandbox_id, expected_resource_version, values, "sandbox", _SB_COLS
            )
            return self._sandbox_records(conn, [row])[0]

    def delete_sandbox(self, sandbox_id: str) -> SandboxRecord:
        """Delete a sandbox with its attachments and logs; returns what was deleted."""
        with self._write() as conn:
            record = self._sandbox_records(conn, [self._sandbox_row(conn, sandbox_id, lock=True)])[0]
            conn.execute(sa.delete(t.sandbox_logs).where(t.sandbox_logs.c.sandbox_id == sandbox_id))
            conn.execute(sa.delete(t.sandbox_providers).where(t.sandbox_providers.c.sandbox_id == sandbox_id))
            conn.execute(sa.delete(t.sandboxes).where(t.sandboxes.c.id == sandbox_id))
        return record

    def attach_provider(self, sandbox_id: str, provider_id: str) -> SandboxRecord:
        """Attach a provider of the sandbox's own namespace; attaching twice changes nothing."""
        with self._write() as conn:
            row = self._sandbox_row(conn, sandbox_id, lock=True)
            current = self._sandbox_records(conn, [row])[0]
            if provider_id in current.provider_ids:
                return current
            self._check_providers(conn, current.namespace_id, [provider_id])
            conn.execute(t.sandbox_providers.insert().values(sandbox_id=sandbox_id, provider_id=provider_id))
            row = self._bump(conn, sandbox_id)
            return self._sandbox_records(conn, [row])[0]

    def detach_provider(self, sandbox_id: str, provider_id: str) -> SandboxRecord:
        """Detach a provider; NotFound when it is not attached."""
        sp = t.sandbox_providers
        with self._write() as conn:
            row = self._sandbox_row(conn, sandbox_id, lock=True)
            gone = conn.execute(
                sa.delete(sp).where(sp.c.sandbox_id == sandbox_id, sp.c.provider_id == provider_id)
            ).rowcount
            if not gone:
                raise NotFound(f"provider {provider_id!r} is not attached to sandbox {row[2]!r}")
            row = self._bump(conn, sandbox_id)
            return self._sandbox_records(conn, [row])[0]

    def _bump(self, conn: Connection, sandbox_id: str) -> Sequence[Any]:
        sb = t.sandboxes
        return conn.execute(
            sa.update(sb)
            .where(sb.c.id == sandbox_id)
            .values(resource_version=sb.c.resource_version + 1)
            .returning(*_SB_COLS)
        ).one()

    def append_sandbox_logs(
        self, sandbox_id: str, lines: Sequence[str], *, now: datetime | None = None, keep: int = _DEFAULT_LOG_KEEP
    ) -> int:
        """Append lines (keeping the newest ``keep``); returns the sequence number of the last line."""
        lg = t.sandbox_logs
        with self._write() as conn:
            self._sandbox_row(conn, sandbox_id, lock=True)  # serializes sequence allocation
            last = conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(lg.c.seq), 0)).where(lg.c.sandbox_id == sandbox_id)
            ).scalar_one()
            if not lines:
                return int(last)
            at = _now(now)
            conn.execute(
                lg.insert(),
                [{"sandbox_id": sandbox_id, "seq": last + i, "at": at, "line": s} for i, s in enumerate(lines, 1)],
            )
            last += len(lines)
            conn.execute(sa.delete(lg).where(lg.c.sandbox_id == sandbox_id, lg.c.seq <= last - keep))
        return int(last)

    def read_sandbox_logs(self, sandbox_id: str, *, after_seq: int = 0, limit: int = 1000) -> list[LogLine]:
        lg = t.sandbox_logs
        with self._read() as conn:
            self._sandbox_row(conn, sandbox_id)
            rows = conn.execute(
                sa.select(lg.c.seq, lg.c.at, lg.c.line)
                .where(lg.c.sandbox_id == sandbox_id, lg.c.seq > after_seq)
                .order_by(lg.c.seq)
                .limit(limit)
            )
            return [LogLine(*r) for r in rows]

    # ------------------------------------------------------------------ providers

    def create_provider(
        self,
        namespace_id: str,
        name: str,
        *,
        type: str,
        created_by: str,
        profile: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
        credentials: Mapping[str, str] | None = None,
        now: datetime | None = None,
    ) -> ProviderRecord:
        """Create a provider; its credentials are stored apart and never part of the record."""
        _check_name("provider", name)
        if not type:
            raise InvalidArgument("provider type must not be empty")
        record = ProviderRecord(
            id=_new_id(),
            namespace_id=namespace_id,
            name=name,
            type=type,
            labels=_labels(labels),
            profile=_profile(profile),
            created_by=created_by,
            created_at=_now(now),
            resource_version=1,
        )
        secret = _credentials(credentials)
        with self._write() as conn:
            ns = self._lock_namespace(conn, namespace_id, creating=True)
            values = {col.name: getattr(record, col.name) for col in _PV_COLS}
            self._insert(conn, t.providers, values, f"provider {name!r} in namespace {ns.name!r}")
            conn.execute(t.provider_credentials.insert().values(provider_id=record.id, data=secret))
        return record

    def get_provider(self, namespace_id: str, name: str) -> ProviderRecord:
        p = t.providers
        with self._read() as conn:
            row = conn.execute(sa.select(*_PV_COLS).where(p.c.namespace_id == namespace_id, p.c.name == name)).first()
        if row is None:
            raise NotFound(f"provider {name!r} not found")
        return _pv_record(row)

    def get_provider_by_id(self, provider_id: str) -> ProviderRecord:
        with self._read() as conn:
            row = conn.execute(sa.select(*_PV_COLS).where(t.providers.c.id == provider_id)).first()
        if row is None:
            raise NotFound(f"provider with id {provider_id!r} not found")
        return _pv_record(row)

    def list_providers(
        self,
        namespace_ids: Collection[str] | None = None,
        *,
        label_selector: Mapping[str, str] | None = None,
        ids: Collection[str] | None = None,
    ) -> list[ProviderRecord]:
        """Providers in ``namespace_ids`` (None = all), optionally only ``ids``; ordered by namespace, name."""
        if (namespace_ids is not None and not namespace_ids) or (ids is not None and not ids):
            return []
        p = t.providers
        stmt = sa.select(*_PV_COLS).where(*_selector_clauses(p, label_selector))
        if namespace_ids is not None:
            stmt = stmt.where(self._in(p.c.namespace_id, namespace_ids))
        if ids is not None:
            stmt = stmt.where(self._in(p.c.id, ids))
        with self._read() as conn:
            return [_pv_record(r) for r in conn.execute(stmt.order_by(p.c.namespace_id, p.c.name))]

    def update_provider(
        self,
        provider_id: str,
        *,
        expected_resource_version: int | None = None,
        type: str | None = None,
        labels: Mapping[str, str] | None = None,
        profile: Mapping[str, Any] | None = None,
        credentials: Mapping[str, str] | None = None,
    ) -> ProviderRecord:
        """Compare-and-swap update; ``credentials`` (when given) replace the stored ones entirely."""
        values: dict[str, Any] = {}
        if type is not None:
            if not type:
                raise InvalidArgument("provider type must not be empty")
            values["type"] = type
        if labels is not None:
            values["labels"] = _labels(labels)
        if profile is not None:
            values["profile"] = _profile(profile)
        secret = None if credentials is None else _credentials(credentials)
        with self._write() as conn:
            row = self._cas_update(
                conn, t.providers, provider_id, expected_resource_version, values, "provider", _PV_COLS
            )
            if secret is not None:
                conn.execute(
                    sa.update(t.provider_credentials)
                    .where(t.provider_credentials.c.provider_id == provider_id)
                    .values(data=secret)
                )
        return _pv_record(row)

    def delete_provider(self, provider_id: str) -> ProviderRecord:
        """Delete a provider and its credentials; ProviderInUse while any sandbox has it attached."""
        p, sp, sb = t.providers, t.sandbox_providers, t.sandboxes
        with self._write() as conn:
            row = conn.execute(sa.select(*_PV_COLS).where(p.c.id == provider_id).with_for_update()).first()
            if row is None:
                raise NotFound(f"provider with id {provider_id!r} not found")
            users = (
                conn.execute(
                    sa.select(sb.c.name)
                    .join(sp, sp.c.sandbox_id == sb.c.id)
                    .where(sp.c.provider_id == provider_id)
                    .order_by(sb.c.name)
                )
                .scalars()
                .all()
            )
            if users:
                raise ProviderInUse(row[2], [f"sandbox/{n}" for n in users])
            conn.execute(sa.delete(t.provider_credentials).where(t.provider_credentials.c.provider_id == provider_id))
            conn.execute(sa.delete(p).where(p.c.id == provider_id))
        return _pv_record(row)

    def get_provider_credentials(self, provider_id: str) -> dict[str, str]:
        """The raw credentials: for the supervisor's provider-environment path only."""
        pc = t.provider_credentials
        with self._read() as conn:
            data = conn.execute(sa.select(pc.c.data).where(pc.c.provider_id == provider_id)).scalar_one_or_none()
        if data is None:
            raise NotFound(f"provider with id {provider_id!r} not found")
        return dict(data)

    # ------------------------------------------------------------------ service accounts

    def create_service_account(
        self,
        namespace_id: str,
        name: str,
        *,
        created_by: str,
        labels: Mapping[str, str] | None = None,
        now: datetime | None = None,
    ) -> ServiceAccountRecord:
        _check_name("service account", name)
        record = ServiceAccountRecord(
            id=_new_id(),
            namespace_id=namespace_id,
            name=name,
            labels=_labels(labels),
            created_by=created_by,
            created_at=_now(now),
            resource_version=1,
        )
        with self._write() as conn:
            ns = self._lock_namespace(conn, namespace_id, creating=True)
            values = {col.name: getattr(record, col.name) for col in _SA_COLS}
            self._insert(conn, t.service_accounts, values, f"service account {name!r} in namespace {ns.name!r}")
        return record

    def get_service_account(self, namespace_id: str, name: str) -> ServiceAccountRecord:
        s = t.service_accounts
        with self._read() as conn:
            row = conn.execute(sa.select(*_SA_COLS).where(s.c.namespace_id == namespace_id, s.c.name == name)).first()
        if row is None:
            raise NotFound(f"service account {name!r} not found")
        return _sa_record(row)

    def get_service_account_by_id(self, service_account_id: str) -> ServiceAccountRecord:
        with self._read() as conn:
            row = conn.execute(sa.select(*_SA_COLS).where(t.service_accounts.c.id == service_account_id)).first()
        if row is None:
            raise NotFound(f"service account with id {service_account_id!r} not found")
        return _sa_record(row)

    def list_service_accounts(
        self, namespace_ids: Collection[str] | None = None, *, label_selector: Mapping[str, str] | None = None
    ) -> list[ServiceAccountRecord]:
        if namespace_ids is not None and not namespace_ids:
            return []
        s = t.service_accounts
        stmt = sa.select(*_SA_COLS).where(*_selector_clauses(s, label_selector))
        if namespace_ids is not None:
            stmt = stmt.where(self._in(s.c.namespace_id, namespace_ids))
        with self._read() as conn:
            return [_sa_record(r) for r in conn.execute(stmt.order_by(s.c.namespace_id, s.c.name))]

    def delete_service_account(self, service_account_id: str) -> ServiceAccountRecord:
        s = t.service_accounts
        with self._write() as conn:
            row = conn.execute(sa.delete(s).where(s.c.id == service_account_id).returning(*_SA_COLS)).first()
        if row is None:
            raise NotFound(f"service account with id {service_account_id!r} not found")
        return _sa_record(row)

    # ------------------------------------------------------------------ gateway config

    def get_gateway_config(self) -> GatewayConfig:
        g = t.gateway_config
        with self._read() as conn:
            row = conn.execute(
                sa.select(g.c.doc, g.c.resource_version, g.c.updated_by, g.c.updated_at).where(
                    g.c.id == _GATEWAY_CONFIG_ROW
                )
            ).first()
        return GatewayConfig({}, 0) if row is None else GatewayConfig(*row)

    def update_gateway_config(
        self,
        doc: Mapping[str, Any],
        *,
        updated_by: str,
        expected_resource_version: int | None = None,
        now: datetime | None = None,
    ) -> GatewayConfig:
        """Replace the config document; ``expected_resource_version`` 0 means "never written yet"."""
        g = t.gateway_config
        doc = dict(doc)
        at = _now(now)
        with self._write() as conn:
            current = conn.execute(
                sa.select(g.c.resource_version).where(g.c.id == _GATEWAY_CONFIG_ROW).with_for_update()
            ).scalar_one_or_none()
            version = current or 0
            if expected_resource_version is not None and expected_resource_version != version:
                raise Conflict(
                    f"gateway config was modified concurrently (resource_version is {version}, "
                    f"expected {expected_resource_version}); read it again and retry"
                )
            values = {"doc": doc, "resource_version": version + 1, "updated_by": updated_by, "updated_at": at}
            if current is None:
                try:
                    conn.execute(g.insert().values(id=_GATEWAY_CONFIG_ROW, **values))
                except IntegrityError:
                    raise Conflict("gateway config was written concurrently; read it again and retry") from None
            else:
                conn.execute(sa.update(g).where(g.c.id == _GATEWAY_CONFIG_ROW).values(**values))
        return GatewayConfig(doc, version + 1, updated_by, at)
