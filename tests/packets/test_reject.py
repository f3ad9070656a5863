"""A Service port without endpoints, at packet level: kube-proxy REJECTs new connections to it (ICMP
destination unreachable / port unreachable, so clients see "connection refused" at once; upstream
e2e "should be rejected when no endpoints exist"), while a Local traffic policy with endpoints only
on other nodes DROPs ("has no local endpoints"); pkg/proxy/iptables/proxier.go.

The reply is checked byte for byte against one built by scapy from the RFCs: RFC 792 (IPv4: type 3
code 3, the invoking IP header and the first 8 bytes of its data), RFC 4443 section 3.1 (IPv6: type
1 code 4; we quote the IPv6 header and 8 bytes of L4, see p4src/README.md) and the checksum rules of
RFC 792 and RFC 4443 section 2.3 (pseudo-header), which scapy recomputes on a re-parsed copy.
RFC 1122 3.2.2 and RFC 4443 2.4 (e) forbid answering ICMP errors, non-initial fragments and
link-layer or IP broadcast/multicast: those stay dropped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, IPv6
from scapy.layers.l2 import Ether
from scapy.layers.sctp import SCTP, SCTPChunkInit
from scapy.packet import Packet, Raw

from k8s_offload.cli.main import main
from k8s_offload.compiler.bundle.model import Exact
from k8s_offload.compiler.bundle.p4rt import table_entry_message
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.driver import compile_sources
from k8s_offload.p4rt.proto import p4runtime
from k8s_offload.target.install import interpreter_with
from k8s_offload.target.interpreter import Interpreter, PacketResult

CASE = Path(__file__).resolve().parents[1] / "compiler" / "golden" / "reject-no-endpoints"
POD_PORT = 10
UPLINK = 3
POD_MAC = "02:00:00:00:00:0a"
GW_MAC = "02:00:00:00:00:01"
CLIENT4 = "10.244.1.10"
CLIENT6 = "fd00:244:1::10"
EMPTY4 = "10.96.0.80"
EMPTY6 = "fd00:96::80"
T0 = 5_000 * 1_000_000
DROP_NO_ENDPOINT = 3
DROP_NO_LOCAL_ENDPOINT = 9


@pytest.fixture(scope="module")
def compiled() -> tuple[Interpreter, Schema]:
    result = compile_sources([CASE / "manifests.yaml"], CASE / "node.yaml")
    return interpreter_with(result.schema, result.lowered.bundle), result.schema


@pytest.fixture
def sim(compiled: tuple[Interpreter, Schema]) -> Interpreter:
    return compiled[0]


def _from_pod(l3: Packet, dst_mac: str = GW_MAC) -> bytes:
    return bytes(Ether(src=POD_MAC, dst=dst_mac) / l3)


def _expected4(request: bytes) -> bytes:
    ip = Ether(request)[IP]
    quoted = bytes(ip)[: ip.ihl * 4 + 8]
    reply = (
        Ether(src=GW_MAC, dst=POD_MAC)
        / IP(src=ip.dst, dst=ip.src, ttl=64, id=0, flags=0, proto=1)
        / ICMP(type=3, code=3)
        / Raw(quoted)
    )
    return bytes(reply)


def _expected6(request: bytes) -> bytes:
    ip = Ether(request)[IPv6]
    quoted = bytes(ip)[: 40 + 8]
    reply = Ether(src=GW_MAC, dst=POD_MAC) / IPv6(src=ip.dst, dst=ip.src, hlim=64) / ICMPv6DestUnreach(code=4)
    return bytes(reply / Raw(quoted))


def _scapy_agrees(data: bytes) -> None:
    """scapy's own checksums on a re-parsed copy with every checksum field deleted."""
    pkt = Ether(data)
    if IP in pkt:
        del pkt[IP].chksum
    if ICMP in pkt:
        del pkt[ICMP].chksum
    if ICMPv6DestUnreach in pkt:
        del pkt[ICMPv6DestUnreach].cksum
    assert bytes(pkt.__class__(bytes(pkt))) == data


def _dropped(out: PacketResult, reason: int) -> None:
    assert out.egress_port is None, "answered or forwarded, expected a drop"
    assert ("K8sIngress.drop_reasons", reason) in out.trace.counters


REQUESTS4 = {
    "tcp-syn": IP(src=CLIENT4, dst=EMPTY4)
    / TCP(sport=40001, dport=80, flags="S", seq=0x01020304, options=[("MSS", 1460)]),
    "udp": IP(src=CLIENT4, dst=EMPTY4) / UDP(sport=40002, dport=53) / Raw(b"\x12\x34" + b"q" * 40),
    "sctp-init": IP(src=CLIENT4, dst=EMPTY4)
    / SCTP(sport=40003, dport=9000, tag=0)
    / SCTPChunkInit(init_tag=7),
}


@pytest.mark.parametrize("kind", sorted(REQUESTS4))
def test_ipv4_no_endpoints_gets_port_unreachable(sim: Interpreter, kind: str) -> None:
    """TCP SYN, UDP datagram and SCTP INIT alike: kube-proxy's REJECT is protocol-independent."""
    request = _from_pod(REQUESTS4[kind])
    out = sim.process(POD_PORT, request, T0)
    assert out.egress_port == POD_PORT, out.trace.drop_reason
    assert out.data == _expected4(request)
    _scapy_agrees(out.data)
    reply = Ether(out.data)
    assert (reply[ICMP].type, reply[ICMP].code) == (3, 3)
    assert ("K8sIngress.drop_reasons", DROP_NO_ENDPOINT) in out.trace.counters
    assert len(out.data) == 14 + 20 + 8 + 20 + 8


@pytest.mark.parametrize("udp", [False, True], ids=["tcp-syn", "udp"])
def test_ipv6_no_endpoints_gets_port_unreachable(sim: Interpreter, udp: bool) -> None:
    l4: Packet = UDP(sport=40004, dport=53) / Raw(b"x" * 30) if udp else TCP(sport=40004, dport=80, flags="S")
    request = _from_pod(IPv6(src=CLIENT6, dst=EMPTY6, hlim=63) / l4)
    out = sim.process(POD_PORT, request, T0)
    assert out.egress_port == POD_PORT, out.trace.drop_reason
    assert out.data == _expected6(request)
    _scapy_agrees(out.data)
    reply = Ether(out.data)
    assert (reply[ICMPv6DestUnreach].type, reply[ICMPv6DestUnreach].code) == (1, 4)


def test_the_reject_commits_nothing(sim: Interpreter) -> None:
    """A rejected SYN leaves no flow-cache state: its retransmission is rejected again."""
    request = _from_pod(REQUESTS4["tcp-syn"])
    first = sim.process(POD_PORT, request, T0)
    again = sim.process(POD_PORT, request, T0 + 1_000_000)
    assert first.data == again.data == _expected4(request)


def test_internal_traffic_policy_local_without_local_endpoint_drops(sim: Interpreter) -> None:
    out = sim.process(POD_PORT, _from_pod(IP(src=CLIENT4, dst="10.96.0.82") / TCP(dport=80, flags="S")), T0)
    _dropped(out, DROP_NO_LOCAL_ENDPOINT)


def test_external_traffic_policy_local_without_local_endpoint_drops(sim: Interpreter) -> None:
    frame = bytes(
        Ether(src="02:bb:00:00:00:01", dst=GW_MAC)
        / IP(src="198.51.100.7", dst="192.168.10.11")
        / TCP(sport=40005, dport=30090, flags="S")
    )
    _dropped(sim.process(UPLINK, frame, T0), DROP_NO_LOCAL_ENDPOINT)


def test_link_layer_broadcast_and_multicast_sources_are_not_answered(sim: Interpreter) -> None:
    syn = IP(src=CLIENT4, dst=EMPTY4) / TCP(sport=40006, dport=80, flags="S")
    _dropped(sim.process(POD_PORT, _from_pod(syn, dst_mac="ff:ff:ff:ff:ff:ff"), T0), DROP_NO_ENDPOINT)
    _dropped(sim.process(POD_PORT, _from_pod(syn, dst_mac="01:00:5e:00:00:01"), T0), DROP_NO_ENDPOINT)
    for src in ("0.0.0.0", "224.0.0.9", "255.255.255.255", "127.0.0.1"):
        bad = IP(src=src, dst=EMPTY4) / TCP(sport=40006, dport=80, flags="S")
        _dropped(sim.process(POD_PORT, _from_pod(bad), T0), DROP_NO_ENDPOINT)
    bad6 = IPv6(src="::", dst=EMPTY6) / TCP(sport=40006, dport=80, flags="S")
    _dropped(sim.process(POD_PORT, _from_pod(bad6), T0), DROP_NO_ENDPOINT)


def _install_reject(compiled: tuple[Interpreter, Schema], proto: int, dport: int) -> Interpreter:
    """A hand-made frontend the compiler never writes (no port): only to reach RejectReply's guards."""
    sim, schema = compiled
    key = {"dst_addr": Exact((0xFFFF << 32) | 0x0A600050), "l4_proto": Exact(proto), "dport": Exact(dport)}
    entry = schema.entry("svc_options", {**key, "fe_internal": Exact(0)}, "reject_no_endpoint")
    update = p4runtime.Update(type=p4runtime.Update.INSERT)
    update.entity.table_entry.CopyFrom(table_entry_message(schema, entry))
    sim.state.apply(update)
    return sim


def test_an_icmp_error_is_never_answered(compiled: tuple[Interpreter, Schema]) -> None:
    """Even with a frontend catching ICMP, an ICMP error (here a port unreachable we sent) is dropped."""
    sim = _install_reject(compiled, 1, 0)
    request = _from_pod(REQUESTS4["tcp-syn"])
    icmp_error = Ether(_expected4(request))[IP]
    icmp_error.src, icmp_error.dst = CLIENT4, EMPTY4
    del icmp_error.chksum
    _dropped(sim.process(POD_PORT, _from_pod(icmp_error), T0), DROP_NO_ENDPOINT)


def test_fragments_are_never_answered(compiled: tuple[Interpreter, Schema]) -> None:
    """Fragments carry no parsed L4 header (dport 0): a first and a non-initial one, both dropped."""
    sim = _install_reject(compiled, 6, 0)
    syn = IP(src=CLIENT4, dst=EMPTY4, flags="MF") / TCP(sport=40007, dport=80, flags="S") / Raw(b"z" * 16)
    later = IP(src=CLIENT4, dst=EMPTY4, frag=3, proto=6) / Raw(b"z" * 16)
    _dropped(sim.process(POD_PORT, _from_pod(syn), T0), DROP_NO_ENDPOINT)
    _dropped(sim.process(POD_PORT, _from_pod(later), T0), DROP_NO_ENDPOINT)


@pytest.mark.parametrize(
    ("target", "port", "protocol", "expected"),
    [
        (
            "svc:default/empty",
            "80",
            "TCP",
            "REJECTED: request rejected on node-a: ICMP port unreachable from 10.96.0.80",
        ),
        ("svc:default/empty", "9000", "SCTP", "REJECTED: request rejected on node-a: ICMP port unreachable"),
        ("[fd00:96::80]:53", None, "UDP", "REJECTED: request rejected on node-a: ICMPv6 port unreachable"),
        ("svc:default/remote-internal", "80", "TCP", "DENIED: request dropped on node-a: no local endpoint"),
    ],
)
def test_trace_reports_the_reject(
    target: str, port: str | None, protocol: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    probe = ["--from", "default/client", "--to", target, "--protocol", protocol]
    probe += ["--port", port] if port else []
    main(["trace", str(CASE / "manifests.yaml"), "--node", str(CASE / "node.yaml"), *probe])
    text = capsys.readouterr().out
    assert expected in text.splitlines()[0]
    if "REJECTED" in expected:
        assert "svc_options:reject_no_endpoint -> REJECTED: ICMP" in text
        main(
            [
                "trace",
                str(CASE / "manifests.yaml"),
                "--node",
                str(CASE / "node.yaml"),
                *probe,
                "--format",
                "json",
            ]
        )
        verdict = json.loads(capsys.readouterr().out)[0]
        assert (verdict["allowed"], verdict["rejected"]) == (False, True)
