"""Persistent store of the gateway: namespaces, memberships, sandboxes, providers, config.

``open_store(url)`` returns a :class:`Store` on SQLite (``sqlite:///PATH``, the
default, no setup) or PostgreSQL (``postgresql+psycopg://...``, for several
gateway replicas sharing state), with the schema migrated to the newest Alembic
revision. Records are frozen dataclasses; failures are :class:`StoreError`
subclasses with one-line messages.
"""

from __future__ import annotations

from ._commit_hooks import before_commit
from ._engine import create_store_engine, migrate
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
    StoreError,
)
from ._protocol import Store
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
from ._sql import DEFAULT_MAX_MEMBERS, SqlStore

__all__ = [
    "DEFAULT_MAX_MEMBERS",
    "UNLIMITED",
    "AlreadyExists",
    "Conflict",
    "CreateSandboxResult",
    "GatewayConfig",
    "InvalidArgument",
    "LogLine",
    "MemberLimitExceeded",
    "MembershipRecord",
    "NamespaceNotEmpty",
    "NamespacePhase",
    "NamespaceRecord",
    "NamespaceTerminating",
    "NotFound",
    "ProviderInUse",
    "ProviderRecord",
    "QuotaExceeded",
    "QuotaLimits",
    "QuotaMode",
    "QuotaUsage",
    "QuotaViolation",
    "SandboxPage",
    "SandboxRecord",
    "ServiceAccountRecord",
    "SqlStore",
    "Store",
    "StoreError",
    "before_commit",
    "open_store",
]


def open_store(url: str) -> SqlStore:
    """Connect to ``url``, migrate its schema to head and return the store.

    Raises :class:`InvalidArgument` for an unsupported or malformed URL; connection
    failures surface as SQLAlchemy ``OperationalError``.
    """
    engine = create_store_engine(url)
    try:
        migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    return SqlStore(engine)
