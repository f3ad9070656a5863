"""v1model `truncate(length)` in the interpreter, with bmv2's semantics.

v1model.p4 documents it as cutting the packet to at most `length` bytes "when it is sent out".
bmv2 (include/bm/bm_sim/packet.h) implements `Packet::truncate` as `truncated_length =
min(length, truncated_length)` and applies it only in `get_data_size()`, so:

* the smallest length asked for wins, whatever the order of the calls;
* it cuts the *deparsed* packet (headers included), after the compute-checksum control;
* a `_with_payload` checksum (BufBuilder::operator() in src/bm_sim/calculations.cpp copies
  `pkt.get_data_size()` bytes of what is still unparsed) sees at most `length` payload bytes.
"""

from __future__ import annotations

from k8s_offload.p4 import build_p4info, parse_program_text
from k8s_offload.target.hashes import csum16
from k8s_offload.target.interpreter import Interpreter

PROGRAM = """#include <core.p4>
#include <v1model.p4>
header h_t { bit<8> len1; bit<8> len2; bit<16> sum; }
struct hs_t { h_t h; }
struct m_t { bit<8> x; }
parser P(packet_in pk, out hs_t hdr, inout m_t m, inout standard_metadata_t sm) {
    state start { pk.extract(hdr.h); transition accept; }
}
control V(inout hs_t hdr, inout m_t m) { apply { } }
control I(inout hs_t hdr, inout m_t m, inout standard_metadata_t sm) {
    apply {
        sm.egress_spec = 1;
        if (hdr.h.len1 != 0) {
            truncate((bit<32>)hdr.h.len1);
        }
        if (hdr.h.len2 != 0) {
            truncate((bit<32>)hdr.h.len2);
        }
    }
}
control E(inout hs_t hdr, inout m_t m, inout standard_metadata_t sm) { apply { } }
control C(inout hs_t hdr, inout m_t m) {
    apply {
        update_checksum_with_payload(true, { hdr.h.len1, hdr.h.len2 }, hdr.h.sum, HashAlgorithm.csum16);
    }
}
control D(packet_out pk, in hs_t hdr) { apply { pk.emit(hdr.h); } }
V1Switch(P(), V(), I(), E(), C(), D()) main;
"""


def _sim() -> Interpreter:
    program = parse_program_text(PROGRAM, "truncate.p4", None)
    return Interpreter(program, build_p4info(program))


def _frame(len1: int, len2: int, payload: bytes) -> bytes:
    return bytes([len1, len2, 0, 0]) + payload


def test_no_truncate_keeps_everything() -> None:
    payload = bytes(range(1, 21))
    out = _sim().process(0, _frame(0, 0, payload))
    assert out.data[4:] == payload
    assert int.from_bytes(out.data[2:4], "big") == csum16(bytes([0, 0]) + payload)


def test_smallest_length_wins_and_cuts_the_deparsed_packet() -> None:
    payload = bytes(range(1, 21))
    sim = _sim()
    for len1, len2 in ((10, 7), (7, 10)):
        out = sim.process(0, _frame(len1, len2, payload))
        assert out.egress_port == 1
        assert out.data[:2] == bytes([len1, len2])
        assert len(out.data) == 7  # 4 header bytes + 3 of payload


def test_longer_than_the_packet_changes_nothing() -> None:
    payload = b"abcdef"
    out = _sim().process(0, _frame(200, 0, payload))
    assert out.data[4:] == payload


def test_payload_checksum_sees_at_most_length_payload_bytes() -> None:
    """bmv2's quirk: the payload buffer holds only unparsed bytes when the checksum runs, and its
    size is already min(unparsed, truncation length): here 10 of the 20 payload bytes count."""
    payload = bytes(range(1, 21))
    out = _sim().process(0, _frame(10, 0, payload))
    assert int.from_bytes(out.data[2:4], "big") == csum16(bytes([10, 0]) + payload[:10])
    assert len(out.data) == 10
