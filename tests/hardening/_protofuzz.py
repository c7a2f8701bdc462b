"""Hypothesis strategies that build arbitrary protobuf requests from the API's descriptors.

Every field of every request message is filled (or left unset) by its descriptor's type:
strings, bytes, every integer width, floats, bools, open enums, nested messages (to a
bounded depth), repeated fields, maps and oneofs. Strings mix arbitrary text with the
names of a known world, so that many requests get past validation into the handlers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from openshell_server.api import methods
from openshell_server.api import openshell_pb2 as api

__all__ = ["RPC_INPUTS", "calls", "message_of", "request_for"]

# rpc name -> request message class, for every RPC of the service.
RPC_INPUTS: dict[str, type[Message]] = {m.name: getattr(api, m.input_type.name) for m in methods().values()}

_D = FieldDescriptor
_I32, _I64 = (-(2**31), 2**31 - 1), (-(2**63), 2**63 - 1)
_INT_RANGES = {
    _D.TYPE_INT32: _I32, _D.TYPE_SINT32: _I32, _D.TYPE_SFIXED32: _I32,
    _D.TYPE_INT64: _I64, _D.TYPE_SINT64: _I64, _D.TYPE_SFIXED64: _I64,
    _D.TYPE_UINT32: (0, 2**32 - 1), _D.TYPE_FIXED32: (0, 2**32 - 1),
    _D.TYPE_UINT64: (0, 2**64 - 1), _D.TYPE_FIXED64: (0, 2**64 - 1),
}  # fmt: skip
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=70)  # protobuf strings must be UTF-8
_NASTY = [
    "", " ", "default", "gamma", "Box", "b\u043ex", "\uff42\uff4f\uff58", "bo\u200dx", "box\n", "../box", "a" * 64,
    "x' OR '1'='1", "%", "*", "\x00", "k=v", "a=b,c=d", "=", ",", "-1", "9" * 30, "true", "null", "{}", "\u202e",
]  # fmt: skip


def _ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    edges = [v for v in (0, 1, -1, lo, hi, 2**31 - 1, 2**31, 2**53 + 1) if lo <= v <= hi]
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


def _scalar(fd: FieldDescriptor, words: Sequence[str]) -> st.SearchStrategy[Any]:
    if fd.type == _D.TYPE_STRING:
        return st.one_of(st.sampled_from([*words, *_NASTY]), _TEXT)
    if fd.type == _D.TYPE_BYTES:
        return st.binary(max_size=64)
    if fd.type == _D.TYPE_BOOL:
        return st.booleans()
    if fd.type in _INT_RANGES:
        return _ints(*_INT_RANGES[fd.type])
    if fd.type == _D.TYPE_DOUBLE:
        return st.floats(allow_nan=True, allow_infinity=True)
    if fd.type == _D.TYPE_FLOAT:
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    if fd.type == _D.TYPE_ENUM:
        known = [v.number for v in fd.enum_type.values]
        return st.one_of(st.sampled_from(known), _ints(-(2**31), 2**31 - 1))  # proto3 enums are open
    raise TypeError(f"no strategy for field type {fd.type} of {fd.full_name}")


@st.composite
def message_of(draw: st.DrawFn, desc: Descriptor, words: Sequence[str] = (), depth: int = 0) -> Message:
    """An arbitrary message of type ``desc`` (nested messages down to depth 3, then left empty)."""
    msg = _class_of(desc)()
    for fd in desc.fields:
        if not draw(st.booleans()):
            continue  # unset, or set to the default: both must be handled
        is_msg = fd.type == _D.TYPE_MESSAGE
        if is_msg and fd.message_type.GetOptions().map_entry:
            key_fd, val_fd = fd.message_type.fields_by_name["key"], fd.message_type.fields_by_name["value"]
            target = getattr(msg, fd.name)
            for key in draw(st.lists(_scalar(key_fd, words), max_size=4)):
                if val_fd.type == _D.TYPE_MESSAGE:
                    target[key].CopyFrom(draw(_nested(val_fd, words, depth)))
                else:
                    target[key] = draw(_scalar(val_fd, words))
        elif _repeated(fd):
            target = getattr(msg, fd.name)
            if is_msg:
                for item in draw(st.lists(_nested(fd, words, depth), max_size=3)):
                    target.add().CopyFrom(item)
            else:
                target.extend(draw(st.lists(_scalar(fd, words), max_size=5)))
        elif is_msg:
            getattr(msg, fd.name).CopyFrom(draw(_nested(fd, words, depth)))  # also selects a oneof member
        else:
            setattr(msg, fd.name, draw(_scalar(fd, words)))  # a later oneof member replaces an earlier one
    return msg


def _repeated(fd: FieldDescriptor) -> bool:
    flag = getattr(fd, "is_repeated", None)  # protobuf >= 6; older versions only have .label
    return bool(flag) if flag is not None else fd.label == _D.LABEL_REPEATED


def _nested(fd: FieldDescriptor, words: Sequence[str], depth: int) -> st.SearchStrategy[Message]:
    if depth >= 3:
        return st.just(_class_of(fd.message_type)())
    return message_of(fd.message_type, words, depth + 1)


def _class_of(desc: Descriptor) -> type[Message]:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(desc)


def request_for(rpc: str, words: Sequence[str] = ()) -> st.SearchStrategy[Message]:
    return message_of(RPC_INPUTS[rpc].DESCRIPTOR, tuple(words))


def calls(words: Sequence[str] = (), rpcs: Sequence[str] | None = None) -> st.SearchStrategy[tuple[str, Message]]:
    """``(rpc name, request)`` for any RPC of the service (or of ``rpcs``)."""
    names = sorted(rpcs or RPC_INPUTS)
    return st.sampled_from(names).flatmap(lambda rpc: request_for(rpc, words).map(lambda req: (rpc, req)))
