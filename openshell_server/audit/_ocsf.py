"""Rendering an :class:`AuditRecord` as one OCSF 1.x API Activity event (class 6003).

Events are built as plain dicts: ``py-ocsf-models`` has no API Activity,
Actor or Network Endpoint model, so the gateway does not depend on it at
runtime; the tests validate every shape against it (for the objects it has)
and against ``ocsf_api_activity.schema.json`` (for the whole event).
"""

from __future__ import annotations

import ipaddress
import json
import re
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from openshell_server.audit._record import AuditRecord

__all__ = ["OCSF_SCHEMA_PATH", "OCSF_VERSION", "load_ocsf_schema", "to_ocsf"]

OCSF_VERSION = "1.5.0"
OCSF_SCHEMA_PATH = Path(__file__).with_name("ocsf_api_activity.schema.json")

_CLASS_UID = 6003
_CATEGORY_UID = 6
_ACTIVITY_NAMES = {1: "Create", 2: "Read", 3: "Update", 4: "Delete", 99: "Other"}
# The leading verb of a Cedar action decides the CRUD activity; anything else
# (ExecSandbox, PushSandboxLogs) is "Other" rather than a guess.
_VERB_ACTIVITY = {
    "Create": 1, "Add": 1, "Issue": 1,
    "Get": 2, "List": 2, "Who": 2, "Check": 2,
    "Update": 3, "Attach": 3, "Detach": 3, "Set": 3, "Refresh": 3,
    "Delete": 4, "Remove": 4, "Revoke": 4,
}  # fmt: skip
_SEVERITY = {"allowed": (1, "Informational"), "denied": (2, "Low"), "error": (3, "Medium")}
_VERSION_SEGMENT = re.compile(r"v\d+\w*")

try:
    _PRODUCT_VERSION: str | None = metadata.version("openshell-multiplayer")
except metadata.PackageNotFoundError:  # running from a source tree
    _PRODUCT_VERSION = None


def _action_name(action: str) -> str:
    """``OpenShell::Action::"CreateSandbox"`` or ``CreateSandbox`` -> ``CreateSandbox``."""
    quoted = re.search(r'"([^"]*)"\s*$', action)
    return quoted.group(1) if quoted else action.rsplit("::", 1)[-1]


def _activity_id(action_name: str) -> int:
    verb = re.match(r"[A-Z][a-z]*", action_name)
    return _VERB_ACTIVITY.get(verb.group(0), 99) if verb else 99


def _split_rpc(rpc: str) -> tuple[str, str]:
    """``/openshell.v1.OpenShell/CreateSandbox`` -> (``openshell.v1.OpenShell``, ``CreateSandbox``)."""
    service, _, method = rpc.strip("/").rpartition("/")
    return service, method or rpc


def _endpoint(address: str) -> dict[str, Any]:
    """A gRPC peer string (``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``, ``unix:...``) as an OCSF endpoint."""
    host, port = address, ""
    if address.startswith("ipv4:"):
        host, _, port = address[5:].rpartition(":")
    elif address.startswith("ipv6:[") and "]" in address:
        host, _, rest = address[6:].partition("]")
        port = rest.lstrip(":")
    try:
        endpoint: dict[str, Any] = {"ip": str(ipaddress.ip_address(host))}
    except ValueError:
        return {"name": address or "unknown"}
    if port.isdigit():
        endpoint["port"] = int(port)
    return endpoint


def _drop_empty(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if v not in ("", None, [], {})}


def to_ocsf(record: AuditRecord) -> dict[str, Any]:
    """One OCSF API Activity event for ``record`` (JSON-serialisable, no chain fields)."""
    action = _action_name(record.action)
    activity = _activity_id(action)
    service, operation = _split_rpc(record.rpc)
    version = next((s for s in service.split(".") if _VERSION_SEGMENT.fullmatch(s)), "")
    severity_id, severity = _SEVERITY[record.outcome]
    if any(k != "authz_request" for k in record.extra):  # e.g. a soft quota was exceeded: worth a look
        severity_id, severity = max((severity_id, severity), (2, "Low"))
    success = record.outcome == "allowed"
    target = "/".join(p for p in (record.target_namespace, record.target_name or record.target_id) if p)

    actor: dict[str, Any] = {
        "user": {
            "uid": record.actor_id,
            "name": record.actor_id.rsplit("#", 1)[-1],
            "type": record.actor_kind,
            "type_id": 99,  # Other: "type" then carries the source's own kind
        }
    }
    if record.actor_issuer:
        actor["idp"] = {"name": record.actor_issuer}
    if record.policy_ids:
        decision = "Allow" if record.outcome != "denied" else "Deny"
        actor["authorizations"] = [{"decision": decision, "policy": {"uid": p}} for p in record.policy_ids]

    api: dict[str, Any] = {
        "operation": operation,
        "service": {"name": service, "uid": service, "version": version},
    }
    if record.correlation_id:
        api["request"] = {"uid": record.correlation_id}

    event: dict[str, Any] = {
        "activity_id": activity,
        "activity_name": _ACTIVITY_NAMES[activity],
        "category_uid": _CATEGORY_UID,
        "category_name": "Application Activity",
        "class_uid": _CLASS_UID,
        "class_name": "API Activity",
        "type_uid": _CLASS_UID * 100 + activity,
        "type_name": f"API Activity: {_ACTIVITY_NAMES[activity]}",
        "time": int(record.time.timestamp() * 1000),
        "severity_id": severity_id,
        "severity": severity,
        "status_id": 1 if success else 2,
        "status": "Success" if success else "Failure",
        "status_code": record.status_code,
        "message": " ".join(p for p in (record.actor_id, operation, target) if p)
        + f": {record.outcome} ({record.status_code})",
        "metadata": _drop_empty(
            {
                "version": OCSF_VERSION,
                "product": _drop_empty(
                    {"name": "OpenShell Gateway", "vendor_name": "OpenShell", "version": _PRODUCT_VERSION}
                ),
                "log_name": "audit",
                "correlation_uid": record.correlation_id,
            }
        ),
        "actor": actor,
        "api": api,
        "src_endpoint": _endpoint(record.source_address),
        "unmapped": _drop_empty(
            {
                "rpc": record.rpc,
                "cedar_action": record.action,
                "cedar_policy_ids": list(record.policy_ids),
                "policy_set_hash": record.policy_hash,
                "outcome": record.outcome,
                "mutating": record.mutating,
                "actor_kind": record.actor_kind,
                "on_behalf_of": record.on_behalf_of,
                "extra": dict(record.extra),
            }
        ),
    }
    if record.message:
        event["status_detail"] = record.message
    resource = _drop_empty(
        {
            "uid": record.target_id,
            "name": record.target_name,
            "type": record.target_kind,
            "namespace": record.target_namespace,
        }
    )
    if resource:
        event["resources"] = [resource]
    return event


@cache
def load_ocsf_schema() -> dict[str, Any]:
    """The JSON Schema for the events :func:`to_ocsf` emits (OCSF 1.x API Activity, required fields)."""
    schema: dict[str, Any] = json.loads(OCSF_SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema
