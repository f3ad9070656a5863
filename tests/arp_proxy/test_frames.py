"""Unit tests of the proxy's pure frame logic and rate limiter (no root, no sockets)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    in6_chksum,
)
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from k8s_offload.arp_proxy.frames import (
    Outcome,
    ProxyConfig,
    announcements,
    handle_frame,
    normalize_mac,
    solicited_node,
    split_addresses,
)
from k8s_offload.arp_proxy.ratelimit import RateLimiter

MAC = "02:00:00:00:00:01"
POD_MAC = "02:aa:bb:cc:dd:02"
GW4 = IPv4Address("169.254.1.1")
GW6 = IPv6Address("fe80::1")
GW6_GLOBAL = IPv6Address("fd00:10::1")
POD6 = "fe80::2"
CFG = ProxyConfig(mac=MAC, ipv4=frozenset({GW4}), ipv6=frozenset({GW6, GW6_GLOBAL}))


def arp_request(tpa: str = str(GW4), spa: str = "10.244.1.5", sha: str = POD_MAC, op: int = 1) -> bytes:
    return bytes(
        Ether(src=sha, dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=op, hwsrc=sha, psrc=spa, hwdst="00:00:00:00:00:00", pdst=tpa)
    )


def ns_frame(
    target: str = str(GW6),
    src: str = POD6,
    dst: str | None = None,
    hlim: int = 255,
    code: int = 0,
    slla: str | None = POD_MAC,
    eth_src: str = POD_MAC,
) -> bytes:
    dst = dst or str(solicited_node(IPv6Address(target)))
    pkt = Ether(src=eth_src, dst="33:33:ff:00:00:01") / IPv6(src=src, dst=dst, hlim=hlim)
    pkt = pkt / ICMPv6ND_NS(tgt=target, code=code)
    if slla:
        pkt = pkt / ICMPv6NDOptSrcLLAddr(lladdr=slla)
    return bytes(pkt)


def icmp_checksum_ok(frame: bytes) -> bool:
    ip6 = Ether(frame)[IPv6]
    icmp = bytes(ip6.payload)[: ip6.plen]
    return in6_chksum(58, ip6, icmp[:2] + b"\0\0" + icmp[4:]) == int.from_bytes(icmp[2:4], "big")


# -- ARP ---------------------------------------------------------------------------------------


def test_arp_request_for_gateway_gets_rfc826_reply() -> None:
    v = handle_frame(arp_request(), CFG)
    assert v.outcome is Outcome.ARP_REPLY and v.reply is not None
    assert len(v.reply) == 60  # padded to the Ethernet minimum
    eth = Ether(v.reply)
    assert (eth.src, eth.dst, eth.type) == (MAC, POD_MAC, 0x0806)
    arp = eth[ARP]
    assert arp.op == 2
    assert (arp.hwsrc, arp.psrc) == (MAC, str(GW4))
    assert (arp.hwdst, arp.pdst) == (POD_MAC, "10.244.1.5")
    assert v.requester == POD_MAC


def test_arp_probe_with_zero_sender_address_is_answered() -> None:
    v = handle_frame(arp_request(spa="0.0.0.0"), CFG)
    assert v.outcome is Outcome.ARP_REPLY
    assert Ether(v.reply)[ARP].pdst == "0.0.0.0"


@pytest.mark.parametrize(
    ("frame", "outcome"),
    [
        (arp_request(tpa="169.254.1.2"), Outcome.ARP_NOT_OURS),
        (arp_request(op=2), Outcome.IGNORED),
        (arp_request(spa=str(GW4)), Outcome.CONFLICT),
        (arp_request(sha="ff:ff:ff:ff:ff:ff"), Outcome.MALFORMED),
        (arp_request()[: 14 + 20], Outcome.MALFORMED),
        (arp_request()[: 14 + 5], Outcome.MALFORMED),
        (
            bytes(Ether(src=POD_MAC) / ARP(hwtype=6, pdst=str(GW4), hwsrc=POD_MAC, psrc="1.2.3.4")),
            Outcome.IGNORED,
        ),
        (arp_request(sha=MAC), Outcome.IGNORED),  # our own frame looped back
    ],
    ids=[
        "other-address",
        "reply",
        "announcement",
        "broadcast-sender",
        "truncated",
        "header-only",
        "hwtype",
        "own",
    ],
)
def test_arp_frames_that_get_no_reply(frame: bytes, outcome: Outcome) -> None:
    v = handle_frame(frame, CFG)
    assert v.outcome is outcome
    assert v.reply is None


# -- NDP ---------------------------------------------------------------------------------------


def test_multicast_ns_gets_solicited_override_router_na() -> None:
    v = handle_frame(ns_frame(), CFG)
    assert v.outcome is Outcome.NA_REPLY and v.reply is not None
    eth = Ether(v.reply)
    assert (eth.src, eth.dst) == (MAC, POD_MAC)
    ip6 = eth[IPv6]
    assert (ip6.src, ip6.dst, ip6.hlim) == (str(GW6), POD6, 255)
    na = eth[ICMPv6ND_NA]
    assert (na.R, na.S, na.O, na.tgt) == (1, 1, 1, str(GW6))
    assert eth[ICMPv6NDOptDstLLAddr].lladdr == MAC
    assert icmp_checksum_ok(v.reply)


def test_global_gateway_and_unicast_nud_probe_are_answered() -> None:
    v = handle_frame(ns_frame(target=str(GW6_GLOBAL), src="fd00:10::5", dst=str(GW6_GLOBAL), slla=None), CFG)
    assert v.outcome is Outcome.NA_REPLY
    eth = Ether(v.reply)
    assert eth.dst == POD_MAC  # no SLLA option: answer the Ethernet source
    assert eth[ICMPv6ND_NA].S == 1


def test_dad_probe_is_answered_to_all_nodes_without_solicited_flag() -> None:
    v = handle_frame(ns_frame(src="::", slla=None), CFG)
    assert v.outcome is Outcome.NA_REPLY
    eth = Ether(v.reply)
    assert (eth.dst, eth[IPv6].dst) == ("33:33:00:00:00:01", "ff02::1")
    assert (eth[ICMPv6ND_NA].S, eth[ICMPv6ND_NA].O) == (0, 1)


def test_override_and_router_flags_follow_config() -> None:
    cfg = ProxyConfig(mac=MAC, ipv6=frozenset({GW6}), router=False, override=False)
    na = Ether(handle_frame(ns_frame(), cfg).reply)[ICMPv6ND_NA]
    assert (na.R, na.S, na.O) == (0, 1, 0)


def _with_bad_checksum(frame: bytes) -> bytes:
    pos = 14 + 40 + 2
    return frame[:pos] + bytes([frame[pos] ^ 0xFF]) + frame[pos + 1 :]


def _zero_length_option(frame: bytes) -> bytes:
    pkt = Ether(frame)
    pkt[ICMPv6NDOptSrcLLAddr].len = 0
    del pkt[IPv6].payload.cksum
    return bytes(pkt)


@pytest.mark.parametrize(
    ("frame", "outcome"),
    [
        (ns_frame(hlim=64), Outcome.NS_INVALID),
        (ns_frame(code=1), Outcome.NS_INVALID),
        (_with_bad_checksum(ns_frame()), Outcome.NS_INVALID),
        (ns_frame(target="ff02::1", dst="ff02::1"), Outcome.NS_INVALID),
        (_zero_length_option(ns_frame()), Outcome.NS_INVALID),
        (ns_frame(src="::"), Outcome.NS_INVALID),  # DAD probe must not carry an SLLA option
        (ns_frame(src="::", slla=None, dst="ff02::1"), Outcome.NS_INVALID),
        (ns_frame(target="fe80::99"), Outcome.NS_NOT_OURS),
        (ns_frame(dst="ff02::1:ff99:9999"), Outcome.NS_NOT_OURS),
        (ns_frame()[: 14 + 30], Outcome.MALFORMED),
        (ns_frame()[:-4], Outcome.MALFORMED),  # payload shorter than the length field
        (
            bytes(Ether(src=POD_MAC) / IPv6(src=POD6, dst="ff02::1", nh=58, hlim=255) / Raw(b"\x87\0")),
            Outcome.NS_INVALID,
        ),
        (
            bytes(Ether(src=POD_MAC) / IPv6(src=POD6, dst="ff02::1", nh=17) / Raw(b"12345678")),
            Outcome.IGNORED,
        ),
        (bytes(Ether(src=POD_MAC, type=0x0800) / Raw(b"\x45" + bytes(40))), Outcome.IGNORED),
        (b"\x01\x02\x03", Outcome.MALFORMED),
    ],
    ids=[
        "hop-limit",
        "code",
        "checksum",
        "multicast-target",
        "zero-length-option",
        "dad-with-slla",
        "dad-not-solicited-node",
        "other-target",
        "other-group",
        "truncated-header",
        "truncated-payload",
        "short-icmp",
        "udp",
        "ipv4",
        "runt",
    ],
)
def test_ns_frames_that_get_no_reply(frame: bytes, outcome: Outcome) -> None:
    v = handle_frame(frame, CFG)
    assert v.outcome is outcome, v.reason
    assert v.reply is None


def test_option_running_past_the_end_is_invalid() -> None:
    frame = ns_frame()
    # Claim a 16-byte SLLA option where only 8 bytes follow (checksum recomputed so only the
    # option walk can reject it).
    pkt = Ether(frame)
    pkt[ICMPv6NDOptSrcLLAddr].len = 2
    del pkt[IPv6].payload.cksum
    assert handle_frame(bytes(pkt), CFG).outcome is Outcome.NS_INVALID


# -- announcements and parsing helpers ------------------------------------------------------------


def test_announcements_are_gratuitous_arp_and_unsolicited_na() -> None:
    cfg = ProxyConfig(mac=MAC, ipv4=frozenset({GW4}), ipv6=frozenset({GW6}))
    garp, na = (Ether(f) for f in announcements(cfg))
    assert garp.dst == "ff:ff:ff:ff:ff:ff"
    assert (garp[ARP].op, garp[ARP].psrc, garp[ARP].pdst, garp[ARP].hwsrc) == (1, str(GW4), str(GW4), MAC)
    assert (na.dst, na[IPv6].dst, na[IPv6].hlim) == ("33:33:00:00:00:01", "ff02::1", 255)
    assert (na[ICMPv6ND_NA].S, na[ICMPv6ND_NA].O, na[ICMPv6ND_NA].tgt) == (0, 1, str(GW6))
    assert na[ICMPv6NDOptDstLLAddr].lladdr == MAC


def test_solicited_node_address() -> None:
    assert solicited_node(IPv6Address("fd00::12:3456")) == IPv6Address("ff02::1:ff12:3456")


def test_mac_and_address_parsing() -> None:
    assert normalize_mac("02-AA-BB-CC-DD-EE") == "02:aa:bb:cc:dd:ee"
    for bad in ("01:00:5e:00:00:01", "02:00:00:00:00", "zz:00:00:00:00:00"):
        with pytest.raises(ValueError):
            normalize_mac(bad)
    v4, v6 = split_addresses(["169.254.1.1", "fe80::1"])
    assert v4 == {GW4} and v6 == {GW6}
    with pytest.raises(ValueError):
        split_addresses(["ff02::1"])


# -- robustness ------------------------------------------------------------------------------------


VALID_FRAMES = [arp_request(), ns_frame(), ns_frame(src="::", slla=None), ns_frame(target=str(GW6_GLOBAL))]


def _check_verdict(frame: bytes) -> None:
    v = handle_frame(frame, CFG)
    assert isinstance(v.outcome, Outcome)
    if v.reply is not None:
        # Whatever we send is one of the two reply kinds, from our MAC.
        eth = Ether(v.reply)
        assert eth.src == MAC
        assert (ARP in eth and eth[ARP].op == 2) or ICMPv6ND_NA in eth


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(data: bytes) -> None:
    _check_verdict(data)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(VALID_FRAMES),
    st.lists(st.tuples(st.integers(0, 199), st.integers(0, 255)), max_size=6),
    st.integers(0, 200),
)
def test_mutated_valid_frames_never_raise(frame: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    """Random bytes rarely get past the Ethernet header; mutating real requests reaches deep paths."""
    data = bytearray(frame)
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    _check_verdict(bytes(data[: max(cut, 14)]))


# -- rate limiting ---------------------------------------------------------------------------------


def test_rate_limiter_allows_burst_then_refills_per_key() -> None:
    rl = RateLimiter(rate=2.0, burst=3, global_rate=1000, global_burst=1000)
    assert [rl.allow("a", 0.0) for _ in range(4)] == [None, None, None, "source"]
    assert rl.allow("b", 0.0) is None  # other sources are unaffected
    assert rl.allow("a", 0.2) == "source"
    assert rl.allow("a", 0.5) is None  # one token back after 0.5 s at 2/s
    assert rl.allow("a", 0.5) == "source"


def test_rate_limiter_forgets_least_recently_used_sources() -> None:
    rl = RateLimiter(rate=1.0, burst=1, global_rate=1000, global_burst=1000, max_keys=2)
    assert rl.allow("a", 0.0) is None and rl.allow("b", 0.0) is None and rl.allow("c", 0.0) is None
    assert rl.allow("a", 0.0) is None  # "a" was evicted, so it starts with a full bucket
    assert rl.allow("c", 0.0) == "source"


def test_rotating_source_macs_meet_the_global_cap() -> None:
    """Issue 17: a new source MAC per request used to get every reply. The global bucket bounds it."""
    rl = RateLimiter(rate=20, burst=40, global_rate=100, global_burst=50, max_keys=16)
    verdicts = [rl.allow(f"02:00:00:00:{i // 256:02x}:{i % 256:02x}", 0.0) for i in range(1000)]
    assert verdicts.count(None) == 50 and verdicts.count("global") == 950
    # One second later the global bucket has refilled by its rate, no more.
    later = [rl.allow(f"02:00:00:01:{i // 256:02x}:{i % 256:02x}", 1.0) for i in range(1000)]
    assert later.count(None) == 50  # capped by the burst: 100 tokens refilled, bucket holds 50


def test_a_refused_source_does_not_spend_global_tokens() -> None:
    rl = RateLimiter(rate=1, burst=1, global_rate=1, global_burst=2)
    assert rl.allow("a", 0.0) is None
    assert [rl.allow("a", 0.0) for _ in range(10)] == ["source"] * 10
    assert rl.allow("b", 0.0) is None  # the flooding source did not drain the shared bucket


@pytest.mark.parametrize(
    ("rate", "burst"), [(float("nan"), 1), (float("inf"), 1), (0.0, 1), (-1.0, 1), (1.0, 0)]
)
def test_rate_limiter_refuses_values_that_would_disable_it(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate, burst, 10, 10)
    with pytest.raises(ValueError):
        RateLimiter(10, 10, rate, burst)


@pytest.mark.parametrize("tpid", [0x8100, 0x88A8, 0x9100])
def test_vlan_tagged_requests_are_ignored(tpid: int) -> None:
    """A tagged ARP request (in-band tag) is never answered, tagged or untagged (docs/arp-proxy.md)."""
    untagged = arp_request()
    tagged = untagged[:12] + tpid.to_bytes(2, "big") + (5).to_bytes(2, "big") + untagged[12:]
    v = handle_frame(tagged, CFG)
    assert v.outcome is Outcome.VLAN_TAGGED and v.reply is None
    assert handle_frame(untagged, CFG).outcome is Outcome.ARP_REPLY
