"""Table definitions (SQLAlchemy Core) shared by the store and its Alembic migrations.

The migrations under ``migrations/versions`` create exactly these tables; a test
compares the migrated database against this metadata so the two cannot drift.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

__all__ = [
    "JSONDoc",
    "UTCDateTime",
    "gateway_config",
    "memberships",
    "metadata",
    "namespaces",
    "provider_credentials",
    "providers",
    "sandbox_logs",
    "sandbox_providers",
    "sandboxes",
    "service_accounts",
]


_ZERO = timedelta(0)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive UTC text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the store; pass an aware UTC time")
        value = value.astimezone(UTC)
        # SQLite compares the stored ISO text, so every value must be in the same zone and format.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        # PostgreSQL sessions run in UTC (see _engine), so this is a cheap relabel, not a zone conversion.
        return value.replace(tzinfo=UTC) if value.utcoffset() == _ZERO else value.astimezone(UTC)


# JSONB on PostgreSQL (binary, comparable), JSON text elsewhere.
JSONDoc: sa.types.TypeEngine[Any] = sa.JSON().with_variant(JSONB(), "postgresql")

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _id() -> sa.Column[str]:
    return sa.Column("id", sa.String(36), primary_key=True)


def _namespace_fk(*, cascade: bool = False) -> sa.Column[str]:
    # Sandboxes, providers and service accounts RESTRICT: a namespace row can only go once
    # they are gone (a second guard behind finish_delete_namespace's emptiness check).
    return sa.Column(
        "namespace_id",
        sa.String(36),
        sa.ForeignKey("namespaces.id", ondelete="CASCADE" if cascade else "RESTRICT"),
        nullable=False,
    )


def _meta_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("labels", JSONDoc, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("resource_version", sa.Integer, nullable=False),
    ]


namespaces = sa.Table(
    "namespaces",
    metadata,
    _id(),
    sa.Column("name", sa.String(63), nullable=False, unique=True),
    sa.Column("phase", sa.String(16), nullable=False),
    sa.Column("max_sandboxes", sa.Integer, nullable=False),
    sa.Column("max_gpus", sa.Integer, nullable=False),
    sa.Column("max_sandbox_lifetime_seconds", sa.Integer, nullable=False),
    sa.Column("ceiling_max_sandboxes", sa.Integer, nullable=False),
    sa.Column("ceiling_max_gpus", sa.Integer, nullable=False),
    sa.Column("ceiling_max_sandbox_lifetime_seconds", sa.Integer, nullable=False),
    sa.Column("quota_mode", sa.String(8), nullable=False),
    sa.Column("deletion_timestamp", UTCDateTime, nullable=True),
    *_meta_columns(),
)

memberships = sa.Table(
    "memberships",
    metadata,
    _namespace_fk(cascade=True),
    sa.Column("principal_id", sa.Text, nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint("namespace_id", "principal_id"),
    # Covering index for memberships_of(principal): the hot path of every authorization.
    sa.Index(None, "principal_id", "namespace_id", "role"),
)

sandboxes = sa.Table(
    "sandboxes",
    metadata,
    _id(),
    _namespace_fk(),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("gpus", sa.Integer, nullable=False),
    sa.Column("phase", sa.String(32), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("spec", JSONDoc, nullable=False),
    *_meta_columns(),
    # Also the listing index: WHERE namespace_id IN (...) ORDER BY namespace_id, name.
    sa.UniqueConstraint("namespace_id", "name"),
    sa.Index(None, "expires_at"),
)

providers = sa.Table(
    "providers",
    metadata,
    _id(),
    _namespace_fk(),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("type", sa.String(63), nullable=False),
    sa.Column("profile", JSONDoc, nullable=False),
    *_meta_columns(),
    sa.UniqueConstraint("namespace_id", "name"),
)

# Kept apart from ``providers`` so no listing or record query can ever read a credential.
provider_credentials = sa.Table(
    "provider_credentials",
    metadata,
    sa.Column("provider_id", sa.String(36), sa.ForeignKey("providers.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("data", JSONDoc, nullable=False),
)

sandbox_providers = sa.Table(
    "sandbox_providers",
    metadata,
    sa.Column("sandbox_id", sa.String(36), sa.ForeignKey("sandboxes.id", ondelete="CASCADE"), nullable=False),
    sa.Column("provider_id", sa.String(36), sa.ForeignKey("providers.id", ondelete="RESTRICT"), nullable=False),
    sa.PrimaryKeyConstraint("sandbox_id", "provider_id"),
    sa.Index(None, "provider_id"),
)

service_accounts = sa.Table(
    "service_accounts",
    metadata,
    _id(),
    _namespace_fk(),
    sa.Column("name", sa.String(63), nullable=False),
    *_meta_columns(),
    sa.UniqueConstraint("namespace_id", "name"),
)

gateway_config = sa.Table(
    "gateway_config",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("doc", JSONDoc, nullable=False),
    sa.Column("resource_version", sa.Integer, nullable=False),
    sa.Column("updated_by", sa.Text, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=True),
)

sandbox_logs = sa.Table(
    "sandbox_logs",
    metadata,
    sa.Column("sandbox_id", sa.String(36), sa.ForeignKey("sandboxes.id", ondelete="CASCADE"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("line", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("sandbox_id", "seq"),
)
