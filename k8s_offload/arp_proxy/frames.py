"""ARP/NDP proxy protocol logic: one received Ethernet frame in, an optional reply frame out.

Everything here is pure (no sockets, clocks or global state) so it can be unit-tested and fuzzed
without root. ARP, IPv6 and NS headers are dissected with scapy only after explicit length
checks, because scapy fills the missing fields of a truncated packet with defaults instead of
failing; the NDP option list is walked by hand so that bad option lengths are rejected rather
than looped on. Replies are built with scapy.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, IPv6, in6_chksum
from scapy.layers.l2 import ARP, Ether

ETH_P_IPV4 = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
VLAN_ETHERTYPES = frozenset({0x8100, 0x88A8, 0x9100})  # 802.1Q, 802.1ad, legacy QinQ
ETH_HLEN = 14
ETH_MIN_FRAME = 60  # without FCS; short frames are padded so real NICs need not do it
ARP_ETH_IPV4_LEN = 28
IPV6_HLEN = 40
IPPROTO_ICMPV6 = 58
ICMPV6_ND_NS = 135
ND_NS_LEN = 24  # type, code, checksum, reserved, target
ND_OPT_SOURCE_LL = 1
ALL_NODES = IPv6Address("ff02::1")
ALL_NODES_MAC = "33:33:00:00:00:01"
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"


class Outcome(enum.Enum):
    """What the proxy made of a frame; the value doubles as the counter name."""

    ARP_REPLY = "arp_reply"
    NA_REPLY = "na_reply"
    ARP_NOT_OURS = "arp_not_ours"  # well-formed ARP request for an address we do not answer
    NS_NOT_OURS = "ns_not_ours"  # valid NS for an address we do not answer
    NS_INVALID = "ns_invalid"  # NS failing RFC 4861 §7.1.1 validation: silently discarded
    CONFLICT = "conflict"  # someone else announces one of our gateway addresses
    MALFORMED = "malformed"  # truncated or garbled ARP/IPv6 frame
    VLAN_TAGGED = "vlan_tagged"  # 802.1Q/802.1ad tag: the proxy's port is untagged, never answered
    IGNORED = "ignored"  # anything else: other protocols, replies, our own frames


@dataclass(frozen=True)
class ProxyConfig:
    """Addresses the proxy answers for and how it answers.

    ``router`` sets the NA Router flag: the gateway is a router, and an NA with R=0 would make
    hosts drop it from their default router list (RFC 4861 §7.2.5). ``override`` sets the NA
    Override flag: the proxy is the only responder for the gateway addresses, so it answers as
    their owner (O=1, allowed because the TLLA option is always included, §7.2.4); set it to
    False for classic proxy service where the real owner may also answer (§7.2.8).
    """

    mac: str
    ipv4: frozenset[IPv4Address] = field(default_factory=frozenset)
    ipv6: frozenset[IPv6Address] = field(default_factory=frozenset)
    router: bool = True
    override: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "mac", normalize_mac(self.mac))


@dataclass(frozen=True)
class Verdict:
    """Result of handling one frame: an outcome, a reason for logs, maybe a reply to send."""

    outcome: Outcome
    reason: str
    reply: bytes | None = None
    requester: str | None = None  # source MAC of a request we answer, the rate-limit key


def normalize_mac(mac: str) -> str:
    """Lower-case colon form; raises ValueError for anything that is not a unicast EUI-48."""
    parts = mac.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"not a MAC address: {mac!r}")
    try:
        raw = bytes(int(p, 16) for p in parts)
    except ValueError:
        raise ValueError(f"not a MAC address: {mac!r}") from None
    if raw[0] & 1:
        raise ValueError(f"not a unicast MAC address: {mac!r}")
    return ":".join(f"{b:02x}" for b in raw)


def solicited_node(addr: IPv6Address) -> IPv6Address:
    """The solicited-node multicast address of ``addr`` (RFC 4291 §2.7.1)."""
    return IPv6Address(b"\xff\x02" + bytes(9) + b"\x01\xff" + addr.packed[13:])


def multicast_mac(addr: IPv6Address) -> str:
    """Ethernet group address for an IPv6 multicast address (RFC 2464 §7)."""
    return ":".join(f"{b:02x}" for b in b"\x33\x33" + addr.packed[12:])


def handle_frame(frame: bytes, cfg: ProxyConfig) -> Verdict:
    """Decide what to do with one received Ethernet frame. Never raises on any input bytes."""
    if len(frame) < ETH_HLEN:
        return Verdict(Outcome.MALFORMED, "shorter than an Ethernet header")
    # Read the Ethernet header directly: scapy's Ether() turns a frame whose type field is a
    # length (<= 1500) into an 802.3 packet without a type attribute.
    eth_src = _ll_to_mac(frame[6:12])
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    if eth_src == cfg.mac:
        return Verdict(Outcome.IGNORED, "our own frame")
    if ethertype in VLAN_ETHERTYPES:
        # An answer without the tag would land in the wrong broadcast domain, and one with it
        # would claim the gateway on a VLAN the datapath does not route: ignore, deliberately.
        return Verdict(Outcome.VLAN_TAGGED, f"VLAN-tagged frame (ethertype {ethertype:#06x})")
    if ethertype == ETH_P_ARP:
        return _handle_arp(frame[ETH_HLEN:], eth_src, cfg)
    if ethertype == ETH_P_IPV6:
        return _handle_ipv6(frame[ETH_HLEN:], eth_src, cfg)
    return Verdict(Outcome.IGNORED, f"ethertype {ethertype:#06x}")


def _handle_arp(body: bytes, eth_src: str, cfg: ProxyConfig) -> Verdict:
    """RFC 826: answer a request for one of our IPv4 addresses, swapping sender and target."""
    if len(body) < 8:
        return Verdict(Outcome.MALFORMED, "truncated ARP header")
    hwtype, ptype, hwlen, plen, op = struct.unpack_from("!HHBBH", body)
    if (hwtype, ptype, hwlen, plen) != (1, ETH_P_IPV4, 6, 4):
        return Verdict(Outcome.IGNORED, "ARP for something other than Ethernet/IPv4")
    if len(body) < ARP_ETH_IPV4_LEN:
        return Verdict(Outcome.MALFORMED, "truncated Ethernet/IPv4 ARP packet")
    if op != 1:
        return Verdict(Outcome.IGNORED, f"ARP opcode {op}")
    arp = ARP(body[:ARP_ETH_IPV4_LEN])
    sha, spa, tpa = str(arp.hwsrc), IPv4Address(arp.psrc), IPv4Address(arp.pdst)
    if tpa not in cfg.ipv4:
        return Verdict(Outcome.ARP_NOT_OURS, f"who-has {tpa}")
    if body[8] & 1 or sha == "00:00:00:00:00:00":
        return Verdict(Outcome.MALFORMED, f"ARP sender hardware address {sha} is not unicast")
    if spa == tpa:
        return Verdict(Outcome.CONFLICT, f"{sha} announces gateway address {tpa}")
    reply = Ether(dst=sha, src=cfg.mac, type=ETH_P_ARP) / ARP(
        op=2, hwsrc=cfg.mac, psrc=str(tpa), hwdst=sha, pdst=str(spa)
    )
    return Verdict(Outcome.ARP_REPLY, f"{tpa} is-at {cfg.mac} to {sha}", _pad(bytes(reply)), eth_src)


def _handle_ipv6(body: bytes, eth_src: str, cfg: ProxyConfig) -> Verdict:
    """Answer a Neighbor Solicitation for one of our IPv6 addresses after RFC 4861 §7.1.1 checks."""
    if len(body) < IPV6_HLEN:
        return Verdict(Outcome.MALFORMED, "truncated IPv6 header")
    ip6 = IPv6(body[:IPV6_HLEN])
    if ip6.version != 6:
        return Verdict(Outcome.MALFORMED, f"IP version {ip6.version} in an IPv6 frame")
    if len(body) < IPV6_HLEN + ip6.plen:
        return Verdict(Outcome.MALFORMED, "IPv6 payload shorter than its length field")
    if ip6.nh != IPPROTO_ICMPV6:
        return Verdict(Outcome.IGNORED, f"IPv6 next header {ip6.nh}")
    icmp = body[IPV6_HLEN : IPV6_HLEN + ip6.plen]
    if not icmp or icmp[0] != ICMPV6_ND_NS:
        return Verdict(Outcome.IGNORED, "not a Neighbor Solicitation")
    src, dst = IPv6Address(ip6.src), IPv6Address(ip6.dst)

    if ip6.hlim != 255:
        return Verdict(Outcome.NS_INVALID, f"hop limit {ip6.hlim}")
    if len(icmp) < ND_NS_LEN:
        return Verdict(Outcome.NS_INVALID, f"ICMPv6 length {len(icmp)} < {ND_NS_LEN}")
    ns = ICMPv6ND_NS(icmp[:ND_NS_LEN])
    if ns.code != 0:
        return Verdict(Outcome.NS_INVALID, f"ICMPv6 code {ns.code}")
    checksum: int = in6_chksum(IPPROTO_ICMPV6, ip6, icmp[:2] + b"\0\0" + icmp[4:])  # type: ignore[no-untyped-call]
    if checksum != ns.cksum:
        return Verdict(Outcome.NS_INVALID, "bad ICMPv6 checksum")
    target = IPv6Address(ns.tgt)
    if target.is_multicast:
        return Verdict(Outcome.NS_INVALID, f"multicast target {target}")
    options = _nd_options(icmp[ND_NS_LEN:])
    if options is None:
        return Verdict(Outcome.NS_INVALID, "malformed NDP option")
    source_ll = options.get(ND_OPT_SOURCE_LL)
    if src.is_unspecified:
        if dst != solicited_node(target):
            return Verdict(Outcome.NS_INVALID, "DAD probe not sent to the solicited-node address")
        if source_ll is not None:
            return Verdict(Outcome.NS_INVALID, "DAD probe carries a source link-layer option")

    if target not in cfg.ipv6:
        return Verdict(Outcome.NS_NOT_OURS, f"who-has {target}")
    if dst not in (target, solicited_node(target)):
        return Verdict(Outcome.NS_NOT_OURS, f"NS for {target} addressed to {dst}")
    requester = _ll_to_mac(source_ll) if source_ll and len(source_ll) >= 6 else eth_src
    if int(requester[:2], 16) & 1:
        return Verdict(Outcome.MALFORMED, f"requester link-layer address {requester} is not unicast")

    # §7.2.4: a DAD probe (unspecified source) is answered to all-nodes with S=0;
    # anything else is answered to its source with S=1.
    solicited = not src.is_unspecified
    reply = neighbor_advertisement(
        cfg,
        target,
        ip_dst=src if solicited else ALL_NODES,
        eth_dst=requester if solicited else ALL_NODES_MAC,
        solicited=solicited,
    )
    return Verdict(Outcome.NA_REPLY, f"{target} is-at {cfg.mac} to {src}", reply, eth_src)


def _nd_options(data: bytes) -> dict[int, bytes] | None:
    """Walk NDP options (RFC 4861 §4.6); None if any has length 0 or runs past the end."""
    found: dict[int, bytes] = {}
    i = 0
    while i < len(data):
        if i + 2 > len(data):
            return None
        opt_type, opt_len = data[i], data[i + 1] * 8
        if opt_len == 0 or i + opt_len > len(data):
            return None
        found.setdefault(opt_type, data[i + 2 : i + opt_len])
        i += opt_len
    return found


def _ll_to_mac(value: bytes) -> str:
    return ":".join(f"{b:02x}" for b in value[:6])


def _pad(frame: bytes) -> bytes:
    return frame.ljust(ETH_MIN_FRAME, b"\0")


def neighbor_advertisement(
    cfg: ProxyConfig, target: IPv6Address, ip_dst: IPv6Address, eth_dst: str, solicited: bool
) -> bytes:
    """NA for ``target`` with our MAC in a TLLA option and hop limit 255 (RFC 4861 §4.4, §7.2.4)."""
    pkt = (
        Ether(dst=eth_dst, src=cfg.mac, type=ETH_P_IPV6)
        / IPv6(src=str(target), dst=str(ip_dst), hlim=255)
        / ICMPv6ND_NA(tgt=str(target), R=int(cfg.router), S=int(solicited), O=int(cfg.override))
        / ICMPv6NDOptDstLLAddr(lladdr=cfg.mac)
    )
    return _pad(bytes(pkt))


def gratuitous_arp(cfg: ProxyConfig, addr: IPv4Address) -> bytes:
    """ARP announcement (RFC 5227 §2.3): a broadcast request with sender = target = ``addr``.

    Hosts that already cache ``addr`` update it to our MAC; others are left alone.
    """
    pkt = Ether(dst=BROADCAST_MAC, src=cfg.mac, type=ETH_P_ARP) / ARP(
        op=1, hwsrc=cfg.mac, psrc=str(addr), hwdst="00:00:00:00:00:00", pdst=str(addr)
    )
    return _pad(bytes(pkt))


def unsolicited_na(cfg: ProxyConfig, addr: IPv6Address) -> bytes:
    """Unsolicited NA to all-nodes (RFC 4861 §7.2.6): S=0, Override as configured."""
    return neighbor_advertisement(cfg, addr, ALL_NODES, ALL_NODES_MAC, solicited=False)


def announcements(cfg: ProxyConfig) -> list[bytes]:
    """Frames that tell the link our gateway addresses are at ``cfg.mac``."""
    frames = [gratuitous_arp(cfg, a) for a in sorted(cfg.ipv4)]
    frames += [unsolicited_na(cfg, a) for a in sorted(cfg.ipv6)]
    return frames


def split_addresses(values: list[str]) -> tuple[frozenset[IPv4Address], frozenset[IPv6Address]]:
    """Parse gateway addresses given on the command line, separating the two families."""
    v4: set[IPv4Address] = set()
    v6: set[IPv6Address] = set()
    for value in values:
        addr = ipaddress.ip_address(value)
        if addr.is_multicast or addr.is_unspecified:
            raise ValueError(f"{value} cannot be a gateway address")
        if isinstance(addr, IPv4Address):
            v4.add(addr)
        else:
            v6.add(addr)
    return frozenset(v4), frozenset(v6)
