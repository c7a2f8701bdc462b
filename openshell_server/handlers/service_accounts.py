"""Service accounts: create, delete (revokes every token at once), list, issue tokens."""

from __future__ import annotations

from datetime import UTC, datetime

from openshell_server import validation
from openshell_server.api import openshell_pb2 as api
from openshell_server.handlers import convert
from openshell_server.handlers._common import list_scope, namespace_names, paginate
from openshell_server.interceptor import Call

__all__ = ["create", "delete", "issue_token", "list_"]


def create(call: Call, req: api.CreateServiceAccountRequest) -> api.CreateServiceAccountResponse:
    ns = call.target.namespace_record
    name = validation.object_name(req.name)
    call.target.name = name
    rec = call.gateway.store.create_service_account(
        ns.id, name, created_by=call.identity.principal_id, labels=validation.labels(req.labels)
    )
    return api.CreateServiceAccountResponse(service_account=convert.service_account(rec, ns.name))


def delete(call: Call, req: api.DeleteServiceAccountRequest) -> api.DeleteServiceAccountResponse:
    gw = call.gateway
    rec = call.target.record
    gw.store.delete_service_account(rec.id)
    # Tokens are checked against the store on every call; the cache must not outlive the account.
    gw.authenticator.forget(f"system:serviceaccount:{call.target.namespace_name}:{rec.name}")
    return api.DeleteServiceAccountResponse()


def list_(call: Call, req: api.ListServiceAccountsRequest) -> api.ListServiceAccountsResponse:
    store = call.gateway.store
    scope = list_scope(call, "ListServiceAccounts")
    selector = validation.label_selector(req.label_selector)
    records = store.list_service_accounts(None if scope.all else scope.namespace_ids, label_selector=selector)
    names = namespace_names(store, {r.namespace_id for r in records})
    records.sort(key=lambda r: (names.get(r.namespace_id, ""), r.name))
    page, token = paginate(records, req.page_size, req.page_token)
    return api.ListServiceAccountsResponse(
        service_accounts=[convert.service_account(r, names.get(r.namespace_id, "")) for r in page],
        next_page_token=token,
    )


def issue_token(call: Call, req: api.IssueServiceAccountTokenRequest) -> api.IssueServiceAccountTokenResponse:
    gw = call.gateway
    rec = call.target.record
    ttl = int(req.ttl_seconds) or gw.settings.sa_token_default_ttl_seconds
    if ttl < 0 or ttl > gw.settings.sa_token_max_ttl_seconds:
        raise validation.InvalidArgument(
            "ttl_seconds", f"must be between 1 and {gw.settings.sa_token_max_ttl_seconds} seconds"
        )
    token, expires_at = gw.minter.mint_service_account(rec.id, call.target.namespace_name, rec.name, ttl)
    return api.IssueServiceAccountTokenResponse(
        token=token, expires_at=convert.timestamp(datetime.fromtimestamp(expires_at, UTC))
    )
