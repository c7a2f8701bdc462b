"""Immutable records the store returns: plain frozen dataclasses, no database handles.

Timestamps are timezone-aware UTC datetimes. Labels and JSON documents are
returned as fresh dicts per record; treat them as read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from openshell_authz.models import NamespacePhase, QuotaMode

__all__ = [
    "UNLIMITED",
    "CreateSandboxResult",
    "GatewayConfig",
    "LogLine",
    "MembershipRecord",
    "NamespacePhase",
    "NamespaceRecord",
    "ProviderRecord",
    "QuotaLimits",
    "QuotaMode",
    "QuotaUsage",
    "QuotaViolation",
    "SandboxPage",
    "SandboxRecord",
    "ServiceAccountRecord",
]


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    """Numeric quota fields; ``0`` means unlimited for each."""

    max_sandboxes: int = 0
    max_gpus: int = 0
    max_sandbox_lifetime_seconds: int = 0

    def __post_init__(self) -> None:
        for name in ("max_sandboxes", "max_gpus", "max_sandbox_lifetime_seconds"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"quota {name} must be a non-negative integer, got {value!r}")

    def effective(self, ceiling: QuotaLimits) -> QuotaLimits:
        """The limits that apply: the stricter of limit and ceiling, where 0 is unlimited."""

        def tighter(a: int, b: int) -> int:
            return min(a, b) if a and b else a or b

        return QuotaLimits(
            tighter(self.max_sandboxes, ceiling.max_sandboxes),
            tighter(self.max_gpus, ceiling.max_gpus),
            tighter(self.max_sandbox_lifetime_seconds, ceiling.max_sandbox_lifetime_seconds),
        )


UNLIMITED = QuotaLimits()
"""Every limit 0: the default limits and ceiling of a new namespace."""


@dataclass(frozen=True, slots=True)
class NamespaceRecord:
    id: str
    name: str
    phase: NamespacePhase
    labels: dict[str, str]
    limits: QuotaLimits
    ceiling: QuotaLimits
    quota_mode: QuotaMode
    created_by: str
    created_at: datetime
    resource_version: int
    deletion_timestamp: datetime | None

    @property
    def effective_limits(self) -> QuotaLimits:
        return self.limits.effective(self.ceiling)


@dataclass(frozen=True, slots=True)
class MembershipRecord:
    namespace_id: str
    principal_id: str
    role: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SandboxRecord:
    id: str
    namespace_id: str
    name: str
    labels: dict[str, str]
    gpus: int
    phase: str
    message: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    resource_version: int
    provider_ids: frozenset[str]
    spec: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ProviderRecord:
    """A provider without its credentials (those are write-only, see ``get_provider_credentials``)."""

    id: str
    namespace_id: str
    name: str
    type: str
    labels: dict[str, str]
    profile: dict[str, Any]  # {"endpoints": list[str], "env": dict[str, str]}
    created_by: str
    created_at: datetime
    resource_version: int


@dataclass(frozen=True, slots=True)
class ServiceAccountRecord:
    id: str
    namespace_id: str
    name: str
    labels: dict[str, str]
    created_by: str
    created_at: datetime
    resource_version: int


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """The gateway-wide default policy document; ``resource_version`` 0 means never written."""

    doc: dict[str, Any]
    resource_version: int
    updated_by: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    """What a namespace currently uses of its quota."""

    sandboxes: int
    gpus: int


@dataclass(frozen=True, slots=True)
class QuotaViolation:
    """One limit a soft-mode create went past (for the "quota exceeded" audit event)."""

    limit_name: str
    limit: int
    current: int
    requested: int


@dataclass(frozen=True, slots=True)
class CreateSandboxResult:
    sandbox: SandboxRecord
    violations: tuple[QuotaViolation, ...] = ()

    @property
    def exceeded(self) -> bool:
        """True when the namespace is in soft mode and this create went past a limit."""
        return bool(self.violations)


@dataclass(frozen=True, slots=True)
class SandboxPage:
    items: list[SandboxRecord]
    next_page_token: str = ""  # "" when there are no more pages


@dataclass(frozen=True, slots=True)
class LogLine:
    seq: int
    at: datetime
    line: str
