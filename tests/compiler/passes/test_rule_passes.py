"""Policy-IR passes on random rule sets: the allowed (peer, protocol, port) space is unchanged,
checked point by point over a small address and port grid."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from k8s_offload.compiler.frontend.model import Protocol
from k8s_offload.compiler.ir.rules import AddressSet, PortRange, Rule
from k8s_offload.compiler.passes.cidr import Membership, address_set
from k8s_offload.compiler.passes.drop_subsumed import drop_subsumed_rules
from k8s_offload.compiler.passes.merge_rules import canonical_ports, merge_rules

ADDRS = [ipaddress.IPv4Address(f"10.0.0.{i}") for i in range(0, 16)]
PORTS = range(1, 12)
PROTOS = (Protocol.TCP, Protocol.UDP)


@st.composite
def rules(draw: st.DrawFn) -> tuple[Rule, ...]:
    out = set()
    for _ in range(draw(st.integers(1, 6))):
        peers: AddressSet | None = None
        if draw(st.booleans()):
            nets = []
            for _ in range(draw(st.integers(1, 3))):
                plen = draw(st.integers(28, 32))
                base = draw(st.integers(0, 15)) & ~((1 << (32 - plen)) - 1)
                nets.append(ipaddress.IPv4Network((int(ADDRS[0]) + base, plen)))
            peers = address_set(nets)
        ports = None
        if draw(st.booleans()):
            spans = []
            for _ in range(draw(st.integers(1, 2))):
                lo = draw(st.integers(1, 10))
                spans.append(PortRange(draw(st.sampled_from(PROTOS)), lo, lo + draw(st.integers(0, 3))))
            ports = canonical_ports(spans)
        out.add(Rule(peers, ports))
    return tuple(sorted(out, key=lambda r: r.sort_key))


def _allows(rs: tuple[Rule, ...], addr: ipaddress.IPv4Address, proto: Protocol, port: int) -> bool:
    return any(
        (r.peers is None or addr in Membership(r.peers))
        and (r.ports is None or any(p.protocol == proto and p.low <= port <= p.high for p in r.ports))
        for r in rs
    )


def _space(rs: tuple[Rule, ...]) -> list[bool]:
    return [_allows(rs, a, pr, p) for a in ADDRS for pr in PROTOS for p in PORTS]


@settings(max_examples=300)
@given(rules())
def test_drop_subsumed_keeps_the_allowed_space(rs: tuple[Rule, ...]) -> None:
    out = drop_subsumed_rules(rs)
    assert _space(out) == _space(rs)
    assert set(out) <= set(rs)


@settings(max_examples=300)
@given(rules())
def test_merge_keeps_the_allowed_space(rs: tuple[Rule, ...]) -> None:
    assert _space(merge_rules(rs)) == _space(rs)


def test_a_selector_inside_an_ip_block_with_the_same_ports_goes() -> None:
    tcp80 = (PortRange(Protocol.TCP, 80, 80),)
    block = Rule(address_set([ipaddress.ip_network("10.0.0.0/28")]), tcp80)
    pods = Rule(address_set([ipaddress.ip_network("10.0.0.3/32")]), tcp80)
    other = Rule(address_set([ipaddress.ip_network("10.0.1.3/32")]), tcp80)
    assert drop_subsumed_rules((block, pods, other)) == (block, other)
    assert drop_subsumed_rules((Rule(None, None), block)) == (Rule(None, None),)
