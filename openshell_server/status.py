"""The one place where errors become gRPC status codes and one-line client messages.

Nothing else in the gateway chooses a status code. Unknown exceptions become
INTERNAL with a correlation id and no detail; the stack trace goes to the log only.
"""

from __future__ import annotations

import logging

import grpc
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError

from openshell_authz import NotFound as AuthzNotFound
from openshell_authz import PermissionDenied as AuthzPermissionDenied
from openshell_server import store
from openshell_server.authn import AuthenticationError
from openshell_server.validation import InvalidArgument

__all__ = ["Denied", "GatewayError", "to_status"]

log = logging.getLogger("openshell.gateway")


class GatewayError(Exception):
    """An error the gateway raises itself with an explicit status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        super().__init__(message)


class Denied(Exception):
    """A refusal already phrased for the caller (NOT_FOUND or a denial with a policy's status)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        super().__init__(message)


_STORE_CODES: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (store.NotFound, grpc.StatusCode.NOT_FOUND),
    (store.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (store.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (store.Conflict, grpc.StatusCode.ABORTED),
    (store.NamespaceTerminating, grpc.StatusCode.FAILED_PRECONDITION),
    (store.NamespaceNotEmpty, grpc.StatusCode.FAILED_PRECONDITION),
    (store.ProviderInUse, grpc.StatusCode.FAILED_PRECONDITION),
    (store.MemberLimitExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (store.QuotaExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED),
)


def _one_line(text: str, limit: int = 500) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def to_status(exc: BaseException, correlation_id: str) -> tuple[grpc.StatusCode, str]:
    """Map any exception to (code, one-line message)."""
    from openshell_server.audit import AuditWriteError
    from openshell_server.drivers import DriverError, DriverUnavailable, NamespaceMissing

    if isinstance(exc, (GatewayError, Denied)):
        return exc.code, _one_line(str(exc))
    if isinstance(exc, AuthenticationError):
        return grpc.StatusCode.UNAUTHENTICATED, _one_line(str(exc))
    if isinstance(exc, InvalidArgument):
        return grpc.StatusCode.INVALID_ARGUMENT, _one_line(str(exc))
    if isinstance(exc, AuthzNotFound):
        return grpc.StatusCode.NOT_FOUND, "not found"
    if isinstance(exc, AuthzPermissionDenied):
        return grpc.StatusCode.PERMISSION_DENIED, "permission denied"
    for cls, code in _STORE_CODES:
        if isinstance(exc, cls):
            return code, _one_line(str(exc))
    if isinstance(exc, (DriverUnavailable, NamespaceMissing)):
        return grpc.StatusCode.FAILED_PRECONDITION, _one_line(str(exc))
    if isinstance(exc, DriverError):
        return grpc.StatusCode.UNAVAILABLE, _one_line(f"compute driver: {exc}")
    if isinstance(exc, AuditWriteError):
        return grpc.StatusCode.UNAVAILABLE, "the audit log cannot be written; nothing was changed"
    if isinstance(exc, DataError):
        # The database refused a value (e.g. a number beyond its column's range): the input was
        # bad, and the transaction rolled back, so nothing was written.
        return grpc.StatusCode.INVALID_ARGUMENT, "a value in the request is out of the range the store accepts"
    if isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        # The database went away under the call (restart, failover): nothing was committed
        # by this call that the client was told about; retrying is safe.
        log.warning("database unavailable (correlation id %s): %s", correlation_id, _one_line(str(exc), 200))
        return grpc.StatusCode.UNAVAILABLE, "the store is temporarily unavailable; retry the call"
    if isinstance(exc, NotImplementedError):
        return grpc.StatusCode.UNIMPLEMENTED, _one_line(str(exc) or "not implemented")
    log.error("internal error (correlation id %s)", correlation_id, exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error (correlation id {correlation_id})"
