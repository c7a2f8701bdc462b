"""Namespace memberships: add (or change role), remove, list. Capped per namespace."""

from __future__ import annotations

from openshell_server import facts
from openshell_server import store as st
from openshell_server.api import openshell_pb2 as api
from openshell_server.api import resources_pb2 as pb
from openshell_server.handlers import convert
from openshell_server.handlers._common import list_scope, paginate
from openshell_server.interceptor import Call
from openshell_server.validation import InvalidArgument

__all__ = ["add", "list_", "remove"]

MAX_PRINCIPAL_ID = 512


def _member(rec: st.MembershipRecord, ns_name: str) -> pb.Member:
    kind = "service_account" if rec.principal_id.startswith("system:serviceaccount:") else "user"
    msg = pb.Member(
        namespace=ns_name, namespace_id=rec.namespace_id, principal=rec.principal_id, role=rec.role,
        member_kind=kind, created_by=rec.created_by,
    )  # fmt: skip
    msg.created_at.CopyFrom(convert.timestamp(rec.created_at))
    return msg


def add(call: Call, req: api.AddMemberRequest) -> api.AddMemberResponse:
    if len(req.principal) > MAX_PRINCIPAL_ID or any(c.isspace() for c in req.principal):
        raise InvalidArgument("principal", f"must be a principal id without spaces, at most {MAX_PRINCIPAL_ID} chars")
    gw = call.gateway
    ns = call.target.namespace_record
    rec = gw.store.put_membership(
        ns.id, req.principal, req.role, created_by=call.identity.principal_id, max_members=gw.settings.max_members
    )
    facts.forget_memberships(gw.store, req.principal)  # committed: this gateway's next calls see it
    return api.AddMemberResponse(member=_member(rec, ns.name))


def remove(call: Call, req: api.RemoveMemberRequest) -> api.RemoveMemberResponse:
    gw = call.gateway
    gw.store.remove_membership(call.target.namespace_record.id, req.principal)
    facts.forget_memberships(gw.store, req.principal)
    return api.RemoveMemberResponse()


def list_(call: Call, req: api.ListMembersRequest) -> api.ListMembersResponse:
    store = call.gateway.store
    scope = list_scope(call, "ListMembers")
    records = store.list_namespaces(None if scope.all else scope.namespace_ids)
    names = {r.id: r.name for r in records}
    members = [m for ns in sorted(records, key=lambda r: r.name) for m in store.list_memberships(ns.id)]
    page, token = paginate(members, req.page_size, req.page_token)
    return api.ListMembersResponse(members=[_member(m, names[m.namespace_id]) for m in page], next_page_token=token)
