"""What every ``openshell`` command shares: the call context, the error type and the exit codes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TextIO

import grpc

from openshell_server.api import openshell_pb2_grpc

__all__ = ["EXIT_NO", "EXIT_OK", "EXIT_PROTOCOL", "EXIT_USAGE", "CliError", "Context", "exit_code_for"]

EXIT_OK = 0
EXIT_NO = 1
EXIT_USAGE = 2
EXIT_PROTOCOL = 3
_GRPC_EXIT_BASE = 10


def exit_code_for(code: grpc.StatusCode) -> int:
    """The process exit code for a gRPC status (10 + its numeric value)."""
    return _GRPC_EXIT_BASE + code.value[0]


class CliError(Exception):
    """A failure reported as one ``error: ...`` line and ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Context:
    """What every command needs: the stub, the call metadata, the namespace and the output format."""

    stub: openshell_pb2_grpc.OpenShellStub
    metadata: tuple[tuple[str, str], ...]
    namespace: str
    output: str
    out: TextIO
    err: TextIO

    def call(self, rpc: str, request: Any) -> Any:
        """Invoke ``rpc`` (unary, or server-streaming: then an iterator) with the caller's token."""
        return getattr(self.stub, rpc)(request, metadata=self.metadata)

    @property
    def json(self) -> bool:
        return self.output == "json"
