"""A fake OpenShell gateway for the CLI tests: a real gRPC server on 127.0.0.1:0 built from the
generated stubs, which records every request (with its metadata) and answers from a script."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import Message

from openshell_server.api import openshell_pb2, openshell_pb2_grpc

__all__ = ["Call", "Fail", "FakeGateway", "serve"]

SERVICE = openshell_pb2.DESCRIPTOR.services_by_name["OpenShell"]


@dataclass(frozen=True)
class Fail:
    """A scripted error status."""

    code: grpc.StatusCode
    details: str


@dataclass(frozen=True)
class Call:
    method: str
    request: Message
    metadata: dict[str, str]


@dataclass
class FakeGateway:
    """Scripted replies per RPC name: a message, a list of messages (streaming) or a :class:`Fail`."""

    address: str = ""
    calls: list[Call] = field(default_factory=list)
    replies: dict[str, deque[Any]] = field(default_factory=lambda: defaultdict(deque))

    def reply(self, method: str, *replies: Any) -> None:
        self.replies[method].extend(replies)

    def only_call(self) -> Call:
        assert len(self.calls) == 1, [c.method for c in self.calls]
        return self.calls[0]

    def _next(self, method: str, request: Message, context: grpc.ServicerContext) -> Any:
        self.calls.append(Call(method, request, dict(context.invocation_metadata())))
        if not self.replies[method]:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"fake: no reply scripted for {method}")
        reply = self.replies[method].popleft()
        if isinstance(reply, Fail):
            context.abort(reply.code, reply.details)
        return reply


def _servicer(fake: FakeGateway) -> openshell_pb2_grpc.OpenShellServicer:
    def unary(name: str) -> Callable[..., Message]:
        return lambda self, request, context: fake._next(name, request, context)

    def streaming(name: str) -> Callable[..., Iterator[Message]]:
        def handler(self: Any, request: Message, context: grpc.ServicerContext) -> Iterator[Message]:
            yield from fake._next(name, request, context)

        return handler

    methods = {m.name: (streaming if m.server_streaming else unary)(m.name) for m in SERVICE.methods}
    return type("FakeServicer", (openshell_pb2_grpc.OpenShellServicer,), methods)()


def serve(fake: FakeGateway, credentials: grpc.ServerCredentials | None = None) -> grpc.Server:
    """Start a server for ``fake`` on a free loopback port (recorded in ``fake.address``); TLS if given."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    openshell_pb2_grpc.add_OpenShellServicer_to_server(_servicer(fake), server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    fake.address = f"127.0.0.1:{port}"
    server.start()
    return server
