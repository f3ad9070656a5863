"""Frames for the differential test, generated from a compiled case (its IR): connections of every
local pod to every Service frontend and to pods, node ports and the outside in both directions,
ARP and NDP, frames from unknown ports, malformed and random frames. Deterministic for a seed.

Conversations answer what came out: the reply leaves the port the request left by, from the
address it arrived at, so NAT, reverse NAT and the flow cache are exercised as on a node.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Generator
from dataclasses import dataclass

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RS,
    IPv6,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.layers.sctp import SCTP
from scapy.packet import Packet, Raw

from k8s_offload.compiler.frontend.model import Protocol
from k8s_offload.compiler.frontend.tiers import TierRule
from k8s_offload.compiler.ir.model import ClusterIR
from tests.differential.harness import Outcome, Scenario, Send, Wait

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
EXTERNAL4 = ipaddress.ip_address("198.51.100.7")
EXTERNAL6 = ipaddress.ip_address("2001:db8:100::7")
EXTERNAL_MAC = "02:ee:00:00:00:01"


@dataclass(frozen=True)
class Endpoint:
    """Where a frame comes from: device port, MAC and address."""

    port: int
    mac: str
    ip: IPAddress


def l4(protocol: Protocol, sport: int, dport: int, flags: str = "S") -> Packet:
    if protocol is Protocol.TCP:
        return TCP(sport=sport, dport=dport, flags=flags, seq=1000, ack=0 if flags == "S" else 1) / Raw(b"hi")
    if protocol is Protocol.UDP:
        return UDP(sport=sport, dport=dport) / Raw(b"query")
    return SCTP(sport=sport, dport=dport, tag=7)


def frame(src_mac: str, dst_mac: str, src: IPAddress, dst: IPAddress, payload: Packet) -> bytes:
    ip: Packet = IP(src=str(src), dst=str(dst)) if src.version == 4 else IPv6(src=str(src), dst=str(dst))
    return bytes(Ether(src=src_mac, dst=dst_mac) / ip / payload)


def answer(data: bytes, flags: str = "SA") -> bytes:
    """The reply to a frame as its receiver would send it: addresses and ports swapped."""
    pkt = Ether(data)
    ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
    assert ip is not None
    if TCP in pkt:
        seg: Packet = TCP(
            sport=pkt[TCP].dport, dport=pkt[TCP].sport, flags=flags, seq=5000, ack=pkt[TCP].seq + 1
        )
    elif UDP in pkt:
        seg = UDP(sport=pkt[UDP].dport, dport=pkt[UDP].sport) / Raw(b"answer")
    elif SCTP in pkt:
        seg = SCTP(sport=pkt[SCTP].dport, dport=pkt[SCTP].sport, tag=9)
    else:
        seg = Raw(b"")
    src, dst = ipaddress.ip_address(ip.dst), ipaddress.ip_address(ip.src)
    return frame(pkt.dst, pkt.src, src, dst, seg)


def _is_icmp_error(data: bytes) -> bool:
    pkt = Ether(data)
    return (ICMP in pkt and pkt[ICMP].type == 3) or (IPv6 in pkt and pkt[IPv6].nh == 58 and UDP not in pkt)


def conversation(
    label: str,
    client: Endpoint,
    gateway_mac: str,
    dst: IPAddress,
    protocol: Protocol,
    sport: int,
    dport: int,
    *,
    close: bool = True,
) -> Generator[Send, Outcome | None, tuple[int, bytes] | None]:
    """Request, reply from wherever it went, then (TCP) the client's ACK, more data and, with
    `close`, a FIN from each side (each marks the flow-cache slot it hits as closing).
    Returns the server side's (port, reply frame), to send again later."""
    request = frame(client.mac, gateway_mac, client.ip, dst, l4(protocol, sport, dport))
    got = yield Send(client.port, request, f"{label}:request")
    if got is None or len(got.outputs) != 1 or _is_icmp_error(got.outputs[0][1]):
        return None
    (out_port, out_frame) = got.outputs[0]
    server = (out_port, answer(out_frame))
    back = yield Send(*server, f"{label}:reply")
    if protocol is not Protocol.TCP:
        return server
    ack = frame(client.mac, gateway_mac, client.ip, dst, l4(protocol, sport, dport, "A"))
    yield Send(client.port, ack, f"{label}:ack")
    if back is not None and back.outputs:
        yield Send(out_port, answer(out_frame, "PA"), f"{label}:data")
    if close:
        fin = frame(client.mac, gateway_mac, client.ip, dst, l4(protocol, sport, dport, "FA"))
        yield Send(client.port, fin, f"{label}:fin")
        yield Send(out_port, answer(out_frame, "FA"), f"{label}:fin")  # both slots closing
    return (out_port, answer(out_frame, "A"))


def pods_of(ir: ClusterIR) -> list[Endpoint]:
    out = []
    for pod in sorted(ir.pods, key=lambda p: p.key):
        if pod.local and pod.port is not None and pod.mac is not None:
            out += [Endpoint(pod.port, pod.mac, ip) for ip in pod.ips]
    return out


def _targets(ir: ClusterIR) -> list[tuple[str, IPAddress, Protocol, int]]:
    """Every frontend (VIP or node IP, protocol, port), then pods on their container ports."""
    out: list[tuple[str, IPAddress, Protocol, int]] = []
    for fe in sorted(ir.frontends, key=lambda f: (str(f.vip), f.port, f.protocol.value)):
        out.append((f"svc-{fe.kind.value.lower()}", fe.vip, fe.protocol, fe.port))
    for pod in sorted(ir.pods, key=lambda p: p.key):
        for ip in pod.ips:
            for cp in pod.container_ports[:2]:
                out.append(("pod", ip, cp.protocol, cp.port))
            if not pod.container_ports:
                out.append(("pod", ip, Protocol.TCP, 8080))
    return out


def services_and_pods(ir: ClusterIR, rng: random.Random, limit: int = 400) -> Scenario:
    """Local pods, the host and the outside to every target of their family, both directions."""
    node = ir.node
    gw = node.gateway.mac
    clients = pods_of(ir)
    clients += [Endpoint(node.ports.host, "02:00:00:00:00:fe", ip) for ip in node.node_ips[:2]]
    clients += [
        Endpoint(node.ports.uplink, EXTERNAL_MAC, EXTERNAL4),
        Endpoint(node.ports.uplink, EXTERNAL_MAC, EXTERNAL6),
    ]
    targets = [
        *_targets(ir),
        ("external", EXTERNAL4, Protocol.TCP, 443),
        ("external", EXTERNAL6, Protocol.UDP, 53),
    ]
    pairs = [(c, t) for c in clients for t in targets if c.ip.version == t[1].version and c.ip != t[1]]
    if len(pairs) > limit:
        pairs = rng.sample(pairs, limit)
    sport = 40000
    for client, (kind, dst, proto, dport) in pairs:
        sport += 1
        yield from conversation(f"{kind}", client, gw, dst, proto, sport, dport)
    # Stickiness and affinity: the same clients again on new ports, and again on the same port.
    for client, (kind, dst, proto, dport) in pairs[:40]:
        sport += 1
        yield from conversation(f"{kind}-again", client, gw, dst, proto, sport, dport)
        yield Send(
            client.port,
            frame(client.mac, gw, client.ip, dst, l4(proto, sport, dport)),
            f"{kind}-repeat:request",
        )


def _tier_ports(rule: TierRule) -> list[tuple[Protocol, int]]:
    """A rule's port edges and just past them (every protocol on two ports when it has none)."""
    if rule.ports is None:
        return [(Protocol.TCP, 80), (Protocol.UDP, 53), (Protocol.SCTP, 7000)]
    out: list[tuple[Protocol, int]] = []
    for p in rule.ports:
        if p.protocol is None:  # a named port: the pods' container ports are targets already
            continue
        out += [(p.protocol, n) for n in (p.low - 1, p.low, p.high, p.high + 1) if 1 <= n <= 65535]
    return out


def tiers(ir: ClusterIR, rng: random.Random, limit: int = 300) -> Scenario:
    """Frames for the tier stages: local pods and the outside to every pod, network and node peer
    of a cluster policy rule, on the rule's port edges (so the admin and baseline tables, the tier
    peer classes and port ranges are all looked up with and without a match)."""
    node = ir.node
    addresses: set[IPAddress] = {ip for pod in ir.pods for ip in pod.ips}
    ports: set[tuple[Protocol, int]] = set()
    for pol in ir.cluster_policies:
        for rule in (*pol.ingress, *pol.egress):
            ports.update(_tier_ports(rule))
            for peer in rule.peers:
                for net in peer.networks:
                    addresses.add(net.network_address + (1 if net.num_addresses > 1 else 0))
                    addresses.add(net.broadcast_address)
                if peer.nodes is not None:
                    addresses.update(a for n in ir.nodes for a in n.addresses)
    outside = [Endpoint(node.ports.uplink, EXTERNAL_MAC, ip) for ip in (EXTERNAL4, EXTERNAL6)]
    clients = [*pods_of(ir), *outside]
    targets = sorted(((ip, proto, port) for ip in addresses for proto, port in ports), key=str)
    pairs = [(c, t) for c in clients for t in targets if c.ip.version == t[0].version and c.ip != t[0]]
    if len(pairs) > limit:
        pairs = rng.sample(pairs, limit)
    sport = 45000
    for client, (dst, proto, dport) in pairs:
        sport += 1
        yield from conversation("tier", client, node.gateway.mac, dst, proto, sport, dport)


def neighbours(ir: ClusterIR) -> Scenario:
    """ARP requests and Neighbor Solicitations for the gateway, pods and strangers; other ND."""
    node = ir.node
    gw4, gw6, gw_mac = node.gateway.ipv4, node.gateway.ipv6, node.gateway.mac
    for client in pods_of(ir):
        if client.ip.version == 4:
            for target in (
                gw4,
                *[p.ip for p in pods_of(ir) if p.ip.version == 4][:3],
                ipaddress.ip_address("10.9.9.9"),
            ):
                arp = ARP(op=1, hwsrc=client.mac, psrc=str(client.ip), pdst=str(target))
                yield Send(
                    client.port, bytes(Ether(src=client.mac, dst="ff:ff:ff:ff:ff:ff") / arp), "arp:request"
                )
            reply = ARP(op=2, hwsrc=client.mac, psrc=str(client.ip), hwdst=gw_mac, pdst=str(gw4))
            yield Send(client.port, bytes(Ether(src=client.mac, dst=gw_mac) / reply), "arp:reply")
        else:
            for target in [
                t for t in (gw6, *[p.ip for p in pods_of(ir) if p.ip.version == 6][:2]) if t is not None
            ]:
                ns = IPv6(src=str(client.ip), dst="ff02::1:ff00:1") / ICMPv6ND_NS(tgt=str(target))
                yield Send(client.port, bytes(Ether(src=client.mac, dst="33:33:ff:00:00:01") / ns), "ndp:ns")
            rs = IPv6(src=str(client.ip), dst="ff02::2") / ICMPv6ND_RS()
            yield Send(client.port, bytes(Ether(src=client.mac, dst="33:33:00:00:00:02") / rs), "ndp:rs")
            na = IPv6(src=str(client.ip), dst="fe80::1") / ICMPv6ND_NA(tgt=str(client.ip))
            yield Send(client.port, bytes(Ether(src=client.mac, dst=gw_mac) / na), "ndp:na")
            echo = IPv6(src=str(client.ip), dst=str(EXTERNAL6)) / ICMPv6EchoRequest()
            yield Send(client.port, bytes(Ether(src=client.mac, dst=gw_mac) / echo), "icmp6:echo")


def malformed(ir: ClusterIR, unknown_ports: tuple[int, ...]) -> Scenario:
    """Unknown ports, other ethertypes, VLAN tags, truncations at every header, options,
    fragments, extension headers, mapped addresses, broadcast."""
    node = ir.node
    gw = node.gateway.mac
    clients = [*pods_of(ir), Endpoint(node.ports.uplink, EXTERNAL_MAC, EXTERNAL4)]
    c4 = next(c for c in clients if c.ip.version == 4)
    dst4 = next((fe.vip for fe in ir.frontends if fe.vip.version == 4), EXTERNAL4)
    good = frame(c4.mac, gw, c4.ip, dst4, l4(Protocol.TCP, 41000, 80))
    for port in unknown_ports:
        yield Send(port, good, "unknown-port")
    yield Send(
        c4.port,
        bytes(Ether(src=c4.mac, dst=gw) / Dot1Q(vlan=5) / IP(src=str(c4.ip), dst=str(dst4)) / UDP()),
        "malformed:vlan",
    )
    yield Send(c4.port, bytes(Ether(src=c4.mac, dst=gw, type=0x88CC) / Raw(bytes(40))), "malformed:lldp")
    yield Send(c4.port, bytes(Ether(src=c4.mac, dst=gw, type=0x8847) / Raw(bytes(40))), "malformed:mpls")
    for cut in range(14, len(good), 3):
        yield Send(c4.port, good[:cut], "malformed:truncated")
    opts = IP(src=str(c4.ip), dst=str(dst4), options=[IPOption_RR()]) / TCP(sport=41001, dport=80)
    yield Send(c4.port, bytes(Ether(src=c4.mac, dst=gw) / opts), "malformed:ipv4-options")
    frag = IP(src=str(c4.ip), dst=str(dst4), flags="MF") / UDP(sport=41002, dport=53) / Raw(bytes(30))
    yield Send(c4.port, bytes(Ether(src=c4.mac, dst=gw) / frag), "malformed:fragment")
    yield Send(
        c4.port,
        bytes(Ether(src=c4.mac, dst=gw) / IP(src=str(c4.ip), dst=str(dst4), proto=47) / Raw(bytes(20))),
        "malformed:gre",
    )
    yield Send(
        c4.port,
        bytes(
            Ether(src=c4.mac, dst="ff:ff:ff:ff:ff:ff")
            / IP(src=str(c4.ip), dst="255.255.255.255")
            / UDP(sport=68, dport=67)
        ),
        "malformed:broadcast",
    )
    icmp = IP(src=str(c4.ip), dst=str(dst4)) / ICMP(type=8)
    yield Send(c4.port, bytes(Ether(src=c4.mac, dst=gw) / icmp), "icmp:echo")
    c6 = next((c for c in clients if c.ip.version == 6), Endpoint(node.ports.uplink, EXTERNAL_MAC, EXTERNAL6))
    if c6 is not None:
        hbh = IPv6(src=str(c6.ip), dst=str(EXTERNAL6)) / IPv6ExtHdrHopByHop() / UDP(sport=41003, dport=53)
        yield Send(c6.port, bytes(Ether(src=c6.mac, dst=gw) / hbh), "malformed:ipv6-ext")
        mapped = IPv6(src=str(c6.ip), dst="::ffff:10.96.0.10") / TCP(sport=41004, dport=80)
        yield Send(c6.port, bytes(Ether(src=c6.mac, dst=gw) / mapped), "malformed:mapped")
        six = frame(c6.mac, gw, c6.ip, EXTERNAL6, l4(Protocol.TCP, 41005, 443))
        for cut in range(14, len(six), 7):
            yield Send(c6.port, six[:cut], "malformed:truncated6")


def random_frames(ir: ClusterIR, rng: random.Random, count: int, ports: tuple[int, ...]) -> Scenario:
    """Random frames: random bytes after a random Ethernet header, and random IP packets whose
    addresses, protocols, ports and TCP flags come from the cluster's and a few strangers."""
    node = ir.node
    addrs4 = [ip for p in ir.pods for ip in p.ips if ip.version == 4]
    addrs6 = [ip for p in ir.pods for ip in p.ips if ip.version == 6]
    addrs4 += (
        [fe.vip for fe in ir.frontends if fe.vip.version == 4]
        + [EXTERNAL4]
        + [a for a in node.node_ips if a.version == 4]
    )
    addrs6 += (
        [fe.vip for fe in ir.frontends if fe.vip.version == 6]
        + [EXTERNAL6]
        + [a for a in node.node_ips if a.version == 6]
    )
    dports = sorted({fe.port for fe in ir.frontends} | {22, 53, 80, 443, 8080, 30080})
    for i in range(count):
        port = rng.choice(ports)
        kind = rng.random()
        if kind < 0.15:
            length = rng.randrange(14, 120)
            data = bytes(rng.getrandbits(8) for _ in range(length))
            yield Send(port, data, "random:bytes")
            continue
        six = kind > 0.6 and addrs6
        pool = addrs6 if six else addrs4
        src, dst = rng.choice(pool), rng.choice(pool)
        proto = rng.choice([Protocol.TCP, Protocol.TCP, Protocol.UDP, Protocol.SCTP])
        flags = rng.choice(["S", "SA", "A", "PA", "F", "FA", "R", "RA", ""])
        payload = l4(proto, rng.randrange(1024, 65535), rng.choice(dports), flags or "S")
        data = frame(f"02:00:00:00:{i >> 8 & 0xFF:02x}:{i & 0xFF:02x}", node.gateway.mac, src, dst, payload)
        yield Send(port, data, "random:ip")


def ageing(ir: ClusterIR, seconds: float) -> Scenario:
    """Flows closed with FIN, flows left open and affinity memories, then a wait longer than
    CT_TIMEOUT_CLOSING (10 units, about 10.5 s) and the (short) affinity timeout. Then the servers
    answer again: a closed flow's reply slot has expired (no reverse NAT any more), an open one's has
    not (TCP idles out after 7,200 units); and new connections from the same clients are balanced
    afresh instead of following the expired affinity memory. Both targets must age alike."""
    gw = ir.node.gateway.mac
    clients = [c for c in pods_of(ir) if c.ip.version == 4][:3]
    targets = [t for t in _targets(ir) if t[1].version == 4 and t[2] is Protocol.TCP][:6]
    later: list[tuple[str, int, bytes]] = []
    sport = 50000
    for i, client in enumerate(clients):
        for j, (_, dst, proto, dport) in enumerate(targets):
            sport += 1
            close = (i + j) % 2 == 0
            server = yield from conversation("age", client, gw, dst, proto, sport, dport, close=close)
            if server is not None:
                later.append(("aged-closed" if close else "aged-open", *server))
    yield Wait(seconds, "age")
    for label, port, data in later:
        yield Send(port, data, f"{label}:reply")
    for client in clients:
        for _, dst, proto, dport in targets:
            sport += 1
            yield from conversation("aged-new-port", client, gw, dst, proto, sport, dport)
