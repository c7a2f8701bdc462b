"""Audit trail of the gateway: OCSF API Activity events in a tamper-evident, hash-chained log.

The interceptor builds an :class:`AuditRecord` per mutating call and per
denial and hands it to an :class:`AuditSink` (chosen by :func:`open_sink`);
ListAuditEvents reads the log back with :func:`query_events`. The line format
and ``verify_chain`` live in :mod:`openshell_authz._audit_chain`.
"""

from openshell_server.audit._ocsf import OCSF_SCHEMA_PATH, OCSF_VERSION, load_ocsf_schema, to_ocsf
from openshell_server.audit._query import MAX_PAGE_SIZE, AuditQuery, query_events
from openshell_server.audit._record import ACTOR_KINDS, OUTCOMES, AuditRecord
from openshell_server.audit._sinks import (
    DEFAULT_MAX_BYTES,
    AuditSink,
    AuditWriteError,
    JsonlChainSink,
    MemorySink,
    StdoutSink,
    open_sink,
)

__all__ = [
    "ACTOR_KINDS",
    "DEFAULT_MAX_BYTES",
    "MAX_PAGE_SIZE",
    "OCSF_SCHEMA_PATH",
    "OCSF_VERSION",
    "OUTCOMES",
    "AuditQuery",
    "AuditRecord",
    "AuditSink",
    "AuditWriteError",
    "JsonlChainSink",
    "MemorySink",
    "StdoutSink",
    "load_ocsf_schema",
    "open_sink",
    "query_events",
    "to_ocsf",
]
