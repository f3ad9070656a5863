"""The embedded target against the P4Runtime specification, case by case over gRPC.

Every case cites the section of the P4Runtime Specification (v1.x, docs/v1/P4Runtime-Spec.adoc in
p4lang/p4runtime) that prescribes the answer. The device runs the real program's P4Info;
`neigh_steer` (exact bit<128> key neigh_target; actions steer_to_port(bit<9> port) and
neigh_miss()) is the table most cases use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from k8s_offload.p4rt.client import P4RuntimeClient
from k8s_offload.p4rt.errors import DETAILS_KEY
from k8s_offload.p4rt.grpc_api import P4RuntimeStub
from k8s_offload.p4rt.proto import code_pb2, status_pb2
from k8s_offload.p4rt.proto import p4runtime as p4r
from k8s_offload.target.server import API_VERSION, EmbeddedTarget
from tests.embedded_fixtures import connect

TABLE = "neigh_steer"
OK = grpc.StatusCode.OK


@dataclass
class Ids:
    table: int
    steer: int
    miss: int


@pytest.fixture(scope="module")
def target(p4info: Any) -> Iterator[tuple[EmbeddedTarget, P4RuntimeClient, Ids]]:
    """A device with three neigh_steer entries: target 1 steer_to_port cookie 7 metadata "a",
    target 2 steer_to_port, target 3 neigh_miss cookie 7."""
    with EmbeddedTarget() as sw:
        client = connect(sw.address, election_id=5, p4info=p4info)
        table = next(t for t in p4info.tables if t.preamble.alias == TABLE)
        actions = {a.preamble.alias: a.preamble.id for a in p4info.actions}
        ids = Ids(table.preamble.id, actions["steer_to_port"], actions["neigh_miss"])
        rows = [(1, ids.steer, 7, b"a"), (2, ids.steer, 0, b""), (3, ids.miss, 7, b"")]
        updates = []
        for target, action, cookie, meta in rows:
            te = _entry(ids.table, target)
            _action(te, action, bytes([80 + target]) if action == ids.steer else None)
            te.controller_metadata, te.metadata = cookie, meta
            updates.append(p4r.Update(type=p4r.Update.INSERT, entity=p4r.Entity(table_entry=te)))
        client.write(updates)
        try:
            yield sw, client, ids
        finally:
            client.close()


def _entry(table_id: int, key: int | bytes | None = None) -> Any:
    te = p4r.TableEntry(table_id=table_id)
    if key is not None:
        value = key if isinstance(key, bytes) else key.to_bytes(17, "big").lstrip(b"\0") or b"\0"
        te.match.add(field_id=1).exact.value = value
    return te


def _action(te: Any, action_id: int, port: bytes | None) -> None:
    te.action.action.action_id = action_id
    if port is not None:
        te.action.action.params.add(param_id=1, value=port)


def _read(
    stub: P4RuntimeStub, *entities: Any, device_id: int = 1
) -> tuple[grpc.StatusCode, list[Any], list[int]]:
    """(status, entities read, per-request codes from the details or [])."""
    req = p4r.ReadRequest(device_id=device_id)
    req.entities.extend(entities)
    got: list[Any] = []
    call = stub.Read(req, timeout=10)
    try:
        for resp in call:
            got.extend(resp.entities)
        return OK, got, []
    except grpc.RpcError as err:
        return err.code(), got, _detail_codes(err)


def _detail_codes(err: Any) -> list[int]:
    for key, value in err.trailing_metadata() or ():
        if key == DETAILS_KEY:
            status = status_pb2.Status.FromString(value)
            return [p4r.Error.FromString(d.value).canonical_code for d in status.details]
    return []


def _write_codes(client: P4RuntimeClient, te: Any, kind: int = p4r.Update.INSERT) -> list[int]:
    req = p4r.WriteRequest(device_id=1, election_id=p4r.Uint128(low=5))
    req.updates.add(type=kind, entity=p4r.Entity(table_entry=te))
    try:
        client.stub.Write(req, timeout=10)
    except grpc.RpcError as err:
        return _detail_codes(err)
    return [code_pb2.OK]


def _keys(entities: list[Any]) -> list[int]:
    return sorted(int.from_bytes(e.table_entry.match[0].exact.value, "big") for e in entities)


# ---- Read: every entity kind, every filter (section, request, expected status, expected result) ----

Case = tuple[str, Callable[[Ids], list[Any]], grpc.StatusCode, Callable[[list[Any]], bool]]

EMPTY: Callable[[list[Any]], bool] = lambda got: got == []  # noqa: E731


def _ent(**kw: Any) -> Any:
    return p4r.Entity(**kw)


def _pre(**kw: Any) -> Any:
    return _ent(packet_replication_engine_entry=p4r.PacketReplicationEngineEntry(**kw))


def _filtered(ids: Ids, **fields: Any) -> list[Any]:
    te = _entry(ids.table)
    action_id = fields.pop("action_id", None)
    if action_id is not None:
        te.action.action.action_id = action_id
    for name, value in fields.items():
        if name in ("counter_data", "meter_config", "meter_counter_data"):
            getattr(te, name).SetInParent()
        else:
            setattr(te, name, value)
    return [_ent(table_entry=te)]


READ_CASES: list[Case] = [
    (
        '"Read RPC / Wildcard Reads": the entity oneof must be set',
        lambda i: [p4r.Entity()],
        grpc.StatusCode.INVALID_ARGUMENT,
        EMPTY,
    ),
    (
        '"MeterEntry": meter_id 0 reads every meter (the program has none)',
        lambda i: [_ent(meter_entry=p4r.MeterEntry())],
        OK,
        EMPTY,
    ),
    (
        '"MeterEntry": an unknown meter_id is NOT_FOUND',
        lambda i: [_ent(meter_entry=p4r.MeterEntry(meter_id=0x15000001))],
        grpc.StatusCode.NOT_FOUND,
        EMPTY,
    ),
    (
        '"DirectMeterEntry": every direct meter (none)',
        lambda i: [_ent(direct_meter_entry=p4r.DirectMeterEntry())],
        OK,
        EMPTY,
    ),
    (
        '"DirectCounterEntry": every direct counter (none)',
        lambda i: [_ent(direct_counter_entry=p4r.DirectCounterEntry())],
        OK,
        EMPTY,
    ),
    (
        '"DirectCounterEntry": a table without a direct counter is NOT_FOUND',
        lambda i: [_ent(direct_counter_entry=p4r.DirectCounterEntry(table_entry=_entry(i.table)))],
        grpc.StatusCode.NOT_FOUND,
        EMPTY,
    ),
    (
        '"MulticastGroupEntry": multicast_group_id 0 reads every group (none)',
        lambda i: [_pre(multicast_group_entry=p4r.MulticastGroupEntry())],
        OK,
        EMPTY,
    ),
    (
        '"MulticastGroupEntry": an unknown group is NOT_FOUND',
        lambda i: [_pre(multicast_group_entry=p4r.MulticastGroupEntry(multicast_group_id=9))],
        grpc.StatusCode.NOT_FOUND,
        EMPTY,
    ),
    (
        '"CloneSessionEntry": session_id 0 reads every session (none)',
        lambda i: [_pre(clone_session_entry=p4r.CloneSessionEntry())],
        OK,
        EMPTY,
    ),
    (
        '"PacketReplicationEngineEntry": its type must be set',
        lambda i: [_pre()],
        grpc.StatusCode.INVALID_ARGUMENT,
        EMPTY,
    ),
    (
        '"ValueSetEntry": every value set (none)',
        lambda i: [_ent(value_set_entry=p4r.ValueSetEntry())],
        OK,
        EMPTY,
    ),
    ('"DigestEntry": every digest (none)', lambda i: [_ent(digest_entry=p4r.DigestEntry())], OK, EMPTY),
    ('"ExternEntry": every extern (none)', lambda i: [_ent(extern_entry=p4r.ExternEntry())], OK, EMPTY),
    (
        '"CounterEntry": counter_id 0 reads every cell of every counter',
        lambda i: [_ent(counter_entry=p4r.CounterEntry())],
        OK,
        lambda got: len(got) == 16,
    ),
    (
        '"CounterEntry": an unknown counter_id is NOT_FOUND',
        lambda i: [_ent(counter_entry=p4r.CounterEntry(counter_id=0x12000099))],
        grpc.StatusCode.NOT_FOUND,
        EMPTY,
    ),
    (
        '"TableEntry / Wildcard Reads": table_id 0 reads every table',
        lambda i: [_ent(table_entry=p4r.TableEntry())],
        OK,
        lambda got: _keys(got) == [1, 2, 3],
    ),
    (
        '"TableEntry / Wildcard Reads": table_id 0 allows no other filter',
        lambda i: [_ent(table_entry=p4r.TableEntry(priority=3))],
        grpc.StatusCode.INVALID_ARGUMENT,
        EMPTY,
    ),
    (
        '"TableEntry / Wildcard Reads": match reads exactly one entry',
        lambda i: [_ent(table_entry=_entry(i.table, 2))],
        OK,
        lambda got: _keys(got) == [2],
    ),
    (
        '"TableEntry / Wildcard Reads": match must be a valid key for the table',
        lambda i: [_ent(table_entry=_entry(i.table, 1 << 128))],
        grpc.StatusCode.OUT_OF_RANGE,
        EMPTY,
    ),
    (
        '"TableEntry / Wildcard Reads": action filters on a direct action id',
        lambda i: _filtered(i, action_id=i.miss),
        OK,
        lambda got: _keys(got) == [3],
    ),
    (
        '"TableEntry / Wildcard Reads": action filters on a direct action id (two entries)',
        lambda i: _filtered(i, action_id=i.steer),
        OK,
        lambda got: _keys(got) == [1, 2],
    ),
    (
        '"TableEntry / Wildcard Reads": controller_metadata filters',
        lambda i: _filtered(i, controller_metadata=7),
        OK,
        lambda got: _keys(got) == [1, 3],
    ),
    (
        '"TableEntry / Wildcard Reads": metadata filters',
        lambda i: _filtered(i, metadata=b"a"),
        OK,
        lambda got: _keys(got) == [1],
    ),
    (
        '"TableEntry / Wildcard Reads": priority filters (no entry of an exact table has one)',
        lambda i: _filtered(i, priority=5),
        OK,
        EMPTY,
    ),
    (
        '"TableEntry / Wildcard Reads": is_default_action reads only the default entry',
        lambda i: _filtered(i, is_default_action=True),
        OK,
        lambda got: len(got) == 1 and got[0].table_entry.is_default_action,
    ),
    (
        '"TableEntry / Direct Resources": counter_data asks for a direct counter the table lacks',
        lambda i: _filtered(i, counter_data=True),
        grpc.StatusCode.INVALID_ARGUMENT,
        EMPTY,
    ),
    (
        '"TableEntry / Direct Resources": meter_config asks for a direct meter the table lacks',
        lambda i: _filtered(i, meter_config=True),
        grpc.StatusCode.INVALID_ARGUMENT,
        EMPTY,
    ),
    (
        '"TableEntry / Direct Resources": meter_counter_data asks for a direct meter the table lacks',
        lambda i: _filtered(i, meter_counter_data=True),
        grpc.StatusCode.INVALID_ARGUMENT,
        EMPTY,
    ),
    (
        '"TableEntry": an unknown table_id is NOT_FOUND',
        lambda i: [_ent(table_entry=p4r.TableEntry(table_id=0x02000FFF))],
        grpc.StatusCode.NOT_FOUND,
        EMPTY,
    ),
    (
        '"ActionProfileMember": action_profile_id 0 reads every profile (no members yet)',
        lambda i: [_ent(action_profile_member=p4r.ActionProfileMember())],
        OK,
        EMPTY,
    ),
]


@pytest.mark.parametrize(("section", "request_", "code", "check"), READ_CASES, ids=[c[0] for c in READ_CASES])
def test_read(target: Any, section: str, request_: Any, code: grpc.StatusCode, check: Any) -> None:
    _, client, ids = target
    status, got, details = _read(client.stub, *request_(ids))
    assert status == code, section
    assert check(got), (section, got)
    if code != OK:
        assert details == [code.value[0]], section  # the one request's p4.v1.Error


def test_read_batch_reports_each_request(target: Any) -> None:
    """ "Read RPC / Batch Processing": valid requests are answered, the invalid ones reported one
    p4.v1.Error per request in request order under UNKNOWN."""
    _, client, ids = target
    requests = [
        _ent(table_entry=_entry(ids.table, 1)),
        p4r.Entity(),
        _ent(meter_entry=p4r.MeterEntry(meter_id=1)),
    ]
    status, got, details = _read(client.stub, *requests)
    assert status == grpc.StatusCode.UNKNOWN
    assert _keys(got) == [1]
    assert details == [code_pb2.OK, code_pb2.INVALID_ARGUMENT, code_pb2.NOT_FOUND]


def test_read_unknown_device(target: Any) -> None:
    """ "Read RPC": a device_id the server does not know is NOT_FOUND."""
    _, client, _ = target
    assert (
        _read(client.stub, p4r.Entity(table_entry=p4r.TableEntry()), device_id=9)[0]
        == grpc.StatusCode.NOT_FOUND
    )


# ---- Write: bytestrings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "port", "code"),
    [
        (
            '"Bytestrings": a value wider than bit<128> is OUT_OF_RANGE',
            b"\x01" + bytes(16),
            b"\x50",
            code_pb2.OUT_OF_RANGE,
        ),
        ('"Bytestrings": an empty key is OUT_OF_RANGE', b"", b"\x50", code_pb2.OUT_OF_RANGE),
        (
            '"Bytestrings": a param wider than bit<9> is OUT_OF_RANGE',
            b"\x10",
            b"\x02\x00",
            code_pb2.OUT_OF_RANGE,
        ),
        ('"Bytestrings": an empty param is OUT_OF_RANGE', b"\x11", b"", code_pb2.OUT_OF_RANGE),
        (
            '"Bytestrings": zero padding beyond the width is accepted',
            bytes(17) + b"\x12",
            b"\x00\x00\x00\x50",
            code_pb2.OK,
        ),
    ],
)
def test_write_bytestrings(target: Any, section: str, key: bytes, port: bytes, code: int) -> None:
    _, client, ids = target
    te = _entry(ids.table, key)
    _action(te, ids.steer, port)
    assert _write_codes(client, te) == [code], section
    if code == code_pb2.OK:  # read back canonical (Read-Write Symmetry)
        [got] = _read(client.stub, _ent(table_entry=_entry(ids.table, 0x12)))[1]
        assert got.table_entry.match[0].exact.value == b"\x12"
        assert got.table_entry.action.action.params[0].value == b"\x50"
        assert _write_codes(client, _entry(ids.table, 0x12), p4r.Update.DELETE) == [code_pb2.OK]


# ---- Capabilities, listening ------------------------------------------------------------------------


def test_capabilities(target: Any) -> None:
    """ "Capabilities RPC": the full semantic version of the API implemented; NOT_FOUND for an
    unknown device_id."""
    import importlib.metadata

    _, client, _ = target
    assert client.capabilities() == API_VERSION == importlib.metadata.version("p4runtime")
    with pytest.raises(grpc.RpcError) as err:
        client.stub.Capabilities(p4r.CapabilitiesRequest(device_id=9), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_taken_port_is_refused(target: Any) -> None:
    """Two servers on one port would each get some of the clients (SO_REUSEPORT): refuse instead."""
    sw, _, _ = target
    with pytest.raises(OSError, match="cannot listen"):
        EmbeddedTarget(sw.address).start()
