"""Store records -> API messages. Credentials never pass through here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from openshell_server import store as st
from openshell_server.api import resources_pb2 as pb

__all__ = ["limits", "namespace", "provider", "sandbox", "service_account", "timestamp"]


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def _meta(rec: Any, namespace_name: str) -> pb.ObjectMeta:
    meta = pb.ObjectMeta(
        id=rec.id,
        name=rec.name,
        namespace=namespace_name,
        created_by=rec.created_by,
        labels=dict(rec.labels),
        resource_version=rec.resource_version,
    )
    meta.created_at.CopyFrom(timestamp(rec.created_at))
    deletion = getattr(rec, "deletion_timestamp", None)
    if deletion is not None:
        meta.deletion_timestamp.CopyFrom(timestamp(deletion))
    return meta


def limits(value: st.QuotaLimits) -> pb.Limits:
    return pb.Limits(
        max_sandboxes=value.max_sandboxes,
        max_gpus=value.max_gpus,
        max_sandbox_lifetime_seconds=value.max_sandbox_lifetime_seconds,
    )


def namespace(rec: st.NamespaceRecord) -> pb.Namespace:
    return pb.Namespace(
        meta=_meta(rec, ""),
        phase=str(rec.phase),
        quota=limits(rec.limits),
        ceiling=limits(rec.ceiling),
        quota_mode=str(rec.quota_mode),
    )


def sandbox(rec: st.SandboxRecord, namespace_name: str, provider_names: list[str]) -> pb.Sandbox:
    msg = pb.Sandbox(
        meta=_meta(rec, namespace_name), phase=rec.phase, message=rec.message, gpus=rec.gpus,
        providers=sorted(provider_names),
    )  # fmt: skip
    if rec.expires_at is not None:
        msg.expires_at.CopyFrom(timestamp(rec.expires_at))
    return msg


def provider(rec: st.ProviderRecord, namespace_name: str, credential_keys: list[str]) -> pb.Provider:
    profile = rec.profile or {}
    return pb.Provider(
        meta=_meta(rec, namespace_name),
        type=rec.type,
        profile=pb.ProviderProfile(endpoints=list(profile.get("endpoints", [])), env=dict(profile.get("env", {}))),
        credential_keys=sorted(credential_keys),
    )


def service_account(rec: st.ServiceAccountRecord, namespace_name: str) -> pb.ServiceAccount:
    return pb.ServiceAccount(
        meta=_meta(rec, namespace_name), subject=f"system:serviceaccount:{namespace_name}:{rec.name}"
    )
