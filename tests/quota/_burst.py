"""Concurrent CreateSandbox bursts against one namespace, with their outcome tallied."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc

from openshell_server.api import resources_pb2 as pb
from tests.gateway.harness import api, call_status

__all__ = ["Burst", "burst", "create_call", "quota_namespace"]


@dataclass(frozen=True)
class Burst:
    """What a burst of creates returned: status codes (in call order), refusal messages, wall time."""

    codes: tuple[grpc.StatusCode, ...]
    refusals: tuple[str, ...]
    seconds: float

    @property
    def ok(self) -> int:
        return self.codes.count(grpc.StatusCode.OK)

    def tally(self) -> dict[str, int]:
        return {code.name: n for code, n in Counter(self.codes).items()}

    def figures(self, label: str) -> str:
        return f"{label}: {len(self.codes)} creates in {self.seconds:.2f}s -> {self.tally()}"


def burst(calls: Sequence[Callable[[], tuple[grpc.StatusCode, str, Any]]]) -> Burst:
    """Run every call at once (one thread each, released together) and collect the outcomes."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        results = list(pool.map(lambda c: c(), calls))
    seconds = time.perf_counter() - started
    codes = tuple(code for code, _, _ in results)
    refusals = tuple(msg for code, msg, _ in results if code != grpc.StatusCode.OK)
    return Burst(codes, refusals, seconds)


def create_call(stub: Any, namespace: str, name: str) -> Callable[[], tuple[grpc.StatusCode, str, Any]]:
    request = api.CreateSandboxRequest(namespace=namespace, name=name)
    return lambda: call_status(stub.CreateSandbox, request)


def quota_namespace(admin: Any, name: str, *, max_sandboxes: int, mode: str = "hard") -> None:
    """Create ``name`` with a sandbox limit (and ceiling) of ``max_sandboxes`` in ``mode``."""
    limits = pb.Limits(max_sandboxes=max_sandboxes)
    admin.CreateNamespace(api.CreateNamespaceRequest(name=name, quota=limits, ceiling=limits, quota_mode=mode))
