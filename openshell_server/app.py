"""The gateway's services wired together: settings, store, policies, authn, driver, audit.

Built once per server by :func:`openshell_server.server.build_server`; handlers
reach it through the call (``call.gateway``).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openshell_authz import request_to_dict
from openshell_server import store as st
from openshell_server.audit import AuditQuery, AuditRecord, open_sink, query_events
from openshell_server.authn import Authenticator, OidcIssuer, OidcVerifier, SigningKeys, TokenCache, TokenMinter
from openshell_server.background import Background
from openshell_server.drivers import get_driver
from openshell_server.metrics import Metrics
from openshell_server.policies import PolicyHolder
from openshell_server.settings import Settings
from openshell_server.transport import CallerIdentification

if TYPE_CHECKING:
    from openshell_server.interceptor import Call
    from openshell_server.targets import Rule

__all__ = ["Gateway"]

log = logging.getLogger("openshell.gateway")


class Gateway:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        data = Path(settings.data_dir)
        data.mkdir(parents=True, exist_ok=True)
        self.metrics = Metrics()
        self.policies = PolicyHolder(settings.policy_dir, on_reload=self.metrics.observe_reload)
        self.store: st.Store = st.open_store(settings.resolved_database_url())
        self.store.ensure_default()  # start fails loudly if the default namespace cannot exist
        max_ttl = max(settings.sa_token_max_ttl_seconds, settings.supervisor_token_ttl_seconds)
        # A rotated-out key must keep verifying until the last token it signed expires.
        self.keys = SigningKeys(data, retention_s=max_ttl + 3600)
        self.minter = TokenMinter(self.keys, settings.gateway_id, max_ttl_s=max_ttl)
        oidc = None
        if settings.oidc_issuers:
            oidc = OidcVerifier(
                [OidcIssuer(i.issuer, i.audience, i.jwks_url) for i in settings.oidc_issuers],
                settings.oidc_roles_claim,
            )
        self.authenticator = Authenticator(oidc, self.minter, cache=TokenCache())
        self.transport = CallerIdentification(settings, self.authenticator)  # token, client cert or local
        driver_config: dict[str, Any] = {"data_dir": data}
        if settings.driver == "kubernetes":
            driver_config = {"gateway_id": settings.gateway_id, "mode": settings.k8s_namespace_mode}
        self.driver = get_driver(settings.driver, **driver_config)
        self.audit = open_sink(settings.audit_log, data, max_bytes=settings.audit_max_bytes)
        self.background = Background(self)
        self._audit_path = None if settings.audit_log == "-" else (
            Path(settings.audit_log).expanduser() if settings.audit_log else data / "audit" / "audit.jsonl"
        )

    # ------------------------------------------------------------------ audit
    def audit_call(self, call: Call, outcome: str, status: str, message: str) -> None:
        target = call.target
        extra = dict(call.audit_extra)
        extra["authz_request"] = json.dumps(request_to_dict(call.request), separators=(",", ":"))
        on_behalf = ""
        if call.identity.kind == "supervisor" and target.record is not None:
            on_behalf = getattr(target.record, "created_by", "")
        record = AuditRecord(
            time=datetime.now(UTC),
            actor_id=call.identity.principal_id,
            actor_kind=call.identity.kind,
            actor_issuer=call.identity.issuer,
            on_behalf_of=on_behalf,
            rpc=call.rule.method,
            action=call.rule.action,
            outcome=outcome,
            status_code=status,
            target_kind=target.kind,
            # A namespace is its own namespace (CreateNamespace has no namespace record yet).
            target_namespace=target.namespace_name or (target.name if target.kind == "namespace" else ""),
            target_name=target.name,
            target_id=getattr(target.record, "id", "") if target.record is not None else "",
            policy_ids=tuple(call.decision.reasons),
            policy_hash=call.decision.policy_hash,
            source_address=call.peer,
            correlation_id=call.correlation_id,
            message=message,
            mutating=call.rule.mutating,
            extra=extra,
        )
        self.audit.emit(record)

    def audit_unauthenticated(self, rule: Rule, peer: str, cid: str, message: str) -> None:
        self.audit.emit(
            AuditRecord(
                time=datetime.now(UTC), actor_id="anonymous", actor_kind="user", rpc=rule.method,
                action=rule.action, outcome="denied", status_code="UNAUTHENTICATED", source_address=peer,
                correlation_id=cid, message=message, mutating=rule.mutating,
                policy_hash=self.policies.current.policy_hash,
            )
        )  # fmt: skip

    def audit_first_contact(self, principal_id: str, action: str, namespace: str) -> None:
        """Workstation mode: the gateway itself creates an account's namespace and admin membership."""
        self.audit.emit(
            AuditRecord(
                time=datetime.now(UTC), actor_id="system:gateway", actor_kind="system", rpc="workstation-broker",
                action=action, outcome="allowed", status_code="OK", target_kind="namespace",
                target_namespace=namespace, target_name=namespace, on_behalf_of=principal_id,
                message=f"first contact of {principal_id}", mutating=True,
                policy_hash=self.policies.current.policy_hash,
            )
        )  # fmt: skip

    def query_audit(self, *, page_size: int, page_token: str, **filters: Any) -> tuple[list[str], str]:
        if self._audit_path is None:
            return [], ""
        from openshell_authz._audit_chain import chain_files

        ns = filters.pop("namespaces")
        query = AuditQuery(
            namespaces=None if ns is None else frozenset(ns),
            principal=filters.get("principal") or "",
            operation=filters.get("operation") or "",
            outcome=filters.get("outcome") or "",
            since=_utc(filters.get("since")),
            until=_utc(filters.get("until")),
        )
        events, token = query_events(chain_files(self._audit_path), query, page_size, page_token)
        return [json.dumps(e, separators=(",", ":")) for e in events], token

    def close(self) -> None:
        self.background.stop()
        self.policies.stop()
        self.audit.close()
        self.store.close()


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
