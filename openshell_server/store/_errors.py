"""Errors raised by the store: one class per outcome a caller must tell apart.

Every error carries a one-line message a person can act on; the gateway maps each
class to one gRPC status code (see the comment on each class).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AlreadyExists",
    "Conflict",
    "InvalidArgument",
    "MemberLimitExceeded",
    "NamespaceNotEmpty",
    "NamespaceTerminating",
    "NotFound",
    "ProviderInUse",
    "QuotaExceeded",
    "StoreError",
]

# How many blockers a message spells out before summarising the rest.
_SHOWN_BLOCKERS = 10


def _summarise(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_SHOWN_BLOCKERS])
    rest = len(names) - _SHOWN_BLOCKERS
    return f"{shown} and {rest} more" if rest > 0 else shown


class StoreError(Exception):
    """Base class of every store error; ``str(err)`` is a one-line human message."""


class NotFound(StoreError):
    """The object does not exist (NOT_FOUND)."""


class AlreadyExists(StoreError):
    """An object of that kind and name already exists in the namespace (ALREADY_EXISTS)."""


class InvalidArgument(StoreError):
    """A malformed argument such as a page token or a label selector (INVALID_ARGUMENT)."""


class Conflict(StoreError):
    """The object changed since it was read: resource_version mismatch (ABORTED)."""


class NamespaceTerminating(StoreError):
    """Nothing may be created in a namespace that is being deleted (FAILED_PRECONDITION)."""

    def __init__(self, namespace: str) -> None:
        super().__init__(f"namespace {namespace!r} is terminating; nothing can be created in it")
        self.namespace = namespace


class NamespaceNotEmpty(StoreError):
    """The namespace still holds objects; ``blockers`` lists them as ``kind/name`` (FAILED_PRECONDITION)."""

    def __init__(self, namespace: str, blockers: Sequence[str]) -> None:
        super().__init__(
            f"namespace {namespace!r} is terminating but still contains {len(blockers)} object(s): "
            f"{_summarise(blockers)}; delete them and retry"
        )
        self.namespace = namespace
        self.blockers = list(blockers)


class ProviderInUse(StoreError):
    """A provider cannot be deleted while sandboxes use it (FAILED_PRECONDITION)."""

    def __init__(self, provider: str, sandboxes: Sequence[str]) -> None:
        super().__init__(
            f"provider {provider!r} is attached to {len(sandboxes)} sandbox(es): {_summarise(sandboxes)}; "
            "detach it first"
        )
        self.provider = provider
        self.sandboxes = list(sandboxes)


class MemberLimitExceeded(StoreError):
    """The namespace already has the maximum number of members (RESOURCE_EXHAUSTED)."""

    def __init__(self, namespace: str, limit: int) -> None:
        super().__init__(f"namespace {namespace!r} already has the maximum of {limit} members")
        self.namespace = namespace
        self.limit = limit


class QuotaExceeded(StoreError):
    """A hard quota refuses the create (RESOURCE_EXHAUSTED); names the limit and current use."""

    def __init__(self, namespace: str, limit_name: str, limit: int, current: int, requested: int) -> None:
        super().__init__(
            f"quota {limit_name}={limit} of namespace {namespace!r} exceeded: "
            f"{current} in use, {requested} more requested"
        )
        self.namespace = namespace
        self.limit_name = limit_name
        self.limit = limit
        self.current = current
        self.requested = requested
