"""The single authorization point of the gateway.

For every RPC: authenticate -> resolve the target from the store -> ask
openshell_authz -> run the handler -> audit. An RPC of the OpenShell API without
a complete (openshell.v1.authz) annotation is refused. Handlers read the
authorized call through :func:`current_call`; every exception becomes a status
in :mod:`openshell_server.status`.
"""

from __future__ import annotations

import contextvars
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from openshell_authz import Principal, Request, Response
from openshell_server import facts, targets, validation
from openshell_server.api import method_authz, methods
from openshell_server.audit import AuditWriteError
from openshell_server.authn import AuthenticationError, Identity
from openshell_server.status import Denied, to_status
from openshell_server.store import before_commit

if TYPE_CHECKING:
    from openshell_server.app import Gateway

__all__ = ["AuthzInterceptor", "Call", "current_call"]

log = logging.getLogger("openshell.gateway")
API_PREFIX = "/openshell.v1."


@dataclass(slots=True)
class Call:
    """An authenticated, authorized call in progress."""

    gateway: Gateway
    rule: targets.Rule
    identity: Identity
    principal: Principal
    target: targets.Target
    decision: Response
    request: Request
    correlation_id: str
    peer: str
    grpc_context: grpc.ServicerContext
    # The policy set that admitted the call: the handler's finer decisions (lists,
    # credentials) use the same one even if a reload swaps the live set meanwhile.
    authorizer: Any = None
    audit_extra: dict[str, str] = field(default_factory=dict)
    audited: bool = False  # the success event was written (before the first commit)



_CURRENT: contextvars.ContextVar[Call] = contextvars.ContextVar("openshell_call")


def current_call() -> Call:
    return _CURRENT.get()


def _bearer(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthenticationError("the authorization header must be 'Bearer <token>'")
            return token.strip()
    return None


class AuthzInterceptor(grpc.ServerInterceptor):
    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._rules: dict[str, targets.Rule | None] = {}
        for path, desc in methods().items():
            ann = method_authz(desc)
            complete = ann is not None and ann.action and ann.target
            self._rules[path] = targets.Rule.from_proto(path, ann) if complete else None

    # ------------------------------------------------------------------ grpc plumbing
    def intercept_service(self, continuation: Callable[..., Any], details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        method = details.method
        if not method.startswith(API_PREFIX):
            return handler  # health checking and reflection carry no data of ours
        rule = self._rules.get(method)
        if handler is None:
            return None
        if rule is None:
            return _refuse(handler, "this RPC has no authorization rule and is refused")
        if handler.unary_unary:
            inner = handler.unary_unary

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                return self._run_unary(rule, inner, request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream:
            inner_stream = handler.unary_stream

            def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                return self._run_stream(rule, inner_stream, request, context)

            return grpc.unary_stream_rpc_method_handler(
                stream, handler.request_deserializer, handler.response_serializer
            )
        return _refuse(handler, "streaming requests are not supported")

    def _run_unary(self, rule: targets.Rule, inner: Callable[..., Any], request: Any, ctx: grpc.ServicerContext) -> Any:
        started = time.perf_counter()
        cid = uuid.uuid4().hex
        call: Call | None = None
        try:
            call = self._admit(rule, request, ctx, cid)
            token = _CURRENT.set(call)
            try:
                with self._audit_before_commit(call):
                    result = inner(request, ctx)
            finally:
                _CURRENT.reset(token)
            self._finish(call, "OK")
            return result
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status in _fail
            self._fail(rule, call, exc, ctx, cid)
        finally:
            self._gateway.metrics.observe_rpc(rule.method, time.perf_counter() - started)
        return None

    def _run_stream(
        self, rule: targets.Rule, inner: Callable[..., Iterator[Any]], request: Any, ctx: grpc.ServicerContext
    ) -> Iterator[Any]:
        cid = uuid.uuid4().hex
        call: Call | None = None
        try:
            call = self._admit(rule, request, ctx, cid)
            token = _CURRENT.set(call)
            try:
                with self._audit_before_commit(call):
                    yield from inner(request, ctx)
            finally:
                _CURRENT.reset(token)
            self._finish(call, "OK")
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status in _fail
            self._fail(rule, call, exc, ctx, cid)

    # ------------------------------------------------------------------ the pipeline
    def _admit(self, rule: targets.Rule, request: Any, ctx: grpc.ServicerContext, cid: str) -> Call:
        gw = self._gateway
        identity = gw.transport.identify(ctx, _bearer(ctx.invocation_metadata()))
        validation.reject_nul(request)
        principal = facts.principal_for(identity, gw.store)
        target = targets.resolve(rule, request, gw.store, gw.settings.gateway_id)
        context = targets.build_context(rule.action, request, target, gw.store, gw.settings.gateway_id)
        authz_request = Request(principal, rule.action, target.resource, context)
        authorizer = gw.policies.current
        started = time.perf_counter()
        decision = authorizer.check(authz_request)
        gw.metrics.observe_decision(rule.action, decision.allowed, time.perf_counter() - started)
        call = Call(gw, rule, identity, principal, target, decision, authz_request, cid, ctx.peer(), ctx, authorizer)
        if not decision.allowed:
            raise self._denial(call)
        return call

    def _denial(self, call: Call) -> Denied:
        """NOT_FOUND unless the caller may see the target's namespace; then the policy's status."""
        authorizer = call.authorizer
        target = call.target
        visible = target.kind == "gateway" or target.all_namespaces
        if not visible and target.namespace is not None:
            visible = authorizer.check(Request(call.principal, "GetNamespace", target.namespace)).allowed
        denied: Denied
        if not visible:
            denied = target.not_found()
        else:
            code, message = grpc.StatusCode.PERMISSION_DENIED, ""
            for pid in call.decision.reasons:
                status = authorizer.annotation(pid, "status")
                if status and hasattr(grpc.StatusCode, status):
                    code = getattr(grpc.StatusCode, status)
                message = message or authorizer.annotation(pid, "message") or ""
            if call.decision.errors:
                message = "the policies could not decide this request, so it is denied"
            denied = Denied(code, message or f"{call.principal.id} may not {call.rule.action} {target.describe()}")
        self._audit(call, "denied", denied.code.name, str(denied))
        return denied

    def _audit_before_commit(self, call: Call) -> AbstractContextManager[None]:
        """Write a mutating call's audit event inside its first store transaction.

        If the audit log cannot be written the transaction rolls back and the call
        fails: nothing is committed without its event.
        """
        if not call.rule.mutating:
            return nullcontext()

        def hook() -> None:
            if not call.audited:
                self._audit(call, "allowed", "OK", "")
                call.audited = True

        return before_commit(hook)

    def _finish(self, call: Call, status: str) -> None:
        if call.rule.mutating and not call.audited:  # e.g. ExecSandbox: no store write to hook
            self._audit(call, "allowed", status, "")
            call.audited = True

    def _fail(self, rule: targets.Rule, call: Call | None, exc: Exception, ctx: grpc.ServicerContext, cid: str) -> None:
        code, message = to_status(exc, cid)
        if call is None and isinstance(exc, AuthenticationError):
            self._gateway.audit_unauthenticated(rule, ctx.peer(), cid, message)
        elif call is not None and call.decision.allowed and rule.mutating and not isinstance(exc, AuditWriteError):
            # Normally the call's only event. If a write already committed (and was audited)
            # before the failure, this second event records that the call did not complete.
            self._audit(call, "error", code.name, message)
        ctx.abort(code, message)

    def _audit(self, call: Call, outcome: str, status: str, message: str) -> None:
        self._gateway.audit_call(call, outcome, status, message)


def _refuse(handler: Any, message: str) -> Any:
    def deny(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, message)

    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(deny, handler.request_deserializer, handler.response_serializer)
    return grpc.unary_unary_rpc_method_handler(deny, handler.request_deserializer, handler.response_serializer)
