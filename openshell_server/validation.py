"""Pure validators for request fields: each returns the clean value or raises InvalidArgument.

Messages name the field and say how to fix it, in one line.
"""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf.message import Message

from openshell_authz import DEFAULT_NAMESPACE, is_dns1123_label

__all__ = [
    "InvalidArgument",
    "label_selector",
    "labels",
    "namespace_name",
    "object_name",
    "page_size",
    "reject_nul",
    "stored_int",
]

MAX_LABELS = 64
_LABEL_KEY_MAX = 253
_LABEL_VALUE_MAX = 63


class InvalidArgument(ValueError):
    """A request field is malformed; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


def _is_label(value: str, max_len: int = 63) -> bool:
    # openshell_authz.is_dns1123_label anchors with "$", which also matches before a final
    # newline: "box\n" would pass and name a second object that prints like "box".
    return "\n" not in value and is_dns1123_label(value, max_len)


def namespace_name(value: str, *, field: str = "namespace", gateway_id: str = "local") -> str:
    """An OpenShell namespace name; empty means ``default``.

    It must also fit the Kubernetes namespace ``openshell-<gateway-id>-<name>`` in 63 characters.
    """
    name = value or DEFAULT_NAMESPACE
    budget = 63 - len(f"openshell-{gateway_id}-")
    if not _is_label(name, 63):
        raise InvalidArgument(
            field,
            f"{name!r} is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending alphanumeric)",
        )
    if len(name) > budget:
        raise InvalidArgument(
            field, f"{name!r} is {len(name)} characters; at most {budget} fit the Kubernetes namespace name"
        )
    return name


def object_name(value: str, *, field: str = "name") -> str:
    if not value:
        raise InvalidArgument(field, "is required")
    if not _is_label(value, 63):
        raise InvalidArgument(
            field, f"{value[:80]!r} is not a DNS-1123 label of at most 63 characters (lowercase letters, digits, '-')"
        )
    return value


def labels(values: Mapping[str, str], *, field: str = "labels") -> dict[str, str]:
    if len(values) > MAX_LABELS:
        raise InvalidArgument(field, f"at most {MAX_LABELS} labels are allowed")
    out: dict[str, str] = {}
    for key, val in values.items():
        if not key or len(key) > _LABEL_KEY_MAX or any(c.isspace() or c in ",=" for c in key):
            raise InvalidArgument(
                field, f"label key {key[:80]!r} must be 1-{_LABEL_KEY_MAX} chars without spaces, ',' or '='"
            )
        if len(val) > _LABEL_VALUE_MAX or any(c.isspace() or c in ",=" for c in val):
            raise InvalidArgument(
                field, f"label value for {key!r} must be at most {_LABEL_VALUE_MAX} chars without spaces"
            )
        out[key] = val
    return out


def label_selector(value: str, *, field: str = "label_selector") -> dict[str, str]:
    """Parse ``k=v,k2=v2`` (equality only)."""
    if not value.strip():
        return {}
    pairs: dict[str, str] = {}
    for part in value.split(","):
        key, sep, val = part.strip().partition("=")
        if not sep or not key.strip():
            raise InvalidArgument(field, f"{part.strip()!r} is not of the form key=value")
        pairs[key.strip()] = val.strip()
    return labels(pairs, field=field)


def page_size(value: int, *, default: int = 100, maximum: int = 1000, field: str = "page_size") -> int:
    if value < 0:
        raise InvalidArgument(field, "must not be negative")
    return min(value or default, maximum)


def reject_nul(message: Message, prefix: str = "") -> None:
    """Refuse any string field, map key or value holding a NUL character, anywhere in ``message``.

    No name, label or id legitimately contains one, and PostgreSQL text cannot store it:
    refusing it up front gives a clear INVALID_ARGUMENT instead of a store error.
    """
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            for key, item in value.items():
                if isinstance(key, str) and "\x00" in key:
                    raise InvalidArgument(path, "keys must not contain NUL characters")
                if isinstance(item, str) and "\x00" in item:
                    raise InvalidArgument(f"{path}[{key!r}]", "must not contain NUL characters")
                if isinstance(item, Message):
                    reject_nul(item, f"{path}[{key!r}].")
            continue
        repeated = getattr(field, "is_repeated", None)  # protobuf >= 6; older runtimes expose .label
        if repeated is None:
            repeated = field.label == 3  # LABEL_REPEATED
        items = [(f"{path}[{i}]", v) for i, v in enumerate(value)] if repeated else [(path, value)]
        for where, item in items:
            if isinstance(item, str) and "\x00" in item:
                raise InvalidArgument(where, "must not contain NUL characters")
            if isinstance(item, Message):
                reject_nul(item, f"{where}.")


#: Numbers the store keeps (quotas, GPUs, versions, lifetimes) are 32-bit signed integers.
MAX_STORED_INT = 2**31 - 1


def stored_int(value: int, field: str, *, minimum: int = 0) -> int:
    """A number the store will keep: between ``minimum`` and 2**31-1."""
    if not minimum <= value <= MAX_STORED_INT:
        raise InvalidArgument(field, f"must be between {minimum} and {MAX_STORED_INT}")
    return int(value)
