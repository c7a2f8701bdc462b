"""The audit record: the facts the gateway hands to the audit trail for one RPC."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["ACTOR_KINDS", "OUTCOMES", "AuditRecord"]

# "system": the gateway itself (the lifetime reaper, the reconciler).
ACTOR_KINDS = frozenset({"user", "service_account", "supervisor", "local", "system"})
OUTCOMES = frozenset({"allowed", "denied", "error"})


@dataclass(frozen=True, kw_only=True)
class AuditRecord:
    """One mutating call or denial, as seen by the gateway interceptor.

    ``on_behalf_of`` is set for sandbox-supervisor events: the principal that
    created the sandbox. ``rpc`` is the full gRPC method name
    (``/openshell.v1.OpenShell/CreateSandbox``); ``action`` the Cedar action.
    """

    time: datetime
    actor_id: str
    actor_kind: str
    rpc: str
    action: str
    outcome: str
    status_code: str
    actor_issuer: str = ""
    on_behalf_of: str = ""
    target_kind: str = ""
    target_namespace: str = ""
    target_name: str = ""
    target_id: str = ""
    policy_ids: tuple[str, ...] = ()
    policy_hash: str = ""
    source_address: str = ""
    correlation_id: str = ""
    message: str = ""
    mutating: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Fail at the call site, not later in a SIEM: a record that cannot be
        # rendered faithfully must not be written.
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise ValueError("AuditRecord.time must be timezone-aware (UTC)")
        if self.actor_kind not in ACTOR_KINDS:
            raise ValueError(f"AuditRecord.actor_kind {self.actor_kind!r} is not one of {sorted(ACTOR_KINDS)}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"AuditRecord.outcome {self.outcome!r} is not one of {sorted(OUTCOMES)}")
        if not self.actor_id or not self.rpc or not self.action or not self.status_code:
            raise ValueError("AuditRecord needs actor_id, rpc, action and status_code")
        if not isinstance(self.policy_ids, tuple):
            object.__setattr__(self, "policy_ids", tuple(self.policy_ids))
