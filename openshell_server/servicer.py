"""The thin gRPC servicer: every RPC hands the authorized call and its request to one use case.

Authentication, authorization, auditing and status mapping happen in the
interceptor; nothing here decides anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from openshell_server.api import openshell_pb2_grpc
from openshell_server.handlers import gateway, members, namespaces, providers, sandboxes, service_accounts, supervisor
from openshell_server.interceptor import current_call

__all__ = ["USE_CASES", "OpenShellServicer"]

USE_CASES: dict[str, Callable[..., Any]] = {
    "CreateNamespace": namespaces.create,
    "GetNamespace": namespaces.get,
    "ListNamespaces": namespaces.list_,
    "UpdateNamespace": namespaces.update,
    "DeleteNamespace": namespaces.delete,
    "AddMember": members.add,
    "RemoveMember": members.remove,
    "ListMembers": members.list_,
    "CreateServiceAccount": service_accounts.create,
    "DeleteServiceAccount": service_accounts.delete,
    "ListServiceAccounts": service_accounts.list_,
    "IssueServiceAccountToken": service_accounts.issue_token,
    "CreateSandbox": sandboxes.create,
    "GetSandbox": sandboxes.get,
    "ListSandboxes": sandboxes.list_,
    "DeleteSandbox": sandboxes.delete,
    "ExecSandbox": sandboxes.exec_,
    "GetSandboxLogs": sandboxes.logs,
    "GetSandboxPolicy": sandboxes.policy,
    "CreateProvider": providers.create,
    "GetProvider": providers.get,
    "ListProviders": providers.list_,
    "UpdateProvider": providers.update,
    "DeleteProvider": providers.delete,
    "AttachProvider": providers.attach,
    "DetachProvider": providers.detach,
    "ListSandboxProviders": providers.list_for_sandbox,
    "GetGatewayConfig": gateway.get_config,
    "UpdateGatewayConfig": gateway.update_config,
    "ListAuditEvents": gateway.list_audit_events,
    "GetSandboxConfig": supervisor.get_config,
    "GetSandboxProviderEnvironment": supervisor.get_provider_environment,
    "PushSandboxLogs": supervisor.push_logs,
    "RefreshSandboxToken": supervisor.refresh_token,
    "WhoAmI": gateway.who_am_i,
    "CheckAccess": gateway.check_access,
}


def _delegate(use_case: Callable[..., Any]) -> Callable[..., Any]:
    def method(self: Any, request: Any, context: Any) -> Any:
        return use_case(current_call(), request)

    method.__name__ = use_case.__name__
    return method


# One method per RPC, generated from USE_CASES so the mapping is the only thing to read.
OpenShellServicer = type(
    "OpenShellServicer",
    (openshell_pb2_grpc.OpenShellServicer,),
    {name: _delegate(fn) for name, fn in USE_CASES.items()},
)
