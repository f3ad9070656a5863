"""Every golden Service case at packet level: the compiled bundle, installed in the interpreter
as P4Runtime updates, DNATs a new flow to each VIP and port to a usable backend (with checksums
scapy accepts) and returns the reply from the VIP and service port."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.layers.sctp import SCTP
from scapy.packet import Packet

from k8s_offload.compiler.frontend.model import Protocol
from k8s_offload.compiler.lower.services import usable_backends
from k8s_offload.target.install import interpreter_with
from tests.compiler.golden.test_golden import compile_case

GOLDEN = Path(__file__).resolve().parents[1] / "compiler" / "golden"
CASES = sorted(
    p
    for p in GOLDEN.iterdir()
    if p.is_dir() and (p / "expected.txt").exists() and "svc_frontend " in (p / "expected.txt").read_text()
)
"""Cases with a Service frontend (a `svc_frontend` entry in the expected bundle)."""
CLIENT4 = "198.51.100.7"
CLIENT6 = "2001:db8:100::7"
CLIENT_PORT = 40000
MAC_CLIENT = "02:aa:00:00:00:01"
MAC_GW = "02:00:00:00:00:01"


def _l4(protocol: Protocol, sport: int, dport: int) -> Packet:
    if protocol is Protocol.TCP:
        return TCP(sport=sport, dport=dport, flags="S", seq=1000)
    if protocol is Protocol.UDP:
        return UDP(sport=sport, dport=dport) / b"query"
    return SCTP(sport=sport, dport=dport, tag=7)


def _frame(src: str, dst: str, l4: Packet) -> bytes:
    ip = IP(src=src, dst=dst) if ipaddress.ip_address(src).version == 4 else IPv6(src=src, dst=dst)
    return bytes(Ether(src=MAC_CLIENT, dst=MAC_GW) / ip / l4)


def _checksums_ok(data: bytes) -> bool:
    """Rebuild with scapy (checksums recomputed) and compare with what the pipeline wrote."""
    pkt = Ether(data)
    rebuilt = pkt.copy()
    for layer in (IP, TCP, UDP, SCTP):
        if layer in rebuilt:
            if layer is UDP and rebuilt[UDP].chksum == 0 and IP in rebuilt:
                continue
            del rebuilt[layer].chksum
    return bytes(Ether(bytes(rebuilt))) == data


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_vip_dnat_and_reply(case: Path) -> None:
    result = compile_case(case)  # with the case's options: dpdk-* cases lower for the dpdk profile
    sim = interpreter_with(result.schema, result.lowered.bundle)
    uplink = result.ir.node.ports.uplink
    sets = {s.key: s for s in result.ir.backend_sets}
    checked = 0
    now = 1_000_000
    elsewhere = 0
    internal_local = {svc.key for svc in result.ir.services if svc.internal_local}
    for i, fe in enumerate(result.ir.frontends):
        bset = sets.get(fe.backend_set)
        if fe.external or fe.service in internal_local:
            elsewhere += 1
            continue  # masquerade and local-only selection: test_services_beyond_clusterip.py
        if (
            bset is None
            or not usable_backends(bset)
            or f"dport={fe.port} " not in (case / "expected.txt").read_text()
        ):
            continue
        usable = {(str(b.address), b.port) for b in usable_backends(bset)}
        if fe.protocol is Protocol.SCTP and any(p != fe.port for _, p in usable):
            continue  # left to the host (see p4src/README.md)
        client = CLIENT4 if fe.vip.version == 4 else CLIENT6
        sport = CLIENT_PORT + i
        out = sim.process(uplink, _frame(client, str(fe.vip), _l4(fe.protocol, sport, fe.port)), now)
        assert out.egress_port is not None, f"{fe}: dropped ({out.trace.drop_reason})"
        pkt = Ether(out.data)
        ip = pkt[IP] if IP in pkt else pkt[IPv6]
        l4 = ip.payload
        assert (ip.dst, l4.dport) in usable, f"{fe}: went to {ip.dst}:{l4.dport}, not a usable backend"
        assert ip.src == client and l4.sport == sport
        assert _checksums_ok(out.data), f"{fe}: bad checksum after DNAT"
        # The backend answers; the reply must leave from the VIP and service port.
        reply = _frame(ip.dst, client, _l4(fe.protocol, l4.dport, sport))
        back = sim.process(uplink, reply, now + 10)
        assert back.egress_port is not None, f"{fe}: reply dropped ({back.trace.drop_reason})"
        rpkt = Ether(back.data)
        rip = rpkt[IP] if IP in rpkt else rpkt[IPv6]
        assert (rip.src, rip.payload.sport) == (str(fe.vip), fe.port)
        assert (rip.dst, rip.payload.dport) == (client, sport)
        assert _checksums_ok(back.data), f"{fe}: bad checksum after reverse NAT"
        checked += 1
    assert checked > 0 or elsewhere > 0


def test_cases_are_selected() -> None:
    """The selection above is by text of the expected bundle: a renamed table must not empty it."""
    assert len(CASES) >= 20 and {"shop", "dpdk-shop", "affinity", "maglev-svc-3-endpoints"} <= {
        c.name for c in CASES
    }
