"""The ``Store`` protocol: everything the gateway may ask of its persistent state.

Handlers, the interceptor, the reaper and the supervisor path depend on this
protocol only, never on a backend. ``SqlStore`` implements it for SQLite and
PostgreSQL; the conformance suite in ``tests/store`` holds both to it (and checks
that the signatures here and there agree).

Conventions: ``get_*`` raise ``NotFound``; ``now`` defaults to the current UTC
time; ``expected_resource_version=None`` skips the compare-and-swap check; every
create refuses a Terminating namespace with ``NamespaceTerminating``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from ._records import (
    UNLIMITED,
    CreateSandboxResult,
    GatewayConfig,
    LogLine,
    MembershipRecord,
    NamespaceRecord,
    ProviderRecord,
    QuotaLimits,
    QuotaMode,
    QuotaUsage,
    SandboxPage,
    SandboxRecord,
    ServiceAccountRecord,
)

__all__ = ["Store"]


@runtime_checkable
class Store(Protocol):
    @property
    def backend(self) -> str: ...

    def close(self) -> None: ...

    # namespaces
    def ensure_default(self, *, now: datetime | None = None) -> NamespaceRecord: ...

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
    ) -> NamespaceRecord: ...

    def get_namespace_by_name(self, name: str) -> NamespaceRecord: ...

    def get_namespace_by_id(self, namespace_id: str) -> NamespaceRecord: ...

    def list_namespaces(
        self, ids: Collection[str] | None = None, *, label_selector: Mapping[str, str] | None = None
    ) -> list[NamespaceRecord]: ...

    def get_namespace_usage(self, namespace_id: str) -> QuotaUsage: ...

    def update_namespace(
        self,
        namespace_id: str,
        *,
        expected_resource_version: int | None = None,
        labels: Mapping[str, str] | None = None,
        limits: QuotaLimits | None = None,
        ceiling: QuotaLimits | None = None,
        quota_mode: str | None = None,
    ) -> NamespaceRecord: ...

    def begin_delete_namespace(self, namespace_id: str, *, now: datetime | None = None) -> NamespaceRecord: ...

    def finish_delete_namespace(self, namespace_id: str) -> NamespaceRecord: ...

    # memberships
    def put_membership(
        self,
        namespace_id: str,
        principal_id: str,
        role: str,
        *,
        created_by: str,
        max_members: int = 1000,
        now: datetime | None = None,
    ) -> MembershipRecord: ...

    def get_membership(self, namespace_id: str, principal_id: str) -> MembershipRecord: ...

    def remove_membership(self, namespace_id: str, principal_id: str) -> MembershipRecord: ...

    def list_memberships(self, namespace_id: str) -> list[MembershipRecord]: ...

    def memberships_of(self, principal_id: str) -> list[tuple[str, str]]: ...

    # sandboxes
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
        phase: str = "Provisioning",
        message: str = "",
        now: datetime | None = None,
        sandbox_id: str | None = None,
        enforce_quota: bool = True,
    ) -> CreateSandboxResult: ...

    def get_sandbox(self, namespace_id: str, name: str) -> SandboxRecord: ...

    def get_sandbox_by_id(self, sandbox_id: str) -> SandboxRecord: ...

    def list_sandboxes(
        self,
        namespace_ids: Collection[str] | None = None,
        *,
        label_selector: Mapping[str, str] | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> SandboxPage: ...

    def list_sandbox_refs(self) -> list[tuple[str, str, str]]: ...

    def list_expired_sandboxes(self, now: datetime, *, limit: int = 1000) -> list[SandboxRecord]: ...

    def update_sandbox(
        self,
        sandbox_id: str,
        *,
        expected_resource_version: int | None = None,
        phase: str | None = None,
        message: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> SandboxRecord: ...

    def delete_sandbox(self, sandbox_id: str) -> SandboxRecord: ...

    def attach_provider(self, sandbox_id: str, provider_id: str) -> SandboxRecord: ...

    def detach_provider(self, sandbox_id: str, provider_id: str) -> SandboxRecord: ...

    def append_sandbox_logs(
        self, sandbox_id: str, lines: Sequence[str], *, now: datetime | None = None, keep: int = 10_000
    ) -> int: ...

    def read_sandbox_logs(self, sandbox_id: str, *, after_seq: int = 0, limit: int = 1000) -> list[LogLine]: ...

    # providers
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
    ) -> ProviderRecord: ...

    def get_provider(self, namespace_id: str, name: str) -> ProviderRecord: ...

    def get_provider_by_id(self, provider_id: str) -> ProviderRecord: ...

    def list_providers(
        self,
        namespace_ids: Collection[str] | None = None,
        *,
        label_selector: Mapping[str, str] | None = None,
        ids: Collection[str] | None = None,
    ) -> list[ProviderRecord]: ...

    def update_provider(
        self,
        provider_id: str,
        *,
        expected_resource_version: int | None = None,
        type: str | None = None,
        labels: Mapping[str, str] | None = None,
        profile: Mapping[str, Any] | None = None,
        credentials: Mapping[str, str] | None = None,
    ) -> ProviderRecord: ...

    def delete_provider(self, provider_id: str) -> ProviderRecord: ...

    def get_provider_credentials(self, provider_id: str) -> dict[str, str]: ...

    # service accounts
    def create_service_account(
        self,
        namespace_id: str,
        name: str,
        *,
        created_by: str,
        labels: Mapping[str, str] | None = None,
        now: datetime | None = None,
    ) -> ServiceAccountRecord: ...

    def get_service_account(self, namespace_id: str, name: str) -> ServiceAccountRecord: ...

    def get_service_account_by_id(self, service_account_id: str) -> ServiceAccountRecord: ...

    def list_service_accounts(
        self, namespace_ids: Collection[str] | None = None, *, label_selector: Mapping[str, str] | None = None
    ) -> list[ServiceAccountRecord]: ...

    def delete_service_account(self, service_account_id: str) -> ServiceAccountRecord: ...

    # gateway config
    def get_gateway_config(self) -> GatewayConfig: ...

    def update_gateway_config(
        self,
        doc: Mapping[str, Any],
        *,
        updated_by: str,
        expected_resource_version: int | None = None,
        now: datetime | None = None,
    ) -> GatewayConfig: ...
