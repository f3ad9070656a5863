"""PacketOut/PacketIn over the StreamChannel through the interpreter (spec §18.1 "Packet I/O")."""

from __future__ import annotations

import queue
import time
from typing import Any

from k8s_offload.p4rt.proto import code_pb2
from k8s_offload.target.server import EmbeddedTarget
from tests.embedded_fixtures import connect

FRAME = bytes.fromhex("02000000000202000000000188b5") + b"payload"  # local experimental ethertype


def _meta(p4info: Any, header: str, name: str) -> int:
    cpm = next(c for c in p4info.controller_packet_metadata if c.preamble.name == header)
    return int(next(m.id for m in cpm.metadata if m.name == name))


def test_packet_out_leaves_the_named_port_and_cpu_port_gives_packet_in(
    switch: EmbeddedTarget, p4info: Any
) -> None:
    client = connect(switch.address, p4info=p4info)
    wire: queue.Queue[tuple[int, bytes]] = queue.Queue()
    switch.device().port_sinks.append(lambda port, data: wire.put((port, data)))
    try:
        egress, pad = _meta(p4info, "packet_out", "egress_port"), _meta(p4info, "packet_out", "_pad")
        submit = _meta(p4info, "packet_out", "submit_to_ingress")
        client.packet_out(FRAME, [(egress, 7), (submit, 0), (pad, 0)])
        assert wire.get(timeout=5) == (7, FRAME)  # the packet_out header is stripped

        # To the CPU port: back to us as PacketIn.
        client.packet_out(FRAME, [(egress, 510), (submit, 0), (pad, 0)])
        pin = client.packet_ins.get(timeout=5)
        assert pin.payload == FRAME
        ingress = _meta(p4info, "packet_in", "ingress_port")
        values = {m.metadata_id: int.from_bytes(m.value, "big") for m in pin.metadata}
        assert values[ingress] == 510

        client.packet_out(FRAME, [(egress, 7)])  # metadata missing: dropped, reported on the stream
        err = client.stream_errors.get(timeout=5)
        assert err.canonical_code == code_pb2.INVALID_ARGUMENT and err.packet_out.packet_out.payload == FRAME
        assert wire.empty()
    finally:
        client.close()


def test_packet_out_submitted_to_ingress_is_a_frame_from_the_cpu_port(
    switch: EmbeddedTarget, p4info: Any
) -> None:
    """submit_to_ingress: the frame goes through the pipeline as if received on the CPU port, which
    port_class does not know, so it is dropped and counted as DROP_UNKNOWN_PORT (index 1): what the
    loader's pipeline probe reads back (docs/runtime.md, "Bringing up a target")."""
    client = connect(switch.address, p4info=p4info)
    wire: queue.Queue[tuple[int, bytes]] = queue.Queue()
    switch.device().port_sinks.append(lambda port, data: wire.put((port, data)))
    counter = next(c.preamble.id for c in p4info.counters if c.preamble.alias == "drop_reasons")
    try:
        names = ("egress_port", "submit_to_ingress", "_pad")
        egress, submit, pad = (_meta(p4info, "packet_out", n) for n in names)
        client.packet_out(FRAME, [(egress, 7), (submit, 1), (pad, 0)])
        state = switch.device().pipeline.state  # type: ignore[union-attr]
        deadline = time.monotonic() + 5
        while state.counters[counter][0][1] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert state.counters[counter][0][1] == 1
        assert state.counters[counter][1][1] == 2 + len(FRAME)  # bytes as received: packet_out header too
        assert wire.empty()  # not sent out of port 7
    finally:
        client.close()
