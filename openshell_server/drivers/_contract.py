"""The compute-driver contract: the value types, errors and the ``ComputeDriver`` protocol.

A driver receives a sandbox whose namespace the gateway has already resolved and
authorized; it has no notion of principals or roles.
"""

from __future__ import annotations

import enum
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "ComputeDriver",
    "DriverError",
    "DriverEvent",
    "DriverSandbox",
    "DriverUnavailable",
    "ExecChunk",
    "ExecResult",
    "NamespaceMissing",
    "SandboxNotFound",
    "SandboxPhase",
    "SandboxSpec",
    "validate_dns_label",
]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def validate_dns_label(kind: str, value: str) -> str:
    """Return ``value`` if it is a DNS-1123 label, else raise ValueError naming ``kind``.

    Drivers turn namespace and sandbox names into paths and object names, so they
    re-check them rather than trusting every caller did.
    """
    if not _DNS_LABEL.fullmatch(value):
        raise ValueError(
            f"invalid {kind} {value!r}: must be a DNS-1123 label (lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters)"
        )
    return value


class SandboxPhase(enum.Enum):
    """Lifecycle phase a driver reports for a sandbox."""

    PROVISIONING = "Provisioning"
    READY = "Ready"
    ERROR = "Error"
    DELETING = "Deleting"


@dataclass(frozen=True)
class SandboxSpec:
    """What the gateway asks a driver to run.

    ``env`` is the provider environment (credentials), resolved by the gateway
    through the supervisor path. The kubernetes driver delivers it as a Secret at
    create time; the local driver injects it into every exec.
    """

    id: str
    name: str
    namespace: str
    namespace_id: str
    image: str = ""
    gpus: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    network_allowed: bool = False
    supervisor_token: str = field(default="", repr=False)
    env: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class DriverSandbox:
    """A sandbox as the driver observes it."""

    id: str
    name: str
    namespace: str
    phase: SandboxPhase
    message: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecChunk:
    """A piece of output from a running exec."""

    stream: Literal["stdout", "stderr"]
    data: bytes


@dataclass(frozen=True)
class ExecResult:
    """The last item an exec yields."""

    exit_code: int
    timed_out: bool = False


@dataclass(frozen=True)
class DriverEvent:
    """A phase change seen by the driver's watch; ``deleted`` means the object is gone."""

    sandbox_id: str
    namespace: str
    phase: SandboxPhase
    message: str = ""
    deleted: bool = False


class DriverError(Exception):
    """Base class of every driver failure; the message is one line a person can act on."""


class DriverUnavailable(DriverError):
    """The driver cannot work on this host (missing binary, unreachable cluster)."""


class NamespaceMissing(DriverError):
    """Operator mode: the target Kubernetes namespace does not exist (message from the API)."""


class SandboxNotFound(DriverError):
    """The driver has no such sandbox."""


@runtime_checkable
class ComputeDriver(Protocol):
    """What the gateway needs from a compute backend."""

    name: str

    def check_ready(self) -> None:
        """Raise DriverUnavailable (with an install/fix hint) if the driver cannot work here."""
        ...

    def create(self, spec: SandboxSpec) -> DriverSandbox:
        """Start provisioning ``spec``; return once the backend has accepted it."""
        ...

    def delete(self, spec: SandboxSpec) -> None:
        """Stop and remove the sandbox; deleting an absent sandbox succeeds."""
        ...

    def get(self, sandbox_id: str) -> DriverSandbox | None:
        """The sandbox with this id, or None."""
        ...

    def list(self) -> list[DriverSandbox]:
        """Every sandbox this driver (this gateway) owns."""
        ...

    def exec(
        self,
        spec: SandboxSpec,
        argv: list[str],
        *,
        env: Mapping[str, str],
        timeout_s: float,
        stdin: bytes | None = None,
    ) -> Iterator[ExecChunk | ExecResult]:
        """Run ``argv`` in the sandbox, streaming output; the last item is an ExecResult."""
        ...

    def logs(self, spec: SandboxSpec, tail: int | None = None) -> list[str]:
        """The sandbox's log lines (the last ``tail`` of them if given)."""
        ...

    def watch(self, stop: threading.Event) -> Iterator[DriverEvent]:
        """Yield phase changes until ``stop`` is set."""
        ...

    def delete_namespace(self, namespace: str) -> None:
        """The OpenShell namespace was deleted and is empty: release what backs it."""
        ...
