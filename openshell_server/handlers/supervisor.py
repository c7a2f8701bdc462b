"""The sandbox supervisor path: config, provider environment, logs, token refresh."""

from __future__ import annotations

from datetime import UTC, datetime

from openshell_server import validation
from openshell_server.api import openshell_pb2 as api
from openshell_server.handlers import convert
from openshell_server.handlers.sandboxes import policy_message, provider_environment, sandbox_policy
from openshell_server.interceptor import Call

__all__ = ["get_config", "get_provider_environment", "push_logs", "refresh_token"]

MAX_LOG_LINES = 1000
MAX_LOG_LINE = 16 * 1024


def get_config(call: Call, req: api.GetSandboxConfigRequest) -> api.GetSandboxConfigResponse:
    rec = call.target.record
    return api.GetSandboxConfigResponse(
        sandbox_id=rec.id, name=rec.name, namespace=call.target.namespace_name,
        policy=policy_message(sandbox_policy(call.gateway.store, rec)),
    )  # fmt: skip


def get_provider_environment(
    call: Call, req: api.GetSandboxProviderEnvironmentRequest
) -> api.GetSandboxProviderEnvironmentResponse:
    env = provider_environment(call, call.target.record, call.target.namespace_record)
    return api.GetSandboxProviderEnvironmentResponse(environment=env)


def push_logs(call: Call, req: api.PushSandboxLogsRequest) -> api.PushSandboxLogsResponse:
    if len(req.lines) > MAX_LOG_LINES:
        raise validation.InvalidArgument("lines", f"at most {MAX_LOG_LINES} lines per call")
    lines = [line.text[:MAX_LOG_LINE] for line in req.lines]
    accepted = call.gateway.store.append_sandbox_logs(call.target.record.id, lines)
    return api.PushSandboxLogsResponse(accepted=accepted)


def refresh_token(call: Call, req: api.RefreshSandboxTokenRequest) -> api.RefreshSandboxTokenResponse:
    gw = call.gateway
    token, expires_at = gw.minter.mint_supervisor(
        call.target.record.id, call.target.namespace_name, gw.settings.supervisor_token_ttl_seconds
    )
    return api.RefreshSandboxTokenResponse(
        token=token, expires_at=convert.timestamp(datetime.fromtimestamp(expires_at, UTC))
    )
