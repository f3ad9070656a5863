"""Messages assembled from serialized parts (`p4rt.wire`) parse as the messages protobuf builds."""

from __future__ import annotations

from typing import Any

from k8s_offload.p4rt import wire
from k8s_offload.p4rt.proto import p4runtime as p4r


def _entities() -> list[Any]:
    te = p4r.TableEntry(table_id=33554433, priority=7, metadata=b"m" * 300)
    te.match.add(field_id=1).exact.value = b"\x0a\x00\x00\x01"
    te.action.action.action_id = 16777217
    te.action.action.params.add(param_id=1, value=b"\x01" * 20000)  # a length of three varint bytes
    member = p4r.ActionProfileMember(action_profile_id=285212673, member_id=9)
    member.action.action_id = 16777218
    group = p4r.ActionProfileGroup(action_profile_id=285212673, group_id=3, max_size=4)
    group.members.add(member_id=9, weight=2)
    return [
        p4r.Entity(table_entry=te),
        p4r.Entity(action_profile_member=member),
        p4r.Entity(action_profile_group=group),
        p4r.Entity(table_entry=p4r.TableEntry(table_id=1, is_default_action=True)),
    ]


def test_varint_matches_the_encoding_spec() -> None:
    """protobuf.dev "Encoding", Base 128 Varints: 1 -> 01, 150 -> 96 01, 300 -> ac 02."""
    assert wire.varint(0) == b"\x00"
    assert wire.varint(1) == b"\x01"
    assert wire.varint(150) == b"\x96\x01"
    assert wire.varint(300) == b"\xac\x02"
    assert wire.varint(2**64 - 1) == b"\xff" * 9 + b"\x01"


def test_write_request_parses_as_the_built_message() -> None:
    types = [p4r.Update.INSERT, p4r.Update.MODIFY, p4r.Update.DELETE, p4r.Update.INSERT]
    built = p4r.WriteRequest(device_id=5, role="r", atomicity=p4r.WriteRequest.DATAPLANE_ATOMIC)
    built.election_id.high, built.election_id.low = 1, 2
    header = built.SerializeToString()
    for t, e in zip(types, _entities(), strict=True):
        built.updates.add(type=t, entity=e)
    data = wire.write_request(
        header, [wire.update(t, e.SerializeToString()) for t, e in zip(types, _entities(), strict=True)]
    )
    assert p4r.WriteRequest.FromString(data) == built
    one = wire.update(p4r.Update.DELETE, _entities()[1].SerializeToString())
    assert p4r.Update.FromString(one) == p4r.Update(type=p4r.Update.DELETE, entity=_entities()[1])
    assert p4r.WriteRequest.FromString(wire.write_request(b"", [])) == p4r.WriteRequest()


def test_read_response_parses_as_the_built_message() -> None:
    entities = _entities()
    encoded = [
        wire.entity_field(e.WhichOneof("entity"), getattr(e, e.WhichOneof("entity")).SerializeToString())
        for e in entities
    ]
    assert [p4r.Entity.FromString(b) for b in encoded] == entities
    assert p4r.ReadResponse.FromString(wire.read_response(encoded)) == p4r.ReadResponse(entities=entities)
    assert wire.read_response([]) == b""
