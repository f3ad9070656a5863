"""Primary election over a real StreamChannel (P4Runtime spec §7 "Client Arbitration and Controller
Replication", §"Client Arbitration Update", §"Write RPC" check 2)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from k8s_offload.p4rt.arbitration import set_election_id
from k8s_offload.p4rt.client import NotPrimaryError, P4RuntimeClient
from k8s_offload.p4rt.errors import P4RuntimeRpcError
from k8s_offload.p4rt.grpc_api import P4RuntimeStub
from k8s_offload.p4rt.proto import p4runtime as p4r
from k8s_offload.target.server import EmbeddedTarget
from tests.embedded_fixtures import connect, until


def _raw_write(address: str, election_id: int, p4info: Any) -> grpc.StatusCode:
    """A Write sent without the client's own primary check, to see what the server says."""
    member = p4r.Update(type=p4r.Update.INSERT)
    m = member.entity.action_profile_member
    m.action_profile_id = p4info.action_profiles[0].preamble.id
    m.member_id = 7
    action = next(a for a in p4info.actions if a.preamble.alias == "set_backend4")
    m.action.action_id = action.preamble.id
    m.action.params.add(param_id=1, value=b"\x0a\x00\x00\x07")
    m.action.params.add(param_id=2, value=b"\x1f\x90")
    req = p4r.WriteRequest(device_id=1)
    set_election_id(req.election_id, election_id)
    req.updates.append(member)
    with grpc.insecure_channel(address) as ch:
        try:
            P4RuntimeStub(ch).Write(req, timeout=5)
        except grpc.RpcError as err:
            return err.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_lower_election_id_cannot_write(switch: EmbeddedTarget, p4info: Any) -> None:
    """The highest election_id is primary; a Write carrying a backup's id gets PERMISSION_DENIED."""
    high = connect(switch.address, election_id=10, p4info=p4info)
    low = connect(switch.address, election_id=5)
    try:
        assert high.is_primary and not low.is_primary
        assert low.primary_election_id == 10  # backups learn the primary's id (ALREADY_EXISTS notice)
        assert _raw_write(switch.address, 5, p4info) == grpc.StatusCode.PERMISSION_DENIED
        assert _raw_write(switch.address, 10, p4info) == grpc.StatusCode.OK
        with pytest.raises(NotPrimaryError):
            low.write([])
    finally:
        high.close()
        low.close()


def test_primary_change_and_demotion_stop_writes(switch: EmbeddedTarget, p4info: Any) -> None:
    """A higher id takes over at once; the deposed client refuses to write before the server would.
    When the primary leaves, nobody is primary (NOT_FOUND) until an id >= the highest arrives."""
    first = connect(switch.address, election_id=1, p4info=p4info)
    try:
        assert first.is_primary
        second = connect(switch.address, election_id=2)
        assert second.is_primary
        assert until(lambda: not first.is_primary)
        writes_before = switch.servicer.write_count
        with pytest.raises(NotPrimaryError):
            first.write([p4r.Update()])
        assert switch.servicer.write_count == writes_before  # nothing reached the server
        second.close()
        assert until(lambda: first.primary_election_id == 2 and not first.is_primary)
        assert _raw_write(switch.address, 2, p4info) == grpc.StatusCode.PERMISSION_DENIED  # no primary now
        first.send_arbitration(election_id=3)
        assert until(lambda: first.is_primary)
        first.write([])
    finally:
        first.close()


def test_duplicate_election_id_and_unknown_device_end_the_stream(switch: EmbeddedTarget) -> None:
    """Spec §7.3 rules 1.1 and 1.2: NOT_FOUND for an unknown device, INVALID_ARGUMENT for an id in use."""
    holder = connect(switch.address, election_id=4)
    try:
        dup = P4RuntimeClient(switch.address, election_id=4, timeout=3)
        with pytest.raises(P4RuntimeRpcError) as exc:
            dup.connect()
        assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
        dup.close()
        stranger = P4RuntimeClient(switch.address, device_id=99, timeout=3)
        with pytest.raises(P4RuntimeRpcError) as exc:
            stranger.connect()
        assert exc.value.code == grpc.StatusCode.NOT_FOUND
        stranger.close()
        assert holder.is_primary
    finally:
        holder.close()


def test_capabilities_and_pipeline_round_trip(switch: EmbeddedTarget, p4info: Any) -> None:
    """GetForwardingPipelineConfig leaves `config` unset before any Set, then returns what was set
    (spec §"GetForwardingPipelineConfig RPC": read-write symmetry, cookie included)."""
    client = connect(switch.address)
    try:
        assert client.capabilities().startswith("1.")
        assert client.get_pipeline() is None
        client.set_pipeline(p4info, b"cfg", cookie=42)
        got = client.get_pipeline()
        assert got is not None and got.cookie.cookie == 42 and got.p4_device_config == b"cfg"
        assert got.p4info == p4info
    finally:
        client.close()
