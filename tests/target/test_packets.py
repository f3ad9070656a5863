"""Packets through our real program (p4src/k8s_dp.p4) with hand-written entries.

Expected values come from reading the P4 source and the protocols: port numbers and MACs from
the entries below, checksums recomputed by scapy from the output headers, the selector's choice
from an independent bitwise CRC-16/ARC over the fields the selector hashes.
"""

from __future__ import annotations

import ipaddress

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw

from k8s_offload.p4 import ast, build_p4info, load_program
from k8s_offload.p4rt.proto import code_pb2, p4runtime
from k8s_offload.target.errors import P4RuntimeError
from k8s_offload.target.interpreter import Interpreter, PacketResult

from .installer import Installer

GW_MAC, GW4, GW6 = "02:00:00:00:00:01", "10.0.0.1", "fd00::1"
PODS = {1: "11", 2: "12", 3: "13", 4: "14"}  # port -> last octet / group of the pod's addresses
PROXY_PORT, UPLINK_PORT, UNKNOWN_PORT, CPU_PORT = 5, 6, 9, 510
VIP4, VIP6 = "10.96.0.10", "fd00:96::10"
T0 = 10_000_000_000  # microseconds; any time works, the flow cache compares differences


def mac(port: int) -> str:
    return f"02:00:00:00:00:{PODS[port]}"


def ip4(port: int) -> str:
    return f"10.0.0.{PODS[port]}"


def ip6(port: int) -> str:
    return f"fd00::{PODS[port]}"


def mapped(addr: str) -> int:
    """IPv4 as the tables see it: ::ffff:a.b.c.d."""
    return 0xFFFF << 32 | int(ipaddress.IPv4Address(addr))


def v6(addr: str) -> int:
    return int(ipaddress.IPv6Address(addr))


def macint(m: str) -> int:
    return int(m.replace(":", ""), 16)


@pytest.fixture(scope="module")
def program() -> ast.Program:
    return load_program()


@pytest.fixture
def sim(program: ast.Program) -> Interpreter:
    s = Interpreter(program, build_p4info(program))
    w = Installer(s)
    for port in PODS:
        w.insert("port_class", {"meta.ingress_port": port}, "set_port_kind", kind=1)
        w.insert("neigh_steer", {"meta.neigh_target": mapped(ip4(port))}, "steer_to_port", port=port)
        w.insert("neigh_steer", {"meta.neigh_target": v6(ip6(port))}, "steer_to_port", port=port)
        for addr in (mapped(ip4(port)), v6(ip6(port))):
            w.insert(
                "fwd", {"meta.dst_addr": (addr, 128)}, "to_pod", port=port, pod_mac=macint(mac(port)),
                gateway_mac=macint(GW_MAC),
            )  # fmt: skip
    w.insert("port_class", {"meta.ingress_port": PROXY_PORT}, "set_port_kind", kind=4)
    w.insert("port_class", {"meta.ingress_port": UPLINK_PORT}, "set_port_kind", kind=3)
    w.insert("neigh_steer", {"meta.neigh_target": mapped(GW4)}, "steer_to_port", port=PROXY_PORT)
    w.insert("neigh_steer", {"meta.neigh_target": v6(GW6)}, "steer_to_port", port=PROXY_PORT)
    w.insert("fwd", {"meta.dst_addr": (mapped("192.168.0.0"), 112)}, "to_port", port=CPU_PORT)
    # Services: TCP VIP4:80 -> 3 backends on :8080; UDP VIP4:53 -> one backend :5353; TCP VIP6:80.
    # Members carry the backend's address and port; svc_frontend is keyed by the frontend itself.
    for mid, port in ((1, 2), (2, 3), (3, 4)):
        w.member("svc_selector", mid, "set_backend4", addr=int(ipaddress.IPv4Address(ip4(port))), port=8080)
    w.member("svc_selector", 4, "set_backend4", addr=int(ipaddress.IPv4Address(ip4(2))), port=5353)
    for mid, port in ((5, 2), (6, 3)):
        w.member("svc_selector", mid, "set_backend6", addr=v6(ip6(port)), port=8080)
    w.group("svc_selector", 100, [1, 2, 3])
    w.group("svc_selector", 200, [4])
    w.group("svc_selector", 300, [5, 6])
    for vip, proto, dport, group in (
        (mapped(VIP4), 6, 80, 100),
        (v6(VIP6), 6, 80, 300),
        (mapped(VIP4), 17, 53, 200),
    ):
        key = {"meta.dst_addr": vip, "meta.l4_proto": proto, "meta.dport": dport, "meta.fe_internal": 0}
        w.insert_group_entry("svc_frontend", {**key, "meta.fe_bucket": 0}, group)
    return s


def send(sim: Interpreter, port: int, pkt: Packet, t: int = T0) -> PacketResult:
    return sim.process(port, bytes(pkt), t)


def crc16_arc(data: bytes) -> int:
    """Bitwise CRC-16/ARC, written independently of k8s_offload.target.hashes."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def selector_index(src: int, sport: int, proto: int, n: int) -> int:
    """svc_selector hashes {meta.src_addr (128), meta.sport (16), meta.l4_proto (8)} with crc16."""
    data = src.to_bytes(16, "big") + sport.to_bytes(2, "big") + bytes([proto])
    return (crc16_arc(data) & 0xFFFF) % n


def assert_checksums_valid(frame: bytes) -> Packet:
    """Rebuild the output with scapy computing every checksum; they must equal the ones we sent."""
    pkt = Ether(frame)
    fresh = pkt.copy()
    for layer in (IP, TCP, UDP):
        if layer in fresh:
            if layer is IP:
                del fresh[IP].chksum
            elif not (layer is UDP and pkt[UDP].chksum == 0):
                del fresh[layer].chksum
    rebuilt = Ether(bytes(fresh))
    if IP in pkt:
        assert pkt[IP].chksum == rebuilt[IP].chksum
    for layer in (TCP, UDP):
        if layer in pkt:
            assert pkt[layer].chksum == rebuilt[layer].chksum, layer.__name__
    return pkt


def tcp4(src_port: int, dst: str, sport: int, dport: int, flags: str = "S") -> Packet:
    return (
        Ether(src=mac(src_port), dst=GW_MAC)
        / IP(src=ip4(src_port), dst=dst, id=7)
        / TCP(sport=sport, dport=dport, flags=flags, seq=1000)
        / Raw(b"hello")
    )


# ---- neighbour steering --------------------------------------------------------------------


def test_arp_for_gateway_goes_to_proxy(sim: Interpreter) -> None:
    pkt = Ether(src=mac(1), dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=mac(1), psrc=ip4(1), pdst=GW4)
    out = send(sim, 1, pkt)
    assert out.egress_port == PROXY_PORT
    assert out.data == bytes(pkt)  # steering does not touch the frame
    assert out.trace.parser_states == ["start", "parse_ethernet", "parse_arp"]
    event = out.trace.table("neigh_steer")
    assert event is not None and event.hit and event.action == "steer_to_port" and event.args == (PROXY_PORT,)


def test_arp_for_pod_goes_to_pod(sim: Interpreter) -> None:
    pkt = Ether(src=mac(1), dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, psrc=ip4(1), pdst=ip4(2))
    assert send(sim, 1, pkt).egress_port == 2


def test_ipv6_ns_for_gateway_and_pod(sim: Interpreter) -> None:
    for target, port in ((GW6, PROXY_PORT), (ip6(3), 3)):
        pkt = (
            Ether(src=mac(1), dst="33:33:ff:00:00:01")
            / IPv6(src=ip6(1), dst="ff02::1:ff00:1")
            / ICMPv6ND_NS(tgt=target)
        )
        out = send(sim, 1, pkt)
        assert out.egress_port == port
        assert out.trace.parser_states[-1] == "parse_ndp"


def test_unknown_port_dropped_and_counted(sim: Interpreter) -> None:
    out = send(sim, UNKNOWN_PORT, tcp4(1, ip4(2), 1234, 80))
    assert out.dropped and out.trace.drop_reason.startswith("ingress")
    drop_reasons = sim.state.counters[sim.state.index.id_of("drop_reasons")]
    assert drop_reasons[0][1] == 1  # DROP_UNKNOWN_PORT
    assert drop_reasons[1][1] == len(bytes(tcp4(1, ip4(2), 1234, 80)))


# ---- forwarding ------------------------------------------------------------------------------


def test_forward_rewrites_macs(sim: Interpreter) -> None:
    pkt = tcp4(1, ip4(2), 40000, 8080)
    out = send(sim, 1, pkt)
    assert out.egress_port == 2
    got = Ether(out.data)
    assert (got.src, got.dst) == (GW_MAC, mac(2))
    assert bytes(got[IP]) == bytes(pkt[IP])  # no NAT: L3 and up unchanged


def test_ipv6_forward(sim: Interpreter) -> None:
    pkt = Ether(src=mac(1), dst=GW_MAC) / IPv6(src=ip6(1), dst=ip6(4)) / UDP(sport=1, dport=2) / Raw(b"x")
    out = send(sim, 1, pkt)
    assert out.egress_port == 4
    assert Ether(out.data).dst == mac(4)


def test_to_cpu_gets_packet_in_header(sim: Interpreter) -> None:
    pkt = Ether(src=mac(3), dst=GW_MAC) / IP(src=ip4(3), dst="192.168.0.9") / ICMP()
    out = send(sim, 3, pkt)
    assert out.egress_port == CPU_PORT
    assert out.data[:2] == (3 << 7).to_bytes(2, "big")  # packet_in: ingress_port (9 bits), _pad (7)
    assert out.data[2:] == bytes(pkt)


def test_packet_out_goes_to_named_port(sim: Interpreter) -> None:
    frame = bytes(Ether(src=GW_MAC, dst=mac(4)) / ARP(op=2, psrc=GW4, pdst=ip4(4)))
    out = sim.process(CPU_PORT, (4 << 7).to_bytes(2, "big") + frame, T0)
    assert out.egress_port == 4
    assert out.data == frame  # packet_out header removed, nothing else touched
    assert out.trace.parser_states[:2] == ["start", "parse_packet_out"]


# ---- service load balancing -------------------------------------------------------------------


def test_tcp_syn_to_vip_dnat_reply_snat_and_stickiness(sim: Interpreter) -> None:
    client_port = 43210
    syn = tcp4(1, VIP4, client_port, 80)
    chosen = selector_index(mapped(ip4(1)), client_port, 6, 3)  # members 1,2,3 in handle order
    backend_port = (2, 3, 4)[chosen]
    out = send(sim, 1, syn)
    assert out.egress_port == backend_port
    got = assert_checksums_valid(out.data)
    assert (got[IP].src, got[IP].dst, got[TCP].sport, got[TCP].dport) == (
        ip4(1),
        ip4(backend_port),
        client_port,
        8080,
    )
    assert (got.src, got.dst) == (GW_MAC, mac(backend_port))
    assert bytes(got[TCP].payload) == b"hello"

    reply = (
        Ether(src=mac(backend_port), dst=GW_MAC)
        / IP(src=ip4(backend_port), dst=ip4(1))
        / TCP(sport=8080, dport=client_port, flags="SA", seq=5, ack=1001)
    )
    back = send(sim, backend_port, reply, T0 + 1000)
    assert back.egress_port == 1
    got = assert_checksums_valid(back.data)
    assert (got[IP].src, got[TCP].sport, got[IP].dst, got[TCP].dport) == (VIP4, 80, ip4(1), client_port)

    # Shrink the group to the members not chosen: the flow keeps its backend (flow cache).
    others = [m for i, m in enumerate((1, 2, 3)) if i != chosen]
    Installer(sim).group("svc_selector", 100, others, kind="MODIFY")
    ack = send(sim, 1, tcp4(1, VIP4, client_port, 80, flags="A"), T0 + 2000)
    assert Ether(ack.data)[IP].dst == ip4(backend_port)
    assert ack.egress_port == backend_port
    assert ack.trace.table("svc_frontend") is None  # established flows skip backend selection

    # Delete the chosen backend's member too (its endpoint is gone from the EndpointSlice): the
    # flow cache holds the backend's address and the frontend's, so the flow and its replies are
    # still translated, as conntrack keeps a TCP flow's NAT under kube-proxy.
    member = p4runtime.ActionProfileMember(action_profile_id=sim.state.index.id_of("svc_selector"))
    member.member_id = (1, 2, 3)[chosen]
    sim.state.apply(
        p4runtime.Update(type=p4runtime.Update.DELETE, entity=p4runtime.Entity(action_profile_member=member))
    )
    ack = send(sim, 1, tcp4(1, VIP4, client_port, 80, flags="A"), T0 + 3000)
    assert ack.egress_port == backend_port and Ether(ack.data)[IP].dst == ip4(backend_port)
    back = send(sim, backend_port, reply, T0 + 4000)
    got = assert_checksums_valid(back.data)
    assert (got[IP].src, got[TCP].sport, got[IP].dst, got[TCP].dport) == (VIP4, 80, ip4(1), client_port)


def test_udp_zero_checksum_stays_zero(sim: Interpreter) -> None:
    pkt = (
        Ether(src=mac(3), dst=GW_MAC)
        / IP(src=ip4(3), dst=VIP4)
        / UDP(sport=5000, dport=53, chksum=0)
        / Raw(b"q")
    )
    out = send(sim, 3, pkt)
    assert out.egress_port == 2
    got = assert_checksums_valid(out.data)
    assert got[UDP].chksum == 0
    assert (got[IP].dst, got[UDP].dport) == (ip4(2), 5353)


def test_udp_nonzero_checksum_recomputed(sim: Interpreter) -> None:
    pkt = Ether(src=mac(3), dst=GW_MAC) / IP(src=ip4(3), dst=VIP4) / UDP(sport=5001, dport=53) / Raw(b"query")
    got = assert_checksums_valid(send(sim, 3, pkt).data)
    assert got[UDP].chksum != 0 and got[UDP].dport == 5353


def test_ipv6_tcp_to_vip(sim: Interpreter) -> None:
    sport = 50000
    pkt = Ether(src=mac(1), dst=GW_MAC) / IPv6(src=ip6(1), dst=VIP6) / TCP(sport=sport, dport=80) / Raw(b"v6")
    chosen = selector_index(v6(ip6(1)), sport, 6, 2)
    out = send(sim, 1, pkt)
    port = (2, 3)[chosen]
    assert out.egress_port == port
    got = Ether(out.data)
    assert (got[IPv6].dst, got[TCP].dport) == (ip6(port), 8080)
    fresh = got.copy()
    del fresh[TCP].chksum
    assert Ether(bytes(fresh))[TCP].chksum == got[TCP].chksum


# ---- NetworkPolicy -------------------------------------------------------------------------


def isolate_pod1_egress(w: Installer) -> None:
    """Pod 1 may talk only to pod 2, TCP 8000-8100 (rule bit 0)."""
    w.insert(
        "eg_pod",
        {"meta.src_addr": mapped(ip4(1))},
        "eg_isolate",
        set_id=1,
        any_peer_rules=0,
        any_port_rules=0,
    )
    w.insert("eg_peer_class", {"meta.dst_addr": (mapped(ip4(2)), 128)}, "eg_set_peer_class", peer_class=7)
    w.insert("eg_peer_rules", {"meta.eg_set": 1, "meta.eg_peer_class": 7}, "eg_set_peer_rules", rules=1)
    ports = {"meta.eg_set": 1, "meta.l4_proto": 6, "meta.dport": (8000, 8100)}
    w.insert("eg_port_rules", ports, "eg_set_port_rules", 1, rules=1)


def test_egress_isolation(sim: Interpreter) -> None:
    isolate_pod1_egress(Installer(sim))
    assert send(sim, 1, tcp4(1, ip4(2), 40001, 8080)).egress_port == 2
    denied_port = send(sim, 1, tcp4(1, ip4(2), 40002, 22))
    denied_peer = send(sim, 1, tcp4(1, ip4(3), 40003, 8080))
    assert denied_port.dropped and denied_peer.dropped
    counts = sim.state.counters[sim.state.index.id_of("drop_reasons")][0]
    assert counts[4] == 2  # DROP_EGRESS_POLICY
    assert send(sim, 2, tcp4(2, ip4(3), 40004, 22)).egress_port == 3  # pod 2 is not isolated


def test_reply_passes_although_other_side_isolated(sim: Interpreter) -> None:
    w = Installer(sim)
    isolate_pod1_egress(w)
    # Pod 1 is also ingress-isolated with no rule: no new flow may reach it.
    w.insert(
        "in_pod",
        {"meta.dst_addr": mapped(ip4(1))},
        "in_isolate",
        set_id=3,
        any_peer_rules=0,
        any_port_rules=0,
    )
    assert send(sim, 2, tcp4(2, ip4(1), 40010, 8080)).dropped
    assert send(sim, 1, tcp4(1, ip4(2), 40011, 8080)).egress_port == 2
    reply = (
        Ether(src=mac(2), dst=GW_MAC) / IP(src=ip4(2), dst=ip4(1)) / TCP(sport=8080, dport=40011, flags="SA")
    )
    out = send(sim, 2, reply, T0 + 10)
    assert out.egress_port == 1
    assert out.trace.table("in_pod") is None  # replies skip policy


def test_ingress_isolation(sim: Interpreter) -> None:
    w = Installer(sim)
    w.insert(
        "in_pod",
        {"meta.dst_addr": mapped(ip4(2))},
        "in_isolate",
        set_id=2,
        any_peer_rules=0,
        any_port_rules=0,
    )
    w.insert("in_peer_class", {"meta.src_addr": (mapped(ip4(1)), 128)}, "in_set_peer_class", peer_class=9)
    w.insert("in_peer_rules", {"meta.in_set": 2, "meta.in_peer_class": 9}, "in_set_peer_rules", rules=2)
    ports = {"meta.in_set": 2, "meta.l4_proto": 6, "meta.dport": (8080, 8080)}
    w.insert("in_port_rules", ports, "in_set_port_rules", 1, rules=2)
    assert send(sim, 1, tcp4(1, ip4(2), 40020, 8080)).egress_port == 2
    assert send(sim, 1, tcp4(1, ip4(2), 40021, 8081)).dropped
    assert send(sim, 4, tcp4(4, ip4(2), 40022, 8080)).dropped
    counts = sim.state.counters[sim.state.index.id_of("drop_reasons")][0]
    assert counts[5] == 2  # DROP_INGRESS_POLICY


def test_truncated_packet_reaches_ingress_with_parser_error(sim: Interpreter) -> None:
    """bmv2 does not drop on PacketTooShort: ingress runs with what was extracted and
    standard_metadata.parser_error set; our program then drops and counts it (DROP_PARSER_ERROR)."""
    frame = bytes(tcp4(1, ip4(2), 1, 2))[: 14 + 20 + 10]  # TCP header cut short
    out = sim.process(1, frame, T0)
    assert out.trace.parser_error == "PacketTooShort"
    assert out.trace.parser_states[-1] == "parse_tcp"
    assert out.trace.table("port_class") is not None  # ingress ran
    assert out.dropped
    assert out.trace.counters == [("K8sIngress.drop_reasons", 11)]  # DROP_PARSER_ERROR


@pytest.mark.parametrize(
    "frame",
    [
        bytes(Ether(dst="02:00:00:00:00:02") / Dot1Q(vlan=1) / IP(dst=ip4(2)) / UDP()),  # 802.1Q
        bytes.fromhex("02000000000202000000000188cc") + bytes(30),  # LLDP
        bytes.fromhex("0200000000020200000000010800") + bytes(10),  # IPv4 header cut short
        bytes.fromhex("0200000000"),  # not even an Ethernet header
    ],
    ids=["vlan", "lldp", "short-ipv4", "short-ethernet"],
)
def test_unparsed_frames_are_dropped_and_counted(sim: Interpreter, frame: bytes) -> None:
    """Neither ARP nor parsed IP: dropped (not sent out of port 0 as before) and counted."""
    out = sim.process(1, frame, T0)
    assert out.dropped
    reason = 11 if out.trace.parser_error else 10  # DROP_PARSER_ERROR, DROP_UNPARSED
    assert out.trace.counters == [("K8sIngress.drop_reasons", reason)]


def test_empty_group_is_a_hit_that_runs_no_action(sim: Interpreter) -> None:
    """bmv2 (MatchTableIndirectWS::lookup): an entry whose group was emptied is a hit with no
    action, not a miss; lb stays false, so the new flow is forwarded un-NATed towards the VIP."""
    Installer(sim).group("svc_selector", 200, [], kind="MODIFY")  # the UDP frontend's only group
    out = send(sim, 3, Ether(src=mac(3), dst=GW_MAC) / IP(src=ip4(3), dst=VIP4) / UDP(sport=5001, dport=53))
    event = out.trace.table("svc_frontend")
    assert event is not None and event.hit and event.action == "" and event.group_id == 200
    # No DNAT: forwarded towards the VIP, which no fwd entry routes here (DROP_NO_ROUTE).
    assert out.dropped and out.trace.counters == [("K8sIngress.drop_reasons", 7)]


def test_entries_may_not_point_at_an_empty_group(sim: Interpreter) -> None:
    """The embedded target refuses what bmv2 refuses (EMPTY_GRP): an INSERT or MODIFY of a table
    entry to an empty group; emptying a group that entries already use stays allowed, as on bmv2."""
    w = Installer(sim)
    w.group("svc_selector", 400, [])
    frontend = {"meta.dst_addr": mapped(VIP4), "meta.l4_proto": 6, "meta.dport": 80, "meta.fe_internal": 0}
    with pytest.raises(P4RuntimeError) as err:
        w.insert_group_entry("svc_frontend", {**frontend, "meta.dport": 81, "meta.fe_bucket": 0}, 400)
    assert err.value.code == code_pb2.FAILED_PRECONDITION
    te = w.entry("svc_frontend", {**frontend, "meta.fe_bucket": 0})
    te.action.action_profile_group_id = 400
    with pytest.raises(P4RuntimeError):
        modify = p4runtime.Update(type=p4runtime.Update.MODIFY, entity=p4runtime.Entity(table_entry=te))
        sim.state.apply(modify)
    w.group("svc_selector", 100, [], kind="MODIFY")  # allowed: VIP4:80's entry now holds an empty group


def test_selector_table_has_no_default_action(sim: Interpreter) -> None:
    """A miss in svc_frontend runs nothing (bmv2 holds no default for an indirect table), its
    default entry reads back without an action, and it cannot be set (PI: INVALID_ARGUMENT)."""
    tid = sim.state.index.id_of("svc_frontend")
    filt = p4runtime.Entity(table_entry=p4runtime.TableEntry(table_id=tid, is_default_action=True))
    (got,) = sim.state.read(filt)
    assert not got.table_entry.HasField("action")
    with pytest.raises(P4RuntimeError) as err:
        sim.state.apply(p4runtime.Update(type=p4runtime.Update.MODIFY, entity=filt))
    assert err.value.code == code_pb2.INVALID_ARGUMENT
