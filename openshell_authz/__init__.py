"""openshell_authz: Cedar-backed authorization for OpenShell multi-player gateways.

No gRPC and no database here: callers hand in facts (principal, resource,
namespace), the Cedar policies in a policy directory decide.

    authz = Authorizer.from_directory("policies")
    response = authz.check(Request(principal, "CreateSandbox", namespace))
    authz.authorize(request, read_action="GetSandbox")   # raises NotFound / PermissionDenied
"""

from openshell_authz._policy_tests import TestReport, run_policy_tests
from openshell_authz.authorizer import (
    Authorizer,
    Decision,
    NamespaceScope,
    Request,
    Response,
    member_namespace_ids,
    request_from_dict,
    request_to_dict,
)
from openshell_authz.context import AttachContext, Context, ListContext, MemberContext, UpdateNamespaceContext
from openshell_authz.errors import AuthzError, NotFound, PermissionDenied, PolicyLoadError, PolicyTestFailure
from openshell_authz.models import (
    DEFAULT_NAMESPACE,
    Gateway,
    GlobalRole,
    LocalPrincipal,
    Membership,
    Namespace,
    NamespacePhase,
    NamespaceRole,
    Principal,
    Provider,
    Quota,
    QuotaMode,
    Resource,
    Sandbox,
    ServiceAccount,
    ServiceAccountPrincipal,
    SupervisorPrincipal,
    UserPrincipal,
    is_dns1123_label,
)

__all__ = [
    "DEFAULT_NAMESPACE",
    "AttachContext",
    "Authorizer",
    "AuthzError",
    "Context",
    "Decision",
    "Gateway",
    "GlobalRole",
    "ListContext",
    "LocalPrincipal",
    "MemberContext",
    "Membership",
    "Namespace",
    "NamespacePhase",
    "NamespaceRole",
    "NamespaceScope",
    "NotFound",
    "PermissionDenied",
    "PolicyLoadError",
    "PolicyTestFailure",
    "Principal",
    "Provider",
    "Quota",
    "QuotaMode",
    "Request",
    "Resource",
    "Response",
    "Sandbox",
    "ServiceAccount",
    "ServiceAccountPrincipal",
    "SupervisorPrincipal",
    "TestReport",
    "UpdateNamespaceContext",
    "UserPrincipal",
    "is_dns1123_label",
    "member_namespace_ids",
    "request_from_dict",
    "request_to_dict",
    "run_policy_tests",
]
