"""Prometheus metrics of the gateway (own registry, so several gateways can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter(
            "openshell_authz_decisions_total", "Authorization decisions", ["action", "outcome"], registry=self.registry
        )
        self.decision_latency = Histogram(
            "openshell_authz_decision_seconds", "Authorization decision latency", registry=self.registry,
            buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05),
        )  # fmt: skip
        self.rpc_latency = Histogram("openshell_rpc_seconds", "RPC latency", ["method"], registry=self.registry)
        self.reloads = Counter(
            "openshell_policy_reloads_total", "Policy reload attempts", ["result"], registry=self.registry
        )

    def observe_decision(self, action: str, allowed: bool, seconds: float) -> None:
        self.decisions.labels(action, "allow" if allowed else "deny").inc()
        self.decision_latency.observe(seconds)

    def observe_rpc(self, method: str, seconds: float) -> None:
        self.rpc_latency.labels(method.rsplit("/", 1)[-1]).observe(seconds)

    def observe_reload(self, ok: bool) -> None:
        self.reloads.labels("ok" if ok else "refused").inc()

    def serve(self, listen: str) -> int:
        host, _, port = listen.rpartition(":")
        server, _thread = start_http_server(int(port), addr=host or "127.0.0.1", registry=self.registry)
        return int(server.server_address[1])
