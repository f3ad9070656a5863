"""Big P4Runtime messages assembled from the serialized bytes of their parts.

A 100k-update WriteRequest or a 1000-entity ReadResponse built as Python messages costs a copy
of every part into the new message and then its serialization; both sides of a sync pay that
per entity. The protobuf wire format lets a message be written as the concatenation of its
fields, each a tag, a length and the serialized submessage ("Encoding": length-delimited records;
a repeated field is its records one after another), so the parts are serialized once, by upb,
and only framed here. `tests/p4rt/test_wire.py` checks every function against protobuf's own
serialization of the same message.
"""

from __future__ import annotations

from collections.abc import Iterable

from k8s_offload.p4rt.proto import p4runtime as p4r

__all__ = ["entity_field", "read_response", "update", "write_request"]

_LEN = 2  # wire type of a length-delimited field
_VARINT = 0

_SMALL = [bytes((n,)) for n in range(0x80)]


def varint(n: int) -> bytes:
    """Base-128 varint of a non-negative int."""
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _tag(field_number: int, wire_type: int) -> bytes:
    return varint(field_number << 3 | wire_type)


def _field_number(message: type, name: str) -> int:
    number: int = message.DESCRIPTOR.fields_by_name[name].number  # type: ignore[attr-defined]
    return number


_UPDATE_TYPE = _tag(_field_number(p4r.Update, "type"), _VARINT)
_UPDATE_ENTITY = _tag(_field_number(p4r.Update, "entity"), _LEN)
_REQUEST_UPDATES = _tag(_field_number(p4r.WriteRequest, "updates"), _LEN)
_RESPONSE_ENTITIES = _tag(_field_number(p4r.ReadResponse, "entities"), _LEN)
_ENTITY_FIELDS = {f.name: _tag(f.number, _LEN) for f in p4r.Entity.DESCRIPTOR.fields}


_UPDATE_HEADS = {t: _UPDATE_TYPE + varint(t) + _UPDATE_ENTITY for t in p4r.Update.Type.values()}


def update(update_type: int, entity: bytes) -> bytes:
    """A serialized Update of `update_type` carrying the serialized Entity `entity`."""
    head = _UPDATE_HEADS.get(update_type) or _UPDATE_TYPE + varint(update_type) + _UPDATE_ENTITY
    n = len(entity)
    return head + (_SMALL[n] if n < 0x80 else varint(n)) + entity


def write_request(header: bytes, updates: Iterable[bytes]) -> bytes:
    """A serialized WriteRequest: `header` (the request without updates, serialized) with the
    serialized Updates `updates`, in order."""
    return header + b"".join(_REQUEST_UPDATES + varint(len(u)) + u for u in updates)


def entity_field(name: str, message: bytes) -> bytes:
    """A serialized Entity whose oneof field `name` (`table_entry`, ...) holds `message`."""
    return _ENTITY_FIELDS[name] + varint(len(message)) + message


def read_response(entities: Iterable[bytes]) -> bytes:
    """A serialized ReadResponse holding the serialized Entities `entities`, in order."""
    return b"".join(_RESPONSE_ENTITIES + varint(len(e)) + e for e in entities)
